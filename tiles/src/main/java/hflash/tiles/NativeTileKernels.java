package hflash.tiles;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * The Java kernels with {@link #decodeTiles} done by a native variant ({@link NativeKernels}): every
 * other kernel, and the name, shape and width reports, are the wrapped kernels'. The arguments are
 * checked here, before the downcall, against the arrays' lengths and the live segments' sizes
 * (the C code trusts them), so a bad argument is an exception, never a wild read.
 */
final class NativeTileKernels implements TileKernels {

  private final TileKernels base;
  private final NativeKernels.Variant variant;
  private final long prefetchK;
  private final long prefetchV;

  NativeTileKernels(TileKernels java, NativeKernels.Variant variant) {
    this.base = Objects.requireNonNull(java, "java");
    this.variant = Objects.requireNonNull(variant, "variant");
    this.prefetchK = NativeKernels.prefetch("hflash.native.prefetchK");
    this.prefetchV = NativeKernels.prefetch("hflash.native.prefetchV");
  }

  /** The wrapped Java kernels. */
  TileKernels java() {
    return base;
  }

  @Override
  public String nativeVariant() {
    return variant.name();
  }

  @Override
  public int decodeTiles(float[] q, int qOff, int g, int d, MemorySegment k, MemorySegment v, TileEncoding enc,
      int tileTokens, long[] offsets, int[] counts, int n, float[] m, float[] l, int mOff, float[] acc, int accOff,
      float[] scratch) {
    if (n == 0) {
      return 0;
    }
    check(q, qOff, g, d, k, v, enc, tileTokens, offsets, counts, n, m, l, mOff, acc, accOff, scratch);
    Wrappers w = WRAPPERS.get();
    try {
      return (int) variant.decodeTiles().invokeExact(NativeKernels.dtypeCode(enc), d, g, tileTokens,
          w.floats(0, q), qOff, k, v, w.longs(offsets), w.ints(counts), n, w.floats(1, m), w.floats(2, l), mOff,
          w.floats(3, acc), accOff, w.floats(4, scratch), prefetchK, prefetchV);
    } catch (RuntimeException | Error e) {
      throw e;
    } catch (Throwable t) {
      throw new IllegalStateException("native decodeTiles failed", t);
    }
  }

  private static final ThreadLocal<Wrappers> WRAPPERS = ThreadLocal.withInitial(Wrappers::new);

  /**
   * The heap segments of the arrays a thread passed last, reused while the arrays are the same
   * (the engine's worker passes the same q, state, offsets and scratch arrays on every call), so a
   * decode allocates nothing in steady state. Slots: 0 q, 1 m, 2 l, 3 acc, 4 scratch.
   */
  private static final class Wrappers {
    final float[][] arrays = new float[5][];
    final MemorySegment[] segments = new MemorySegment[5];
    long[] offsets;
    MemorySegment offsetSegment;
    int[] counts;
    MemorySegment countSegment;

    MemorySegment floats(int slot, float[] a) {
      if (arrays[slot] != a) {
        arrays[slot] = a;
        segments[slot] = MemorySegment.ofArray(a);
      }
      return segments[slot];
    }

    MemorySegment longs(long[] a) {
      if (offsets != a) {
        offsets = a;
        offsetSegment = MemorySegment.ofArray(a);
      }
      return offsetSegment;
    }

    MemorySegment ints(int[] a) {
      if (counts != a) {
        counts = a;
        countSegment = MemorySegment.ofArray(a);
      }
      return countSegment;
    }
  }

  /**
   * Everything the C code trusts, checked: shapes, array ranges, live native segments, and every
   * listed tile inside both segments.
   */
  static void check(float[] q, int qOff, int g, int d, MemorySegment k, MemorySegment v, TileEncoding enc,
      int tileTokens, long[] offsets, int[] counts, int n, float[] m, float[] l, int mOff, float[] acc, int accOff,
      float[] scratch) {
    if (g <= 0 || d <= 0 || tileTokens <= 0 || tileTokens % 32 != 0 || n < 0) {
      throw new IllegalArgumentException("decodeTiles shape (g, d, tileTokens, n) must be positive with"
          + " tileTokens a multiple of 32: (" + g + ", " + d + ", " + tileTokens + ", " + n + ")");
    }
    Objects.checkFromIndexSize(qOff, g * d, q.length);
    Objects.checkFromIndexSize(mOff, g, m.length);
    Objects.checkFromIndexSize(mOff, g, l.length);
    Objects.checkFromIndexSize(accOff, g * d, acc.length);
    Objects.checkFromIndexSize(0, n, offsets.length);
    Objects.checkFromIndexSize(0, n, counts.length);
    if (scratch.length < g * tileTokens + g * d) {
      throw new IllegalArgumentException("scratch length must be >= g * tileTokens + g * d = "
          + (g * tileTokens + g * d) + ": " + scratch.length);
    }
    checkSegment(k);
    checkSegment(v);
    long tileBytes = tileTokens * enc.rowBytes(d);
    long limit = Math.min(k.byteSize(), v.byteSize()) - tileBytes;
    for (int i = 0; i < n; i++) {
      if (counts[i] < 1 || counts[i] > tileTokens) {
        throw new IllegalArgumentException("counts[" + i + "] must lie in [1, " + tileTokens + "]: " + counts[i]);
      }
      if (offsets[i] < 0 || offsets[i] > limit) {
        throw new IndexOutOfBoundsException("offsets[" + i + "] must lie in [0, " + limit + "] (a tile of "
            + tileBytes + " bytes inside the K/V segments of " + k.byteSize() + ", " + v.byteSize() + " bytes): "
            + offsets[i]);
      }
    }
  }

  private static void checkSegment(MemorySegment s) {
    if (!s.scope().isAlive()) {
      throw new IllegalStateException("K/V segment's arena is closed");
    }
    if (!s.isNative()) {
      throw new IllegalArgumentException("K/V segment must be native memory: " + s);
    }
  }

  @Override
  public String name() {
    return base.name();
  }

  @Override
  public int bitSize() {
    return base.bitSize();
  }

  @Override
  public String shape() {
    return base.shape();
  }

  @Override
  public void scores(float[] q, int qOff, int g, int d, MemorySegment k, long kOff, TileEncoding dtype, int count,
      float[] s, int sStride) {
    base.scores(q, qOff, g, d, k, kOff, dtype, count, s, sStride);
  }

  @Override
  public float max(float[] x, int off, int n) {
    return base.max(x, off, n);
  }

  @Override
  public float expSum(float[] x, int off, int n, float m) {
    return base.expSum(x, off, n, m);
  }

  @Override
  public void accumulate(float[] p, int pStride, int g, int d, MemorySegment v, long vOff, TileEncoding dtype,
      int count, int tileTokens, float[] acc, int accOff) {
    base.accumulate(p, pStride, g, d, v, vOff, dtype, count, tileTokens, acc, accOff);
  }

  @Override
  public void scale(float[] x, int off, int n, float a) {
    base.scale(x, off, n, a);
  }

  @Override
  public void nodeBounds(float[] q, int qOff, int d, MemorySegment rec, long box, long ball, TileEncoding dtype,
      float[] out, int o) {
    base.nodeBounds(q, qOff, d, rec, box, ball, dtype, out, o);
  }

  @Override
  public void rowScores(float[] q, int qOff, int g, int d, MemorySegment rows, long off, long rowStrideBytes,
      int count, float[] s, int sStride) {
    base.rowScores(q, qOff, g, d, rows, off, rowStrideBytes, count, s, sStride);
  }
}
