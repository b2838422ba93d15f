package hflash.io;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;

/** Locates the shared real-data folder ({@code shared/data}) from the test working directory. */
final class TestData {

  private TestData() {}

  /**
   * Walks up from the working directory (the module directory under Maven) until a directory
   * containing {@code shared/data/traces} is found, and returns that {@code traces} folder. A
   * clone without the shared folder beside it skips the calling test, naming the folder.
   */
  static Path traces() {
    Path start = Path.of("").toAbsolutePath();
    for (Path dir = start; dir != null; dir = dir.getParent()) {
      Path candidate = dir.resolve("shared").resolve("data").resolve("traces");
      if (Files.isDirectory(candidate)) {
        return candidate;
      }
    }
    Assumptions.abort("skipped: no shared/data/traces folder in " + start + " or any parent directory"
        + " (the shared real-data folder, ../shared/data beside the repository)");
    throw new AssertionError("unreachable");
  }

  /** A trace file by name, e.g. "stories260K-seq0.safetensors"; fails clearly if missing from a present folder. */
  static Path trace(String name) {
    Path file = traces().resolve(name);
    if (!Files.isRegularFile(file)) {
      throw new IllegalStateException("trace file missing: " + file);
    }
    return file;
  }
}
