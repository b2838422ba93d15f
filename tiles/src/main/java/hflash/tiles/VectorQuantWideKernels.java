package hflash.tiles;

import static hflash.tiles.VectorQuantKernels.Q4_BIAS;
import static hflash.tiles.VectorQuantKernels.Q4_MAGIC;
import static jdk.incubator.vector.VectorOperators.B2F;
import static jdk.incubator.vector.VectorOperators.LSHR;
import static jdk.incubator.vector.VectorOperators.ZERO_EXTEND_B2I;

import hflash.memory.QuantBlocks;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The 32-register score shapes of {@link VectorQuantKernels} (AVX-512 at 512 and 256 bits,
 * NEON-sized register files): four key vectors x four heads = 16 accumulators, bit-equal to
 * {@link ScalarQuantKernels} like the 2 x 4 shape they replace where they apply. One method per
 * dtype, so a process that runs q8_0 and then q4_0 (bench --dtype f16,q8_0,q4_0) compiles each
 * loop with its own profile.
 *
 * <p><b>Why.</b> Per channel step the 2 x 4 kernel did 8 FMAs against 2 code loads, 2 widenings,
 * 4 q broadcasts and the loop's bounds checks: about as many other instructions as FMAs. Four key
 * vectors (at 512 bits two K groups, at 256 one) halve the broadcasts and the loop overhead per FMA.
 *
 * <p><b>q4_0 nibbles in 32-bit lanes</b> (as in every q4_0 kernel of {@link VectorQuantKernels}): a
 * code byte is zero-extended once ({@code vpmovzxbd}) and split there: {@code (x & 15) | 0x4b000000}
 * is the float {@code 2^23 + u} (an AND-OR of constants: one {@code vpternlogd}), and subtracting
 * {@code 2^23 + 8} leaves {@code u - 8} exactly; the high nibble is {@code x >>> 4} (no mask: x is
 * zero-extended). The first version split the bytes in byte lanes, where x86 has no shift: C2
 * widened, shifted and narrowed every vector.
 *
 * <p>p.V keeps the 2 x 4 kernels: a 4 x 4 p.V shape (weights {@code p * scale} of the tile
 * precomputed and broadcast from memory) measured slower for both dtypes (docs/BENCHMARKS.md
 * entry 34).
 */
