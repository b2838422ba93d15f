package hflash.bench;

import java.lang.foreign.MemorySegment;

/**
 * One way to stream-read off-heap floats: the probe that decode bandwidth is compared against.
 * {@link StreamProbe#streamReaders()} lists every width this JVM can run, since which one
 * streams fastest differs by CPU (on Zen 4, Java's 128- and 256-bit loads stream faster than
 * 512-bit ones): a fair probe takes the best.
 */
public interface StreamReader {

  /** For reports, e.g. {@code "vector-256"}. */
  String name();

  /** Sum of {@code floatCount} little-endian floats from byte offset {@code off}. */
  double sum(MemorySegment seg, long off, long floatCount);
}
