package hflash.tiles;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** The CPU vendor string, for kernel shapes that measured differently per vendor. */
final class CpuVendor {

  private static final Path CPUINFO = Path.of("/proc/cpuinfo");

  private CpuVendor() {}

  /** {@code vendor_id} of /proc/cpuinfo ("GenuineIntel", "AuthenticAMD"), or "" when unknown. */
  static String current() {
    if (!Files.isReadable(CPUINFO)) {
      return "";
    }
    try (var lines = Files.lines(CPUINFO)) {
      return parse(lines.limit(64).toList());
    } catch (IOException | java.io.UncheckedIOException e) {
      return "";
    }
  }

  /** The value of the first {@code vendor_id} line, or "" when there is none. */
  static String parse(List<String> lines) {
    for (String line : lines) {
      int colon = line.indexOf(':');
      if (colon > 0 && line.substring(0, colon).trim().equals("vendor_id")) {
        return line.substring(colon + 1).trim();
      }
    }
    return "";
  }
}
