package hflash.memory;

import java.nio.file.Files;
import java.nio.file.Path;

/** Locates the shared real-data folder ({@code shared/data}) from the test working directory. */
final class TestData {

  private TestData() {}

  /**
   * Walks up from the working directory (the module directory under Maven) until a directory
   * containing {@code shared/data/traces} is found, and returns that {@code traces} folder.
   */
  static Path traces() {
    Path start = Path.of("").toAbsolutePath();
    for (Path dir = start; dir != null; dir = dir.getParent()) {
      Path candidate = dir.resolve("shared").resolve("data").resolve("traces");
      if (Files.isDirectory(candidate)) {
        return candidate;
      }
    }
    throw new IllegalStateException(
        "no shared/data/traces folder in " + start + " or any parent directory");
  }

  /** A trace file by name, e.g. "stories260K-seq0.safetensors"; fails clearly if missing. */
  static Path trace(String name) {
    Path file = traces().resolve(name);
    if (!Files.isRegularFile(file)) {
      throw new IllegalStateException("trace file missing: " + file);
    }
    return file;
  }
}