final class VectorQuantWideKernels {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final VectorSpecies<Integer> I = VectorConstants.INTS;
  private static final int L = F.length();
  /** Bytes with exactly L lanes (64 bits at 256, 128 at 512); unused at 128 bits. */
  private static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, 8 * L)));
  /** True where these shapes apply: 32 registers and a byte vector of exactly L lanes. */
  static final boolean APPLIES = VectorConstants.WIDE && B.length() == L;
  private static final int G = QuantBlocks.GROUP;
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

  private VectorQuantWideKernels() {}


  /**
   * q8_0 scores of one block column for four key vectors (code byte 0 of vector i at {@code at + o_i},
   * o_0 = 0; byte c of a key is {@code c * 32} further, {@link QuantBlocks}) x four heads (q0 = the
   * block's channel 0 in head 0's q row, the next heads d apart). Per lane the block sum runs over
   * the block's channels in order, then {@code s = fma(blk, scale, s)} with the scales of vector i
   * at {@code sc[c_i ..]} (s starts at +0 when {@code first}); vector i's scores go to
   * {@code s[h * sStride + j_i ..]}.
   */
  static void scoresQ8(float[] q, int q0, int d, MemorySegment k, long at, long o1, long o2, long o3,
      int len, float[] sc, int c0, int c1, int c2, int c3, boolean first, float[] s, int j0, int j1, int j2,
      int j3, int sStride) {
    int q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
    FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
    FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    for (int c = 0; c < len; c++) { // code byte c is channel c
      long row = at + (long) c * G;
      FloatVector k0 = (FloatVector) ByteVector.fromMemorySegment(B, k, row, LE).convertShape(B2F, F, 0);
      FloatVector k1 = (FloatVector) ByteVector.fromMemorySegment(B, k, row + o1, LE).convertShape(B2F, F, 0);
      FloatVector k2 = (FloatVector) ByteVector.fromMemorySegment(B, k, row + o2, LE).convertShape(B2F, F, 0);
      FloatVector k3 = (FloatVector) ByteVector.fromMemorySegment(B, k, row + o3, LE).convertShape(B2F, F, 0);
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
    FloatVector s0 = FloatVector.fromArray(F, sc, c0), s1 = FloatVector.fromArray(F, sc, c1);
    FloatVector s2 = FloatVector.fromArray(F, sc, c2), s3 = FloatVector.fromArray(F, sc, c3);
    FloatVector z = FloatVector.zero(F);
    a00.fma(s0, first ? z : FloatVector.fromArray(F, s, j0)).intoArray(s, j0);
    a01.fma(s1, first ? z : FloatVector.fromArray(F, s, j1)).intoArray(s, j1);
    a02.fma(s2, first ? z : FloatVector.fromArray(F, s, j2)).intoArray(s, j2);
    a03.fma(s3, first ? z : FloatVector.fromArray(F, s, j3)).intoArray(s, j3);
    int r = sStride;
    a10.fma(s0, first ? z : FloatVector.fromArray(F, s, j0 + r)).intoArray(s, j0 + r);
    a11.fma(s1, first ? z : FloatVector.fromArray(F, s, j1 + r)).intoArray(s, j1 + r);
    a12.fma(s2, first ? z : FloatVector.fromArray(F, s, j2 + r)).intoArray(s, j2 + r);
    a13.fma(s3, first ? z : FloatVector.fromArray(F, s, j3 + r)).intoArray(s, j3 + r);
    r += sStride;
    a20.fma(s0, first ? z : FloatVector.fromArray(F, s, j0 + r)).intoArray(s, j0 + r);
    a21.fma(s1, first ? z : FloatVector.fromArray(F, s, j1 + r)).intoArray(s, j1 + r);
    a22.fma(s2, first ? z : FloatVector.fromArray(F, s, j2 + r)).intoArray(s, j2 + r);
    a23.fma(s3, first ? z : FloatVector.fromArray(F, s, j3 + r)).intoArray(s, j3 + r);
    r += sStride;
    a30.fma(s0, first ? z : FloatVector.fromArray(F, s, j0 + r)).intoArray(s, j0 + r);
    a31.fma(s1, first ? z : FloatVector.fromArray(F, s, j1 + r)).intoArray(s, j1 + r);
    a32.fma(s2, first ? z : FloatVector.fromArray(F, s, j2 + r)).intoArray(s, j2 + r);
    a33.fma(s3, first ? z : FloatVector.fromArray(F, s, j3 + r)).intoArray(s, j3 + r);
  }

  /**
   * {@link #scoresQ8} for q4_0: per lane the low nibbles (channels 0 .. len/2-1 in code bytes
   * 0 .. len/2-1) first, then the high nibbles (channels len/2 .. in the same bytes), the spec's
   * channel order.
   */
  static void scoresQ4(float[] q, int q0, int d, MemorySegment k, long at, long o1, long o2, long o3,
      int len, float[] sc, int c0, int c1, int c2, int c3, boolean first, float[] s, int j0, int j1, int j2,
      int j3, int sStride) {
    int half = (len + 1) / 2;
    int q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
    FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
    FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    for (int c = 0; c < half; c++) { // low nibble of code byte c: channel c
      long row = at + (long) c * G;
      IntVector x0 = (IntVector) ByteVector.fromMemorySegment(B, k, row, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
      IntVector x1 = (IntVector) ByteVector.fromMemorySegment(B, k, row + o1, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
      IntVector x2 = (IntVector) ByteVector.fromMemorySegment(B, k, row + o2, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
      IntVector x3 = (IntVector) ByteVector.fromMemorySegment(B, k, row + o3, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
      FloatVector k0 = x0.and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      FloatVector k1 = x1.and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      FloatVector k2 = x2.and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      FloatVector k3 = x3.and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
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
    for (int c = half; c < len; c++) { // high nibble of code byte c - half: channel c
      long row = at + (long) (c - half) * G;
      IntVector x0 = (IntVector) ByteVector.fromMemorySegment(B, k, row, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
      IntVector x1 = (IntVector) ByteVector.fromMemorySegment(B, k, row + o1, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
      IntVector x2 = (IntVector) ByteVector.fromMemorySegment(B, k, row + o2, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
      IntVector x3 = (IntVector) ByteVector.fromMemorySegment(B, k, row + o3, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
      FloatVector k0 = x0.lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      FloatVector k1 = x1.lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      FloatVector k2 = x2.lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      FloatVector k3 = x3.lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
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
    FloatVector s0 = FloatVector.fromArray(F, sc, c0), s1 = FloatVector.fromArray(F, sc, c1);
    FloatVector s2 = FloatVector.fromArray(F, sc, c2), s3 = FloatVector.fromArray(F, sc, c3);
    FloatVector z = FloatVector.zero(F);
    a00.fma(s0, first ? z : FloatVector.fromArray(F, s, j0)).intoArray(s, j0);
    a01.fma(s1, first ? z : FloatVector.fromArray(F, s, j1)).intoArray(s, j1);
    a02.fma(s2, first ? z : FloatVector.fromArray(F, s, j2)).intoArray(s, j2);
    a03.fma(s3, first ? z : FloatVector.fromArray(F, s, j3)).intoArray(s, j3);
    int r = sStride;
    a10.fma(s0, first ? z : FloatVector.fromArray(F, s, j0 + r)).intoArray(s, j0 + r);
    a11.fma(s1, first ? z : FloatVector.fromArray(F, s, j1 + r)).intoArray(s, j1 + r);
    a12.fma(s2, first ? z : FloatVector.fromArray(F, s, j2 + r)).intoArray(s, j2 + r);
    a13.fma(s3, first ? z : FloatVector.fromArray(F, s, j3 + r)).intoArray(s, j3 + r);
    r += sStride;
    a20.fma(s0, first ? z : FloatVector.fromArray(F, s, j0 + r)).intoArray(s, j0 + r);
    a21.fma(s1, first ? z : FloatVector.fromArray(F, s, j1 + r)).intoArray(s, j1 + r);
    a22.fma(s2, first ? z : FloatVector.fromArray(F, s, j2 + r)).intoArray(s, j2 + r);
    a23.fma(s3, first ? z : FloatVector.fromArray(F, s, j3 + r)).intoArray(s, j3 + r);
    r += sStride;
    a30.fma(s0, first ? z : FloatVector.fromArray(F, s, j0 + r)).intoArray(s, j0 + r);
    a31.fma(s1, first ? z : FloatVector.fromArray(F, s, j1 + r)).intoArray(s, j1 + r);
    a32.fma(s2, first ? z : FloatVector.fromArray(F, s, j2 + r)).intoArray(s, j2 + r);
    a33.fma(s3, first ? z : FloatVector.fromArray(F, s, j3 + r)).intoArray(s, j3 + r);
  }

}
