package hflash.tiles;

import static jdk.incubator.vector.VectorOperators.AND;
import static jdk.incubator.vector.VectorOperators.ASHR;
import static jdk.incubator.vector.VectorOperators.LSHL;

import hflash.memory.TileLayout;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The score kernels of {@link VectorTileKernels}: one K block row (32 keys of one channel, see
 * {@link TileLayout}) per channel step, swept over the d channels, with the scores of a few key
 * vectors for four query heads (or one) held in registers.
 *
 * <p>Shapes, by register budget ({@link VectorConstants#WIDE}):
 *
 * <ul>
 *   <li>{@code x4x4}: four key vectors x four heads = 16 accumulators, + 4 keys + 1 broadcast = 21
 *       registers: fits 32 (AVX-512 at any width, NEON); per channel step 16 FMAs share 4 loads
 *       and 4 broadcasts, so the loop overhead (bounds checks, address arithmetic) is spread over
 *       twice the FMAs of the 2 x 4 shape, which is what keeps two 256-bit FMA pipes fed.
 *   <li>{@code x2x4}: two key vectors x four heads = 8 accumulators, 11 registers: fits AVX2's 16;
 *       8 independent FMA chains hide a 4-cycle latency on two pipes exactly.
 *   <li>{@code x2x1}: two key vectors for one head (groups that are not a multiple of 4).
 * </ul>
 *
 * <p>The key vectors are given by byte offsets from the step's address, so one kernel serves
 * every width: at 512 bits a block row is two vectors (4 x 4 takes two blocks at once), at 256
 * four, at 128 eight (two sweeps). 16-bit kernels load 32-bit words and make two float vectors of
 * each ({@code lo}, {@code hi}: the pairing of {@link TileLayout}): for f16 the result is the value
 * times 2^-112 (q carries the 2^112, see {@code VectorTileKernels.rebias}), bf16 is exact.
 *
 * <p>Everything a loop touches is written out inside it (the widening, the stores): a vector that
 * crosses a call C2 does not inline is boxed on the heap, and with 16 accumulators that once made
 * a kernel 5x slower (docs/BENCHMARKS.md).
 *
 * <p>Widening of a word x (two 16-bit lanes): bf16 {@code lo = x << 16}, {@code hi = x & 0xffff0000};
 * f16 {@code lo = ((x << 16) >> 3) & 0x8fffe000}, {@code hi = (x >> 3) & 0x8fffe000} (arithmetic
 * shifts: the sign lands in bit 31 and its copies are masked off, exponent and mantissa in f32
 * position, so the float is the half times 2^-112, exact for normal and subnormal halves).
 *
 * <p>Arithmetic per score lane: {@code acc = fma(k_c, q_c, acc)} for c = 0 .. d-1 in order, the
 * scalar twin's order, so the bits equal {@link ScalarTileKernels#scores}.
 */
final class VectorScoreKernels {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final VectorSpecies<Integer> I = VectorConstants.INTS;
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  /** Keeps the sign (bit 31) and the f16 exponent and mantissa moved to bits 27..13. */
  static final int F16_MASK = 0x8fffe000;
  /** bf16 in the high half of a word is a float once the low half is cleared. */
  static final int BF16_HIGH = 0xffff0000;

  private VectorScoreKernels() {}

  // ------------------------------------------------------------------------------------- f32

  /**
   * f32, four key vectors (at {@code at + o_i + c * rowBytes}) x four heads (q rows q0, q0 + d,
   * ...); the scores of vector i go to {@code s[h * sStride + j_i ..]}.
   */
  static void f32x4x4(float[] q, int q0, int d, MemorySegment k, long at, long o1, long o2, long o3,
      long rowBytes, float[] s, int j0, int j1, int j2, int j3, int sStride) {
    int q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
    FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
    FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    for (int c = 0; c < d; c++) {
      long row = at + c * rowBytes;
      FloatVector k0 = FloatVector.fromMemorySegment(F, k, row, LE);
      FloatVector k1 = FloatVector.fromMemorySegment(F, k, row + o1, LE);
      FloatVector k2 = FloatVector.fromMemorySegment(F, k, row + o2, LE);
      FloatVector k3 = FloatVector.fromMemorySegment(F, k, row + o3, LE);
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

  /** f32, two key vectors (at {@code at}, {@code at + o1}) x four heads. */
  static void f32x2x4(float[] q, int q0, int d, MemorySegment k, long at, long o1, long rowBytes,
      float[] s, int j0, int j1, int sStride) {
    int q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
    FloatVector a00 = FloatVector.zero(F), a01 = a00, a10 = a00, a11 = a00;
    FloatVector a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (int c = 0; c < d; c++) {
      long row = at + c * rowBytes;
      FloatVector k0 = FloatVector.fromMemorySegment(F, k, row, LE);
      FloatVector k1 = FloatVector.fromMemorySegment(F, k, row + o1, LE);
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

  /** f32, two key vectors for one head. */
  static void f32x2x1(float[] q, int q0, int d, MemorySegment k, long at, long o1, long rowBytes,
      float[] s, int j0, int j1) {
    FloatVector a0 = FloatVector.zero(F), a1 = a0;
    for (int c = 0; c < d; c++) {
      long row = at + c * rowBytes;
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a0 = FloatVector.fromMemorySegment(F, k, row, LE).fma(b, a0);
      a1 = FloatVector.fromMemorySegment(F, k, row + o1, LE).fma(b, a1);
    }
    a0.intoArray(s, j0);
    a1.intoArray(s, j1);
  }

  // ---------------------------------------------------------------------------------- 16-bit

  /**
   * 16-bit, two word vectors (at {@code at}, {@code at + o1}) = four key vectors x four heads:
   * lo and hi of the first go to j0 and j1, of the second to j2 and j3.
   */
  static void halfx4x4(float[] q, int q0, int d, MemorySegment k, long at, long o1, long rowBytes,
      boolean bf16, float[] s, int j0, int j1, int j2, int j3, int sStride) {
    int q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
    FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
    FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    for (int c = 0; c < d; c++) {
      long row = at + c * rowBytes;
      IntVector x = IntVector.fromMemorySegment(I, k, row, LE);
      IntVector y = IntVector.fromMemorySegment(I, k, row + o1, LE);
      FloatVector k0 = (bf16 ? x.lanewise(LSHL, 16) : x.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, F16_MASK)).reinterpretAsFloats();
      FloatVector k1 = (bf16 ? x.lanewise(AND, BF16_HIGH) : x.lanewise(ASHR, 3).lanewise(AND, F16_MASK)).reinterpretAsFloats();
      FloatVector k2 = (bf16 ? y.lanewise(LSHL, 16) : y.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, F16_MASK)).reinterpretAsFloats();
      FloatVector k3 = (bf16 ? y.lanewise(AND, BF16_HIGH) : y.lanewise(ASHR, 3).lanewise(AND, F16_MASK)).reinterpretAsFloats();
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

  /** 16-bit, one word vector = two key vectors (lo to j0, hi to j1) x four heads. */
  static void halfx2x4(float[] q, int q0, int d, MemorySegment k, long at, long rowBytes, boolean bf16,
      float[] s, int j0, int j1, int sStride) {
    int q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
    FloatVector a00 = FloatVector.zero(F), a01 = a00, a10 = a00, a11 = a00;
    FloatVector a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (int c = 0; c < d; c++) {
      IntVector x = IntVector.fromMemorySegment(I, k, at + c * rowBytes, LE);
      FloatVector k0 = (bf16 ? x.lanewise(LSHL, 16) : x.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, F16_MASK)).reinterpretAsFloats();
      FloatVector k1 = (bf16 ? x.lanewise(AND, BF16_HIGH) : x.lanewise(ASHR, 3).lanewise(AND, F16_MASK)).reinterpretAsFloats();
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

  /** 16-bit, one word vector for one head. */
  static void halfx2x1(float[] q, int q0, int d, MemorySegment k, long at, long rowBytes, boolean bf16,
      float[] s, int j0, int j1) {
    FloatVector a0 = FloatVector.zero(F), a1 = a0;
    for (int c = 0; c < d; c++) {
      IntVector x = IntVector.fromMemorySegment(I, k, at + c * rowBytes, LE);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a0 = (bf16 ? x.lanewise(LSHL, 16) : x.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, F16_MASK)).reinterpretAsFloats().fma(b, a0);
      a1 = (bf16 ? x.lanewise(AND, BF16_HIGH) : x.lanewise(ASHR, 3).lanewise(AND, F16_MASK)).reinterpretAsFloats().fma(b, a1);
    }
    a0.intoArray(s, j0);
    a1.intoArray(s, j1);
  }
}
