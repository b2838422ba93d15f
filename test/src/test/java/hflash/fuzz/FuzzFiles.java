package hflash.fuzz;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * One scratch file per JVM for the fuzz targets: every reader takes a path, so each input is written to it first.
 * Fuzz inputs run one after another on one thread, so one file suffices; it is deleted when the JVM exits.
 */
final class FuzzFiles {

  private static Path dir;

  private FuzzFiles() {}

  /** Writes {@code bytes} to the scratch file {@code name} (replacing it) and returns its path. */
  static synchronized Path write(String name, byte[] bytes) {
    try {
      if (dir == null) {
        dir = Files.createTempDirectory("hflash-fuzz");
        dir.toFile().deleteOnExit();
      }
      Path p = dir.resolve(name);
      Files.write(p, bytes);
      p.toFile().deleteOnExit();
      return p;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Fails unless {@code e}'s message names {@code file} and says something after it: the reader contract's "the
   * message names the file and the problem".
   */
  static void assertNamesFile(RuntimeException e, Path file) {
    String m = e.getMessage();
    if (m == null || !m.contains(file.toString()) || m.strip().length() <= file.toString().length() + 2) {
      throw new AssertionError("reader error does not name the file and the problem: " + m, e);
    }
  }
}
