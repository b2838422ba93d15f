package hflash.bench;

import hflash.memory.KvCacheLayout;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Checks a KV cache fits before it is allocated. The cache is reserved and touched up front, so on a Linux machine
 * that overcommits, allocating more than there is does not fail cleanly: the kernel kills the JVM while the pages
 * are touched. Refusing up front turns that into one line and exit code 1.
 */
public final class Resources {

  /** Overrides the available-memory figure (bytes), so the refusal can be tested on any machine. */
  public static final String AVAILABLE_PROPERTY = "hflash.availableBytes";

  private Resources() {}

  /**
   * Throws {@link ResourceException} unless the K and V segments of {@code layout} fit in the memory available now.
   *
   * @param what what the cache is for, e.g. "the KV cache"
   */
  public static void requireFits(String what, KvCacheLayout layout) {
    requireFits(what, layout, "try a smaller --context, fewer heads or a smaller --dtype");
  }

  /**
   * As {@link #requireFits(String, KvCacheLayout)} with the front end's own {@code advice} ("try a
   * smaller --dtype") ending the line.
   */
  public static void requireFits(String what, KvCacheLayout layout, String advice) {
    requireFits(what, 2 * layout.segmentBytes(), advice);
  }

  /**
   * Throws {@link ResourceException} unless {@code needed} bytes fit in the memory available now.
   *
   * @param advice how the user can ask for less, ending the line
   */
  public static void requireFits(String what, long needed, String advice) {
    long available = availableBytes();
    if (needed > available) {
      throw new ResourceException(what + " does not fit in memory: needs " + needed + " bytes ("
          + Format.bytes(needed) + "), " + available + " bytes (" + Format.bytes(available)
          + ") available; " + advice);
    }
  }

  /**
   * Memory a new allocation can take without swapping: {@code -Dhflash.availableBytes} when set; else Linux's
   * MemAvailable, unless the JVM sees a smaller total than the kernel (a container's memory limit), when the JVM's
   * container-aware free figure is the one that counts; else the JVM's free figure; else Long.MAX_VALUE.
   */
  public static long availableBytes() {
    String forced = System.getProperty(AVAILABLE_PROPERTY);
    if (forced != null) {
      return Long.parseLong(forced.strip());
    }
    long memTotal = -1, memAvailable = -1;
    try {
      for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
        String[] parts = line.split("\\s+");
        if (parts.length >= 2 && parts[0].equals("MemTotal:")) {
          memTotal = Long.parseLong(parts[1]) * 1024;
        } else if (parts.length >= 2 && parts[0].equals("MemAvailable:")) {
          memAvailable = Long.parseLong(parts[1]) * 1024;
        }
      }
    } catch (IOException | RuntimeException notLinux) {
      // falls through to the JVM's figure
    }
    if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
      boolean container = memTotal > 0 && os.getTotalMemorySize() < memTotal;
      if (memAvailable < 0 || container) {
        return os.getFreeMemorySize();
      }
    }
    return memAvailable < 0 ? Long.MAX_VALUE : memAvailable;
  }
}
