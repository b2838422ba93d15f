package hflash.tiles;

import static jdk.incubator.vector.VectorOperators.ASHR;
import static jdk.incubator.vector.VectorOperators.B2F;
import static jdk.incubator.vector.VectorOperators.EQ;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.LSHR;
import static jdk.incubator.vector.VectorOperators.S2I;
import static jdk.incubator.vector.VectorOperators.ZERO_EXTEND_B2I;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The load step of every vector kernel: one chunk of a K or V tile in its stored encoding, widened
 * to L float lanes. The register-blocked kernels are written once per shape and call these helpers
 * inside their hot loop with the encoding as an argument (Lucene's op/opBody split): the helpers
 * are small, so C2 inlines them, folds the encoding tests against the branch profile (a process
 * that reads one dtype keeps one path) and keeps every vector in a register. Nothing here may grow
 * big: a helper C2 has already compiled into more than {@code InlineSmallCode} bytes is no longer
 * inlined, and its FloatVector result is then boxed on the heap.
 *
 * <p>Encodings of a float tile ({@link #F32}, {@link #BF16}, {@link #F16}) are read by
 * {@link #word}, {@link #low} and {@link #high}; the block dtypes' code bytes ({@link #Q8}, {@link #Q4_LOW}, {@link #Q4_HIGH}) by
 * {@link #codes}.
 *
 * <p><b>16-bit widening.</b> Full 16-bit runs are paired ({@code TileEncoding.PAIR_SPAN}): a
 * 32-bit word holds elements w (low half) and w + 16 (high half). bf16: {@code lo = x << 16},
 * {@code hi = x & 0xffff0000}, exact. f16: {@code lo = ((x << 16) >> 3) & 0x8fffe000},
 * {@code hi = (x >> 3) & 0x8fffe000} (arithmetic shifts: the sign lands in bit 31 and its copies
 * are masked off, exponent and mantissa move to f32 position), which is the half times 2^-112,
 * exact for normal and subnormal halves; the kernels fold the 2^112 into a copy of q or p
 * ({@link #F16_EXP_SHIFT}). Natural-order runs ({@link #halves}) sign-extend shorts to ints and
 * shift by 13 instead of 16 then 3.
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
  private static final VectorSpecies<Integer> I = VectorConstants.INTS;
  private static final VectorSpecies<Short> S = VectorConstants.SHORTS;
  private static final int L = F.length();
  /** Bytes with L lanes (64 bits at least: 8 lanes when L = 4, widened as two parts). */
  static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, 8 * L)));
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

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

  /**
   * The first load of a vector pair of a float tile at {@code at}: L 32-bit lanes (f32 elements,
   * or L paired 16-bit words). A pair is two float vectors: {@link #low} and {@link #high} of this
   * word vector. Loading the word once per pair matters: two loads of the same address, one per
   * half, were not merged by C2 (a second load and bounds check per step).
   */
  static IntVector word(MemorySegment seg, long at) {
    return IntVector.fromMemorySegment(I, seg, at, LE);
  }

  /** The low vector of the pair whose {@link #word} is {@code x}: the f32 elements, or the low halves. */
  static FloatVector low(int enc, IntVector x) {
    return enc == F32 ? x.reinterpretAsFloats() : paired(x, enc == BF16, false);
  }

  /**
   * The high vector of the pair at {@code at} whose {@link #word} is {@code x}: the next L f32
   * elements (a second load at a constant offset), or the high halves of the words.
   */
  static FloatVector high(int enc, IntVector x, MemorySegment seg, long at) {
    return enc == F32 ? FloatVector.fromMemorySegment(F, seg, at + (long) L * Float.BYTES, LE)
        : paired(x, enc == BF16, true);
  }

  /** The low or high halves of paired 16-bit words as floats (f16 times 2^-112). */
  static FloatVector paired(IntVector x, boolean bf16, boolean high) {
    if (bf16) {
      return (high ? x.and(BF16_HIGH) : x.lanewise(LSHL, 16)).reinterpretAsFloats();
    }
    return (high ? x : x.lanewise(LSHL, 16)).lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
  }

  /**
   * L consecutive 16-bit values in natural order at {@code at} (the narrow last V block, a box
   * summary) as floats: bf16 exact, f16 times 2^-112.
   */
  static FloatVector halves(MemorySegment seg, long at, boolean bf16) {
    IntVector bits = (IntVector) ShortVector.fromMemorySegment(S, seg, at, LE).convertShape(S2I, I, 0);
    return (bf16 ? bits.lanewise(LSHL, 16) : bits.lanewise(LSHL, 13).and(F16_MASK)).reinterpretAsFloats();
  }

  /**
   * L code bytes of a block dtype widened to floats: the bytes from {@code at}, lanes of part
   * {@code part} (0, or 1 for the upper half of a 64-bit byte vector at 128 bits); q8_0 as signed
   * values, q4_0 as nibble minus 8 ({@link #Q4_LOW} or {@link #Q4_HIGH}).
   */
  static FloatVector codes(int enc, MemorySegment seg, long at, int part) {
    ByteVector x = ByteVector.fromMemorySegment(B, seg, at, LE);
    if (enc == Q8) {
      return (FloatVector) x.convertShape(B2F, F, part);
    }
    IntVector u = (IntVector) x.convertShape(ZERO_EXTEND_B2I, I, part);
    return (enc == Q4_LOW ? u.and(15) : u.lanewise(LSHR, 4)).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
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
