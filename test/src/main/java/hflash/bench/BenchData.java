package hflash.bench;

import hflash.memory.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

/**
 * Seeded inputs and the agreement checks shared by the benchmarks. Not a benchmark itself: every
 * {@code @Setup} builds its inputs here from a fixed seed, so a rerun measures the same bytes.
 */
final class BenchData {

  /** Seed of every input; change it only together with the numbers in docs/JMH.md. */
  static final long SEED = 0x5eed_f1a5L;

  /** Bytes filled with fresh random values; larger buffers repeat this block. */
  private static final long PATTERN_BYTES = 4L << 20;

  private BenchData() {}

  /** {@code n} uniform floats in [-1, 1). */
  static float[] uniform(SplittableRandom rnd, int n) {
    float[] x = new float[n];
    for (int i = 0; i < n; i++) {
      x[i] = (float) (rnd.nextDouble() * 2 - 1);
    }
    return x;
  }

  /**
   * Fills {@code seg} with elements of {@code dtype}, uniform in [-1, 1). Only the first 4 MiB are
   * drawn; the rest repeats that block by bulk copy, which keeps a 1 GiB setup under a second and
   * makes no difference to a streaming read (the hardware does not deduplicate cache lines).
   */
  static void fill(MemorySegment seg, DType dtype, long seed) {
    SplittableRandom rnd = new SplittableRandom(seed);
    int bytes = dtype.bytes();
    long pattern = Math.min(seg.byteSize(), PATTERN_BYTES) / bytes * bytes;
    for (long off = 0; off < pattern; off += bytes) {
      dtype.write(seg, off, (float) (rnd.nextDouble() * 2 - 1));
    }
    for (long off = pattern; off < seg.byteSize(); off += pattern) {
      MemorySegment.copy(seg, 0, seg, off, Math.min(pattern, seg.byteSize() - off));
    }
  }

  /** {@code bytes} from {@code arena}, 64-byte aligned, filled by {@link #fill} with {@link #SEED}. */
  static MemorySegment filled(Arena arena, long bytes, DType dtype) {
    MemorySegment seg = arena.allocate(bytes, 64);
    fill(seg, dtype, SEED);
    return seg;
  }

  /** {@code max|actual - expected| / max|expected|} over {@code [off, off+n)}. */
  static double maxRelative(float[] expected, float[] actual, int off, int n) {
    double err = 0;
    double ref = 0;
    for (int i = off; i < off + n; i++) {
      err = Math.max(err, Math.abs((double) actual[i] - expected[i]));
      ref = Math.max(ref, Math.abs((double) expected[i]));
    }
    return ref == 0 ? err : err / ref;
  }

  /** {@code ||actual - expected||_2 / ||expected||_2} over the whole arrays. */
  static double l2Relative(float[] expected, float[] actual) {
    double err = 0;
    double ref = 0;
    for (int i = 0; i < expected.length; i++) {
      double e = (double) actual[i] - expected[i];
      err += e * e;
      ref += (double) expected[i] * expected[i];
    }
    return ref == 0 ? Math.sqrt(err) : Math.sqrt(err / ref);
  }
}
