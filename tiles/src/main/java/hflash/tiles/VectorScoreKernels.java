package hflash.tiles;

import static hflash.tiles.VectorLoads.F16;
import static hflash.tiles.VectorLoads.F32;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The score kernels of {@link VectorTileKernels} over float tiles (f32, bf16, f16): one K block
 * row (32 keys of one channel, see {@link TileFormat}) per channel step, swept over the d
 * channels, with the scores of a few key vectors for four query heads (or one) held in registers.
 * Each shape is written once; the encoding only changes the load step ({@link VectorLoads#word}, {@link VectorLoads#low}, {@link VectorLoads#high}).
 *
 * <p>Shapes, by register budget ({@link VectorConstants#WIDE}), L = lanes per vector:
 *
 * <ul>
 *   <li>{@link #scores4Vec4Heads}: 4 key vectors (4L keys) x 4 heads = 16 accumulators, + 4 keys +
 *       1 broadcast = 21 vector registers: needs 32 (AVX-512 at any width, NEON). Per channel step
 *       16 FMAs share 4 loads and 4 broadcasts: the loop overhead (bounds checks, address
 *       arithmetic) is spread over twice the FMAs of the 2 x 4 shape, which keeps two FMA pipes fed.
 *   <li>{@link #scores2Vec4Heads}: 2 key vectors x 4 heads = 8 accumulators, 11 registers: fits
 *       AVX2's 16; 8 independent FMA chains hide a 4-cycle latency on two pipes.
 *   <li>{@link #scores2Vec1Head}: 2 key vectors x 1 head, 4 registers (groups that are not a
 *       multiple of 4).
 * </ul>
 *
 * <p>Key vectors come in pairs ({@link VectorLoads#word}, {@link VectorLoads#low}, {@link VectorLoads#high}): two consecutive f32 vectors, or the low
 * and high halves of one vector of 16-bit words (keys w.. and w + 16..), so the 16-bit shapes load
 * half as many vectors. The pairs are given by byte offsets from the step's address, so one kernel
 * serves every width and encoding: at 512 bits a block row is one f32 pair (4 x 4 then takes two
 * blocks at once), at 256 two, at 128 four (two sweeps).
 *
 * <p>Arithmetic per score lane: {@code acc = fma(k_c, q_c, acc)} for c = 0 .. d-1 in order, the
 * scalar twin's order, so the bits equal {@link ScalarTileKernels#scores}; for f16 the key comes
 * out times 2^-112 and q carries the 2^112 ({@link VectorLoads#rebias}).
 */
final class VectorScoreKernels {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final int L = F.length();
  private static final int KB = TileFormat.KEY_BLOCK;
  private static final int SPAN = TileFormat.PAIR_SPAN;
  private static final boolean WIDE = VectorConstants.WIDE;
  private static final boolean PAIR_BLOCKS = VectorConstants.PAIR_BLOCKS;
  private static final ScalarTileKernels SCALAR = new ScalarTileKernels();

  private VectorScoreKernels() {}

  /** {@link TileKernels#scores} for a float encoding. */
  static void scores(float[] q, int qOff, int g, int d, MemorySegment k, long kOff, TileEncoding e,
      int count, float[] s, int sStride) {
    int enc = VectorLoads.of(e);
    if (enc == F16) {
      // fold the 2^112 of the widening into a copy of q; when that copy overflows (|q| >= 2^16,
      // no real query) the reference kernel gives the same bits
      float[] qs = VectorLoads.rebias(q, qOff, g, d, d);
      if (qs == null) {
        SCALAR.scores(q, qOff, g, d, k, kOff, e, count, s, sStride);
        return;
      }
      q = qs;
      qOff = 0;
    }
    // a run of a block row in 4-byte units (f32 elements or 16-bit word pairs), the units that make
    // one low/high pair of key vectors, and the keys of the high vector (VectorLoads.word, low, high)
    boolean f32 = enc == F32;
    int words = f32 ? KB : SPAN, pairWords = f32 ? 2 * L : L, hiKeys = f32 ? L : SPAN;
    long rowBytes = (long) KB * e.bytes();
    int blocks = (count + KB - 1) / KB;
    long blockBytes = (long) KB * d * e.bytes();
    for (int b = 0; b < blocks; ) {
      // at 512 bits a block row is one f32 vector pair: the 4 x 4 shape takes two blocks at once
      int unit = PAIR_BLOCKS && b + 1 < blocks ? 2 : 1;
      long at = kOff + b * blockBytes;
      int h = 0;
      for (; h + 4 <= g; h += 4) {
        int q0 = qOff + h * d, j = h * sStride + b * KB;
        if (unit == 2) {
          scores4Vec4Heads(enc, q, q0, d, k, at, blockBytes, rowBytes, s, j, j + hiKeys, j + KB, j + KB + hiKeys,
              sStride);
        } else if (WIDE && words >= 2 * pairWords) { // 4 x 4 inside one block: 256 and 128 bits
          for (int w = 0; w < words; w += 2 * pairWords) {
            scores4Vec4Heads(enc, q, q0, d, k, at + 4L * w, 4L * pairWords, rowBytes, s, j + w, j + w + hiKeys,
                j + w + pairWords, j + w + pairWords + hiKeys, sStride);
          }
        } else {
          for (int w = 0; w < words; w += pairWords) {
            scores2Vec4Heads(enc, q, q0, d, k, at + 4L * w, rowBytes, s, j + w, j + w + hiKeys, sStride);
          }
        }
      }
      for (; h < g; h++) {
        for (int u = 0; u < unit; u++) {
          int q0 = qOff + h * d, j = h * sStride + (b + u) * KB;
          for (int w = 0; w < words; w += pairWords) {
            scores2Vec1Head(enc, q, q0, d, k, at + u * blockBytes + 4L * w, rowBytes, s, j + w, j + w + hiKeys);
          }
        }
      }
      b += unit;
    }
  }

  /**
   * 4 key vectors x 4 heads, 16 accumulators, 21 vector registers. Key vectors: two vector pairs
   * ({@link VectorLoads#word}, {@link VectorLoads#low}, {@link VectorLoads#high}: low and high vector), at {@code at} and {@code at + o2}, each
   * {@code + c * rowBytes} at channel c; heads: q rows q0, q0 + d, ...; the scores of vector i go
   * to {@code s[h * sStride + j_i ..]}.
   */
  static void scores4Vec4Heads(int enc, float[] q, int q0, int d, MemorySegment k, long at, long o2,
      long rowBytes, float[] s, int j0, int j1, int j2, int j3, int sStride) {
    int q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
    FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
    FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    for (int c = 0; c < d; c++) {
      long row = at + c * rowBytes;
      IntVector x = VectorLoads.word(k, row), y = VectorLoads.word(k, row + o2);
      FloatVector k0 = VectorLoads.low(enc, x);
      FloatVector k1 = VectorLoads.high(enc, x, k, row);
      FloatVector k2 = VectorLoads.low(enc, y);
      FloatVector k3 = VectorLoads.high(enc, y, k, row + o2);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      a02 = k2.fma(b, a02);
      a03 = k3.fma(b, a03);
      b = FloatVector.broadcast(F, q[q1 + c]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
      a12 = k2.fma(b, a12);
      a13 = k3.fma(b, a13);
      b = FloatVector.broadcast(F, q[q2 + c]);
      a20 = k0.fma(b, a20);
      a21 = k1.fma(b, a21);
      a22 = k2.fma(b, a22);
      a23 = k3.fma(b, a23);
      b = FloatVector.broadcast(F, q[q3 + c]);
      a30 = k0.fma(b, a30);
      a31 = k1.fma(b, a31);
      a32 = k2.fma(b, a32);
      a33 = k3.fma(b, a33);
    }
    a00.intoArray(s, j0);
    a01.intoArray(s, j1);
    a02.intoArray(s, j2);
    a03.intoArray(s, j3);
    a10.intoArray(s, j0 + sStride);
    a11.intoArray(s, j1 + sStride);
    a12.intoArray(s, j2 + sStride);
    a13.intoArray(s, j3 + sStride);
    a20.intoArray(s, j0 + 2 * sStride);
    a21.intoArray(s, j1 + 2 * sStride);
    a22.intoArray(s, j2 + 2 * sStride);
    a23.intoArray(s, j3 + 2 * sStride);
    a30.intoArray(s, j0 + 3 * sStride);
    a31.intoArray(s, j1 + 3 * sStride);
    a32.intoArray(s, j2 + 3 * sStride);
    a33.intoArray(s, j3 + 3 * sStride);
  }

  /**
   * 2 key vectors (one vector pair at {@code at}: low vector to j0, high to j1) x 4 heads,
   * 8 accumulators, 11 vector registers.
   */
  static void scores2Vec4Heads(int enc, float[] q, int q0, int d, MemorySegment k, long at,
      long rowBytes, float[] s, int j0, int j1, int sStride) {
    int q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
    FloatVector a00 = FloatVector.zero(F), a01 = a00, a10 = a00, a11 = a00;
    FloatVector a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (int c = 0; c < d; c++) {
      long row = at + c * rowBytes;
      IntVector x = VectorLoads.word(k, row);
      FloatVector k0 = VectorLoads.low(enc, x);
      FloatVector k1 = VectorLoads.high(enc, x, k, row);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      b = FloatVector.broadcast(F, q[q1 + c]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
      b = FloatVector.broadcast(F, q[q2 + c]);
      a20 = k0.fma(b, a20);
      a21 = k1.fma(b, a21);
      b = FloatVector.broadcast(F, q[q3 + c]);
      a30 = k0.fma(b, a30);
      a31 = k1.fma(b, a31);
    }
    a00.intoArray(s, j0);
    a01.intoArray(s, j1);
    a10.intoArray(s, j0 + sStride);
    a11.intoArray(s, j1 + sStride);
    a20.intoArray(s, j0 + 2 * sStride);
    a21.intoArray(s, j1 + 2 * sStride);
    a30.intoArray(s, j0 + 3 * sStride);
    a31.intoArray(s, j1 + 3 * sStride);
  }

  /** 2 key vectors (as {@link #scores2Vec4Heads}) x 1 head, 2 accumulators, 4 vector registers. */
  static void scores2Vec1Head(int enc, float[] q, int q0, int d, MemorySegment k, long at,
      long rowBytes, float[] s, int j0, int j1) {
    FloatVector a0 = FloatVector.zero(F), a1 = a0;
    for (int c = 0; c < d; c++) {
      long row = at + c * rowBytes;
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      IntVector x = VectorLoads.word(k, row);
      a0 = VectorLoads.low(enc, x).fma(b, a0);
      a1 = VectorLoads.high(enc, x, k, row).fma(b, a1);
    }
    a0.intoArray(s, j0);
    a1.intoArray(s, j1);
  }
}
