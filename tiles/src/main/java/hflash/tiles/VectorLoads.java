package hflash.tiles;

import static jdk.incubator.vector.VectorOperators.EQ;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The constants of the load-and-widen step of every vector kernel, and the f16 rebias of q or p.
 * The step itself is written out inside each register-blocked shape's loop, never in a helper
 * method: a Vector that crosses a call C2 does not inline is boxed on the heap, and C2 may refuse
 * any call in user code (docs/KERNELS.md, "Inlining"). So this class holds only scalars.
 *
 * <p>Encodings of a float tile: {@link #F32}, {@link #BF16}, {@link #F16}; of a block tile's code
 * bytes: {@link #Q8}, {@link #Q4_LOW}, {@link #Q4_HIGH}.
 *
 * <p><b>16-bit widening.</b> Full 16-bit runs are paired ({@code TileFormat.PAIR_SPAN}): a 32-bit
 * word x holds elements w (low half) and w + 16 (high half). bf16: {@code lo = x << 16},
 * {@code hi = x & 0xffff0000} ({@link #BF16_HIGH}), exact. f16: {@code lo = ((x << 16) >> 3) &
 * 0x8fffe000}, {@code hi = (x >> 3) & 0x8fffe000} ({@link #F16_MASK}; arithmetic shifts: the sign
 * lands in bit 31 and its copies are masked off, exponent and mantissa move to f32 position),
 * which is the half times 2^-112, exact for normal and subnormal halves; the kernels fold the
 * 2^112 into a copy of q or p ({@link #rebias}). f32 pairs are two consecutive vectors. Natural-order
 * runs (the narrow last V block, box summaries) sign-extend shorts to ints ({@code S2I}) and
 * shift by 16 (bf16) or by 13 then mask (f16).
 *
 * <p><b>Block codes.</b> L code bytes from {@link #B}, widened to float lanes (part 0, or part 1
 * for the upper half of a 64-bit byte vector at 128 bits): q8_0 {@code B2F}; q4_0
 * {@code ZERO_EXTEND_B2I}, then {@code x & 15} ({@link #Q4_LOW}) or {@code x >>> 4}
 * ({@link #Q4_HIGH}), or'ed into {@link #Q4_MAGIC} and minus {@link #Q4_BIAS}: the nibble minus 8.
 */
final class VectorLoads {

  /** f32 elements: a plain load. */
  static final int F32 = 0;
  /** Paired bf16 words. */
  static final int BF16 = 1;
  /** Paired f16 words, widened to the value times 2^-112. */
  static final int F16 = 2;
  /** q8_0 code bytes: signed, converted to float. */
  static final int Q8 = 3;
  /** q4_0 code bytes, low nibbles: {@code (x & 15) - 8}. */
  static final int Q4_LOW = 4;
  /** q4_0 code bytes, high nibbles: {@code (x >>> 4) - 8}. */
  static final int Q4_HIGH = 5;

  /** Keeps the sign (bit 31) and the f16 exponent and mantissa moved to bits 27..13. */
  static final int F16_MASK = 0x8fffe000;
  /** bf16 in the high half of a word is a float once the low half is cleared. */
  static final int BF16_HIGH = 0xffff0000;
  /** 2^112: moves an f16 exponent (bias 15) to the f32 bias (127). */
  static final float F16_EXP_SHIFT = 0x1p112f;
  /** q4_0: a nibble u or'ed into these bits is the float 2^23 + u; minus {@link #Q4_BIAS} it is u - 8. */
  static final int Q4_MAGIC = 0x4b00_0000;
  static final float Q4_BIAS = 0x1p23f + 8f;

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final int L = F.length();
  /** Bytes with L lanes (64 bits at least: 8 lanes when L = 4, widened as two parts). */
  static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, 8 * L)));
  /** The byte offset of the high vector of an f32 pair: the next L floats. */
  static final long F32_HIGH = (long) L * Float.BYTES;

  private VectorLoads() {}

  /** The float-tile encoding of {@code e} ({@link #F32}, {@link #BF16} or {@link #F16}). */
  static int of(TileEncoding e) {
    return switch (e) {
      case F32 -> F32;
      case BF16 -> BF16;
      case F16 -> F16;
      default -> throw new IllegalArgumentException("not a float tile encoding: " + e.id());
    };
  }

  /** Per-thread copy of q or p scaled by 2^112 (see {@link #rebias}): grown on demand, then reused. */
  private static final ThreadLocal<float[][]> REBIASED = ThreadLocal.withInitial(() -> new float[1][0]);

  /**
   * Rows {@code x[off + r*stride .. + n)} for {@code r < rows}, times 2^112, into a per-thread array
   * (same row stride), or null when a product overflows. Why: the f16 widening without its final
   * multiply yields {@code v * 2^-112} exactly (also for subnormal halves, which become f32
   * subnormals, still exact), so {@code fma(x * 2^112, v * 2^-112, acc)} rounds the same real
   * product as {@code fma(x, v, acc)}: the same bits, and one vector multiply fewer per loaded
   * vector (a fifth of the FMA-port work of an f16 tile). x * 2^112 is exact unless it overflows,
   * i.e. for |x| below 2^16; queries and softmax weights are far below that in practice, and the
   * callers fall back to the scalar reference otherwise (sampled's guard lets weights reach e^20).
   */
  static float[] rebias(float[] x, int off, int rows, int n, int stride) {
    float[][] holder = REBIASED.get();
    int size = rows * stride;
    if (holder[0].length < size) {
      holder[0] = new float[Math.max(size, 2 * holder[0].length)];
    }
    float[] out = holder[0];
    FloatVector big = FloatVector.zero(F);
    int bound = F.loopBound(n);
    boolean finite = true;
    for (int r = 0; r < rows; r++) {
      int from = off + r * stride, to = r * stride;
      int i = 0;
      for (; i < bound; i += L) {
        FloatVector y = FloatVector.fromArray(F, x, from + i).mul(F16_EXP_SHIFT);
        y.intoArray(out, to + i);
        big = big.max(y.abs());
      }
      for (; i < n; i++) {
        float y = x[from + i] * F16_EXP_SHIFT;
        out[to + i] = y;
        finite &= Float.isFinite(y);
      }
    }
    return finite && !big.compare(EQ, Float.POSITIVE_INFINITY).anyTrue() ? out : null;
  }
}
