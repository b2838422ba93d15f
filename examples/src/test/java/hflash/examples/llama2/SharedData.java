package hflash.examples.llama2;

import java.nio.file.Files;
import java.nio.file.Path;

/** Locates {@code shared/data/stories260K} by walking up from the working directory. */
final class SharedData {

  private static final Path RELATIVE = Path.of("shared", "data", "stories260K");

  private SharedData() {}

  /** The stories260K folder; skips the calling test, naming the folder, when no ancestor has it. */
  static Path stories260K() {
    Path start = Path.of("").toAbsolutePath();
    for (Path dir = start; dir != null; dir = dir.getParent()) {
      Path candidate = dir.resolve(RELATIVE);
      if (Files.isDirectory(candidate)) {
        return candidate;
      }
    }
    org.junit.jupiter.api.Assumptions.abort("skipped: no " + RELATIVE + " folder in " + start + " or any parent"
        + " directory (the shared real-data folder, ../shared/data beside the repository); the examples tests need"
        + " the stories260K model and reference.json");
    throw new AssertionError("unreachable");
  }

  static Path model() {
    return stories260K().resolve("stories260K.bin");
  }

  static Path tokenizer() {
    return stories260K().resolve("tok512.bin");
  }

  /** A stories260K trace, e.g. {@code trace("seq1")}: {@code shared/data/traces/stories260K-seq1.safetensors}. */
  static Path trace(String name) {
    return stories260K().resolveSibling("traces").resolve("stories260K-" + name + ".safetensors");
  }

  static Path reference() {
    return stories260K().resolve("reference.json");
  }
}
