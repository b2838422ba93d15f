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
 * The 32-register shapes of {@link VectorQuantKernels} (AVX-512 at 512 and 256 bits, NEON-sized
 * register files): four key (or channel) vectors x four heads = 16 accumulators, bit-equal to
 * {@link ScalarQuantKernels} like the 2 x 4 shapes they replace where they apply. One method per
 * dtype, so a process that runs q8_0 and then q4_0 (bench --dtype f16,q8_0,q4_0) compiles each
 * loop with its own profile.
 *
 * <p><b>Scores</b> ({@link #scoresQ8}, {@link #scoresQ4}). Per channel step the 2 x 4 kernel did 8
 * FMAs against 2 code loads, 2 widenings, 4 q broadcasts and the loop's bounds checks: about as
 * many other instructions as FMAs. Four key vectors (at 512 bits two K groups, at 256 one) halve
 * the broadcasts and the loop overhead per FMA.
 *
 * <p><b>q4_0 nibbles in 32-bit lanes.</b> A code byte is zero-extended once ({@code vpmovzxbd}) and
 * split there: {@code (x & 15) | 0x4b000000} is the float {@code 2^23 + u} (an AND-OR of
 * constants: one {@code vpternlogd}), and subtracting {@code 2^23 + 8} leaves {@code u - 8} exactly;
 * the high nibble is {@code x >>> 4} (no mask: x is zero-extended). The first version split the
 * bytes in byte lanes, where x86 has no shift: C2 widened, shifted and narrowed every vector.
 *
 * <p><b>q4_0 p.V</b> ({@link #pvQ4}). The weight {@code p[h, j] * scale[b, j]} of every key, head
 * and block column of the tile is computed before the sweep ({@link #weights}: the scales decoded
 * once per key and block, the products as vector multiplies), and the sweep broadcasts it from
 * memory: same products, same bits. q8_0 keeps the 2 x 4 p.V kernel, which measured faster than
 * this shape for it (docs/KERNELS.md).
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

  /**
   * {@link #pvQ8} for q4_0: vectors 0 and 1 are the low and high nibbles of the L code bytes at
   * {@code at0 + j * blockBytes + 2}, vectors 2 and 3 those of the L bytes at {@code at1 + ...}.
   */
  static void pvQ4(float[] w, int w0, int w1, int wStride, MemorySegment v, long at0, long at1,
      long blockBytes, int count, float[] acc, int ac0, int ac1, int ac2, int ac3, int d) {
    FloatVector a00 = FloatVector.fromArray(F, acc, ac0), a01 = FloatVector.fromArray(F, acc, ac1);
    FloatVector a02 = FloatVector.fromArray(F, acc, ac2), a03 = FloatVector.fromArray(F, acc, ac3);
    FloatVector a10 = FloatVector.fromArray(F, acc, ac0 + d), a11 = FloatVector.fromArray(F, acc, ac1 + d);
    FloatVector a12 = FloatVector.fromArray(F, acc, ac2 + d), a13 = FloatVector.fromArray(F, acc, ac3 + d);
    FloatVector a20 = FloatVector.fromArray(F, acc, ac0 + 2 * d), a21 = FloatVector.fromArray(F, acc, ac1 + 2 * d);
    FloatVector a22 = FloatVector.fromArray(F, acc, ac2 + 2 * d), a23 = FloatVector.fromArray(F, acc, ac3 + 2 * d);
    FloatVector a30 = FloatVector.fromArray(F, acc, ac0 + 3 * d), a31 = FloatVector.fromArray(F, acc, ac1 + 3 * d);
    FloatVector a32 = FloatVector.fromArray(F, acc, ac2 + 3 * d), a33 = FloatVector.fromArray(F, acc, ac3 + 3 * d);
    for (int j = 0; j < count; j++) {
      IntVector x = (IntVector) ByteVector.fromMemorySegment(B, v, at0 + j * blockBytes + 2, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
      IntVector y = (IntVector) ByteVector.fromMemorySegment(B, v, at1 + j * blockBytes + 2, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
      FloatVector k0 = x.and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      FloatVector k1 = x.lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      FloatVector k2 = y.and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      FloatVector k3 = y.lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      FloatVector x0 = FloatVector.broadcast(F, w[w0 + j]), y0 = FloatVector.broadcast(F, w[w1 + j]);
      a00 = k0.fma(x0, a00);
      a01 = k1.fma(x0, a01);
      a02 = k2.fma(y0, a02);
      a03 = k3.fma(y0, a03);
      FloatVector x1 = FloatVector.broadcast(F, w[w0 + wStride + j]), y1 = FloatVector.broadcast(F, w[w1 + wStride + j]);
      a10 = k0.fma(x1, a10);
      a11 = k1.fma(x1, a11);
      a12 = k2.fma(y1, a12);
      a13 = k3.fma(y1, a13);
      FloatVector x2 = FloatVector.broadcast(F, w[w0 + 2 * wStride + j]), y2 = FloatVector.broadcast(F, w[w1 + 2 * wStride + j]);
      a20 = k0.fma(x2, a20);
      a21 = k1.fma(x2, a21);
      a22 = k2.fma(y2, a22);
      a23 = k3.fma(y2, a23);
      FloatVector x3 = FloatVector.broadcast(F, w[w0 + 3 * wStride + j]), y3 = FloatVector.broadcast(F, w[w1 + 3 * wStride + j]);
      a30 = k0.fma(x3, a30);
      a31 = k1.fma(x3, a31);
      a32 = k2.fma(y3, a32);
      a33 = k3.fma(y3, a33);
    }
    a00.intoArray(acc, ac0);
    a01.intoArray(acc, ac1);
    a02.intoArray(acc, ac2);
    a03.intoArray(acc, ac3);
    a10.intoArray(acc, ac0 + d);
    a11.intoArray(acc, ac1 + d);
    a12.intoArray(acc, ac2 + d);
    a13.intoArray(acc, ac3 + d);
    a20.intoArray(acc, ac0 + 2 * d);
    a21.intoArray(acc, ac1 + 2 * d);
    a22.intoArray(acc, ac2 + 2 * d);
    a23.intoArray(acc, ac3 + 2 * d);
    a30.intoArray(acc, ac0 + 3 * d);
    a31.intoArray(acc, ac1 + 3 * d);
    a32.intoArray(acc, ac2 + 3 * d);
    a33.intoArray(acc, ac3 + 3 * d);
  }

  /**
   * The p.V weights of a tile: {@code w[(b * g + h) * wStride + j] = p[h * pStride + j] * scale(b, j)}
   * for every block column b, head h and key j &lt; count ({@code sc}: scratch of blocks x wStride
   * floats for the decoded scales). The products are the ones the scalar twin forms per key.
   */
  static void weights(float[] p, int pStride, int g, int blocks, MemorySegment v, long vOff, int count,
      int tileTokens, long blockBytes, float[] sc, float[] w, int wStride) {
    for (int b = 0; b < blocks; b++) {
      long col = vOff + (long) b * tileTokens * blockBytes;
      int sb = b * wStride;
      for (int j = 0; j < count; j++) {
        sc[sb + j] = ScalarQuantKernels.scale(v, col + j * blockBytes);
      }
      int bound = F.loopBound(count);
      for (int h = 0; h < g; h++) {
        int wb = (b * g + h) * wStride, pb = h * pStride;
        int j = 0;
        for (; j < bound; j += L) {
          FloatVector.fromArray(F, p, pb + j).mul(FloatVector.fromArray(F, sc, sb + j)).intoArray(w, wb + j);
        }
        for (; j < count; j++) {
          w[wb + j] = p[pb + j] * sc[sb + j];
        }
      }
    }
  }
}
