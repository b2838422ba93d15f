package hflash.tiles;

import static jdk.incubator.vector.VectorOperators.B2F;
import static jdk.incubator.vector.VectorOperators.LSHR;
import static jdk.incubator.vector.VectorOperators.ZERO_EXTEND_B2I;

import hflash.memory.DType;
import hflash.memory.QuantBlocks;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector score and p.V kernels over q8_0/q4_0 tiles, bit-equal to {@link ScalarQuantKernels}.
 *
 * <p><b>Scores.</b> In a K group one code byte of the 32 keys is one 32-byte run
 * ({@link QuantBlocks}), so a byte vector of keys widens ({@code B2F}) into float lanes of keys,
 * exactly as the f32 kernel's key rows; per lane the block sum runs over the block's channels in
 * order, then the 32 keys' scales (decoded once per block column into a per-thread array) are
 * folded in with one FMA per block: {@code s = fma(blk, scale, s)}. q4_0 zero-extends the code
 * bytes to int lanes and takes the low nibbles ({@code (x & 15) - 8}) for the first half of the
 * channels and the high nibbles ({@code (x >>> 4) - 8}) for the second, two sweeps over the same
 * bytes so each lane sees the channels in the scalar twin's order; the {@code - 8} and the
 * conversion are one OR and one float subtract ({@link #Q4_MAGIC}). Shape: two key vectors x four
 * heads (8 accumulators: fits 16 registers), plus a one-head variant; with 32 registers the
 * 4 x 4 score shapes of {@link VectorQuantWideKernels}.
 *
 * <p><b>p.V.</b> A V block is ggml's contiguous block; per key the weight {@code p * scale} is one
 * scalar per head, so the codes widen once and feed four FMAs. q8_0 covers 2L channels per
 * sweep; q4_0 L code bytes (L low-nibble channels and the L high-nibble channels half a block
 * further). Channels no sweep covers (head dims below 2L, q4_0 at 128 bits where no byte vector
 * has 4 lanes) go to the scalar twin's channel loop, which keeps the bits.
 *
 * <p>At 128 bits the smallest byte vector (64 bits) holds two float vectors' lanes: it is loaded
 * once and widened as parts 0 and 1 ({@link #TWO_PARTS}).
 */
final class VectorQuantKernels {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final int L = F.length();
  /** 32 vector registers: the 4 x 4 score shapes of {@link VectorQuantWideKernels}. */
  private static final boolean WIDE = VectorQuantWideKernels.APPLIES;
  /** Two K groups side by side at 512 bits (two streams), as the 16-bit block pairs. */
  private static final boolean PAIRS = VectorConstants.PAIR_BLOCKS;
  private static final VectorSpecies<Integer> I = VectorConstants.INTS;
  /** q4_0: a nibble u or'ed into these bits is the float 2^23 + u; minus {@link #Q4_BIAS} it is u - 8. */
  static final int Q4_MAGIC = 0x4b00_0000;
  static final float Q4_BIAS = 0x1p23f + 8f;
  /** Bytes with L lanes (64 bits at least: 8 lanes when L = 4). */
  private static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, 8 * L)));
  /** True at 128 bits: one byte vector widens into two float vectors (parts 0 and 1). */
  private static final boolean TWO_PARTS = B.length() == 2 * L;
  private static final int G = QuantBlocks.GROUP;
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);
  /** Per-thread scales of one block column's 32 keys (or two groups' 64), as floats. */
  private static final ThreadLocal<float[]> SCALES = ThreadLocal.withInitial(() -> new float[2 * G]);

  private VectorQuantKernels() {}

  /** {@link TileKernels#scores} for a block dtype. */
  static void scores(float[] q, int qOff, int g, int d, MemorySegment k, long kOff, DType t, int count,
      float[] s, int sStride) {
    int len = QuantBlocks.blockLength(d);
    boolean q4 = t == DType.Q4_0;
    long rowBytes = t.rowBytes(d), blockBytes = QuantBlocks.blockBytes(t, d);
    long groupBytes = G * rowBytes;
    float[] sc = SCALES.get();
    int groups = (count + G - 1) / G;
    for (int grp = 0; grp < groups; ) {
      // 32 registers at 512 bits: two K groups at once (4 key vectors, the f16 block pairs' shape),
      // unless block pairs are off (AMD default, VectorConstants.PAIR_BLOCKS): then one group
      int unit = WIDE && PAIRS && L == 16 && grp + 1 < groups ? 2 : 1;
      for (int b = 0; b < d / len; b++) {
        long col = kOff + grp * groupBytes + b * G * blockBytes;
        for (int u = 0; u < unit; u++) {
          for (int lane = 0; lane < G; lane++) {
            sc[u * G + lane] = Float.float16ToFloat(k.get(I16_LE, col + u * groupBytes + 2L * lane));
          }
        }
        long codes = col + QuantBlocks.GROUP_SCALE_BYTES;
        boolean first = b == 0;
        int h = 0;
        for (; h + 4 <= g; h += 4) {
          int q0 = qOff + h * d + b * len, j = h * sStride + grp * G;
          if (unit == 2 && q4) {
            VectorQuantWideKernels.scoresQ4(q, q0, d, k, codes, L, groupBytes, groupBytes + L, len, sc, 0, L, G,
                G + L, first, s, j, j + L, j + G, j + G + L, sStride);
          } else if (unit == 2) {
            VectorQuantWideKernels.scoresQ8(q, q0, d, k, codes, L, groupBytes, groupBytes + L, len, sc, 0, L, G,
                G + L, first, s, j, j + L, j + G, j + G + L, sStride);
          } else if (WIDE && L == 8 && q4) {
            VectorQuantWideKernels.scoresQ4(q, q0, d, k, codes, L, 2 * L, 3 * L, len, sc, 0, L, 2 * L, 3 * L,
                first, s, j, j + L, j + 2 * L, j + 3 * L, sStride);
          } else if (WIDE && L == 8) {
            VectorQuantWideKernels.scoresQ8(q, q0, d, k, codes, L, 2 * L, 3 * L, len, sc, 0, L, 2 * L, 3 * L,
                first, s, j, j + L, j + 2 * L, j + 3 * L, sStride);
          } else {
            for (int jj = 0; jj < G; jj += 2 * L) {
              x2x4(q, q0, d, k, codes + jj, q4, len, sc, jj, first, s, j + jj, sStride);
            }
          }
        }
        for (; h < g; h++) {
          for (int u = 0; u < unit; u++) {
            for (int jj = 0; jj < G; jj += 2 * L) {
              x2x1(q, qOff + h * d + b * len, d, k, codes + u * groupBytes + jj, q4, len, sc, u * G + jj, first, s,
                  h * sStride + (grp + u) * G + jj, sStride);
            }
          }
        }
      }
      grp += unit;
    }
  }

  /** {@link TileKernels#accumulate} for a block dtype. */
  static void accumulate(float[] p, int pStride, int g, int d, MemorySegment v, long vOff, DType t,
      int count, int tileTokens, float[] acc, int accOff) {
    int len = QuantBlocks.blockLength(d);
    int half = (len + 1) / 2;
    boolean q4 = t == DType.Q4_0;
    long blockBytes = QuantBlocks.blockBytes(t, d);
    for (int b = 0; b < d / len; b++) {
      long col = vOff + (long) b * tileTokens * blockBytes;
      int a = accOff + b * len;
      if (!q4) {
        int c0 = 0;
        for (; c0 + 2 * L <= len; c0 += 2 * L) {
          int h = 0;
          for (; h + 4 <= g; h += 4) {
            pv2x4(p, h * pStride, pStride, v, col, blockBytes, count, false, c0, acc, a + h * d + c0, L, d);
          }
          for (; h < g; h++) {
            pv2x1(p, h * pStride, pStride, v, col, blockBytes, count, false, c0, acc, a + h * d + c0, L, d);
          }
        }
        ScalarQuantKernels.accumulateChannels(p, pStride, g, d, v, vOff, t, count, tileTokens, acc, accOff, b, c0, len);
      } else {
        int i0 = 0;
        for (; !TWO_PARTS && i0 + L <= len - half; i0 += L) {
          int h = 0;
          for (; h + 4 <= g; h += 4) {
            pv2x4(p, h * pStride, pStride, v, col, blockBytes, count, true, i0, acc, a + h * d + i0, half, d);
          }
          for (; h < g; h++) {
            pv2x1(p, h * pStride, pStride, v, col, blockBytes, count, true, i0, acc, a + h * d + i0, half, d);
          }
        }
        ScalarQuantKernels.accumulateChannels(p, pStride, g, d, v, vOff, t, count, tileTokens, acc, accOff, b, i0, half);
        ScalarQuantKernels.accumulateChannels(p, pStride, g, d, v, vOff, t, count, tileTokens, acc, accOff, b, half + i0, len);
      }
    }
  }

  /**
   * Scores of one block column of a K group: 2L keys (code byte 0 of the first at {@code at}) x
   * four heads (q0 = channel 0 of the block in head 0's q row, the next heads d apart). Block sums
   * per lane in channel order, then {@code s = fma(blk, scale, s)} (s starts at +0 when first).
   */
  static void x2x4(float[] q, int q0, int d, MemorySegment k, long at, boolean q4, int len,
      float[] sc, int jj, boolean first, float[] s, int j0, int sStride) {
    int q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
    int half = (len + 1) / 2;
    FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a10 = FloatVector.zero(F), a11 = FloatVector.zero(F), a20 = FloatVector.zero(F), a21 = FloatVector.zero(F), a30 = FloatVector.zero(F), a31 = FloatVector.zero(F);
    FloatVector b;
    for (int e = 0; !q4 && e < len; e++) { // q8_0: one signed byte per key
      long row = at + (long) e * G;
      FloatVector k0, k1;
      if (TWO_PARTS) {
        ByteVector x = ByteVector.fromMemorySegment(B, k, row, LE);
        k0 = (FloatVector) x.convertShape(B2F, F, 0);
        k1 = (FloatVector) x.convertShape(B2F, F, 1);
      } else {
        k0 = (FloatVector) ByteVector.fromMemorySegment(B, k, row, LE).convertShape(B2F, F, 0);
        k1 = (FloatVector) ByteVector.fromMemorySegment(B, k, row + L, LE).convertShape(B2F, F, 0);
      }
      b = FloatVector.broadcast(F, q[q0 + e]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      b = FloatVector.broadcast(F, q[q1 + e]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
      b = FloatVector.broadcast(F, q[q2 + e]);
      a20 = k0.fma(b, a20);
      a21 = k1.fma(b, a21);
      b = FloatVector.broadcast(F, q[q3 + e]);
      a30 = k0.fma(b, a30);
      a31 = k1.fma(b, a31);
    }
    for (int e = 0; q4 && e < half; e++) { // q4_0 low nibbles: channels 0 .. half-1
      long row = at + (long) e * G;
      FloatVector k0, k1;
      if (TWO_PARTS) {
        ByteVector x = ByteVector.fromMemorySegment(B, k, row, LE);
        k0 = ((IntVector) x.convertShape(ZERO_EXTEND_B2I, I, 0)).and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        k1 = ((IntVector) x.convertShape(ZERO_EXTEND_B2I, I, 1)).and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      } else {
        k0 = ((IntVector) ByteVector.fromMemorySegment(B, k, row, LE).convertShape(ZERO_EXTEND_B2I, I, 0)).and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        k1 = ((IntVector) ByteVector.fromMemorySegment(B, k, row + L, LE).convertShape(ZERO_EXTEND_B2I, I, 0)).and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      }
      b = FloatVector.broadcast(F, q[q0 + e]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      b = FloatVector.broadcast(F, q[q1 + e]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
      b = FloatVector.broadcast(F, q[q2 + e]);
      a20 = k0.fma(b, a20);
      a21 = k1.fma(b, a21);
      b = FloatVector.broadcast(F, q[q3 + e]);
      a30 = k0.fma(b, a30);
      a31 = k1.fma(b, a31);
    }
    for (int e = 0; q4 && e < len - half; e++) { // q4_0 high nibbles: channels half .. len-1
      long row = at + (long) e * G;
      FloatVector k0, k1;
      if (TWO_PARTS) {
        ByteVector x = ByteVector.fromMemorySegment(B, k, row, LE);
        k0 = ((IntVector) x.convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        k1 = ((IntVector) x.convertShape(ZERO_EXTEND_B2I, I, 1)).lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      } else {
        k0 = ((IntVector) ByteVector.fromMemorySegment(B, k, row, LE).convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        k1 = ((IntVector) ByteVector.fromMemorySegment(B, k, row + L, LE).convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      }
      b = FloatVector.broadcast(F, q[q0 + half + e]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      b = FloatVector.broadcast(F, q[q1 + half + e]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
      b = FloatVector.broadcast(F, q[q2 + half + e]);
      a20 = k0.fma(b, a20);
      a21 = k1.fma(b, a21);
      b = FloatVector.broadcast(F, q[q3 + half + e]);
      a30 = k0.fma(b, a30);
      a31 = k1.fma(b, a31);
    }
    FloatVector s0 = FloatVector.fromArray(F, sc, jj), s1 = FloatVector.fromArray(F, sc, jj + L);
    FloatVector z = FloatVector.zero(F);
    a00.fma(s0, first ? z : FloatVector.fromArray(F, s, j0)).intoArray(s, j0);
    a01.fma(s1, first ? z : FloatVector.fromArray(F, s, j0 + L)).intoArray(s, j0 + L);
    a10.fma(s0, first ? z : FloatVector.fromArray(F, s, j0 + 1 * sStride)).intoArray(s, j0 + 1 * sStride);
    a11.fma(s1, first ? z : FloatVector.fromArray(F, s, j0 + 1 * sStride + L)).intoArray(s, j0 + 1 * sStride + L);
    a20.fma(s0, first ? z : FloatVector.fromArray(F, s, j0 + 2 * sStride)).intoArray(s, j0 + 2 * sStride);
    a21.fma(s1, first ? z : FloatVector.fromArray(F, s, j0 + 2 * sStride + L)).intoArray(s, j0 + 2 * sStride + L);
    a30.fma(s0, first ? z : FloatVector.fromArray(F, s, j0 + 3 * sStride)).intoArray(s, j0 + 3 * sStride);
    a31.fma(s1, first ? z : FloatVector.fromArray(F, s, j0 + 3 * sStride + L)).intoArray(s, j0 + 3 * sStride + L);
  }

  /** {@link #x2x4} for one head. */
  static void x2x1(float[] q, int q0, int d, MemorySegment k, long at, boolean q4, int len,
      float[] sc, int jj, boolean first, float[] s, int j0, int sStride) {
    int half = (len + 1) / 2;
    FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F);
    FloatVector b;
    for (int e = 0; !q4 && e < len; e++) { // q8_0: one signed byte per key
      long row = at + (long) e * G;
      FloatVector k0, k1;
      if (TWO_PARTS) {
        ByteVector x = ByteVector.fromMemorySegment(B, k, row, LE);
        k0 = (FloatVector) x.convertShape(B2F, F, 0);
        k1 = (FloatVector) x.convertShape(B2F, F, 1);
      } else {
        k0 = (FloatVector) ByteVector.fromMemorySegment(B, k, row, LE).convertShape(B2F, F, 0);
        k1 = (FloatVector) ByteVector.fromMemorySegment(B, k, row + L, LE).convertShape(B2F, F, 0);
      }
      b = FloatVector.broadcast(F, q[q0 + e]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
    }
    for (int e = 0; q4 && e < half; e++) { // q4_0 low nibbles: channels 0 .. half-1
      long row = at + (long) e * G;
      FloatVector k0, k1;
      if (TWO_PARTS) {
        ByteVector x = ByteVector.fromMemorySegment(B, k, row, LE);
        k0 = ((IntVector) x.convertShape(ZERO_EXTEND_B2I, I, 0)).and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        k1 = ((IntVector) x.convertShape(ZERO_EXTEND_B2I, I, 1)).and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      } else {
        k0 = ((IntVector) ByteVector.fromMemorySegment(B, k, row, LE).convertShape(ZERO_EXTEND_B2I, I, 0)).and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        k1 = ((IntVector) ByteVector.fromMemorySegment(B, k, row + L, LE).convertShape(ZERO_EXTEND_B2I, I, 0)).and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      }
      b = FloatVector.broadcast(F, q[q0 + e]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
    }
    for (int e = 0; q4 && e < len - half; e++) { // q4_0 high nibbles: channels half .. len-1
      long row = at + (long) e * G;
      FloatVector k0, k1;
      if (TWO_PARTS) {
        ByteVector x = ByteVector.fromMemorySegment(B, k, row, LE);
        k0 = ((IntVector) x.convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        k1 = ((IntVector) x.convertShape(ZERO_EXTEND_B2I, I, 1)).lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      } else {
        k0 = ((IntVector) ByteVector.fromMemorySegment(B, k, row, LE).convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        k1 = ((IntVector) ByteVector.fromMemorySegment(B, k, row + L, LE).convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      }
      b = FloatVector.broadcast(F, q[q0 + half + e]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
    }
    FloatVector s0 = FloatVector.fromArray(F, sc, jj), s1 = FloatVector.fromArray(F, sc, jj + L);
    FloatVector z = FloatVector.zero(F);
    a00.fma(s0, first ? z : FloatVector.fromArray(F, s, j0)).intoArray(s, j0);
    a01.fma(s1, first ? z : FloatVector.fromArray(F, s, j0 + L)).intoArray(s, j0 + L);
  }

  /**
   * p.V over the keys of one block column (key j's block at {@code col + j * blockBytes}) for two
   * float vectors of channels x four heads: q8_0 reads 2L code bytes from {@code codeOff} (channels
   * at acc offsets 0 and {@code second} = L); q4_0 reads L bytes, low nibbles to offset 0, high
   * nibbles to {@code second} = half. {@code acc[a0 + h*d ..]} is loaded, updated, stored.
   */
  static void pv2x4(float[] p, int p0, int pStride, MemorySegment v, long col, long blockBytes,
      int count, boolean q4, long codeOff, float[] acc, int a0, int second, int d) {
    FloatVector a00 = FloatVector.fromArray(F, acc, a0), a01 = FloatVector.fromArray(F, acc, a0 + second);
    FloatVector a10 = FloatVector.fromArray(F, acc, a0 + 1 * d), a11 = FloatVector.fromArray(F, acc, a0 + 1 * d + second);
    FloatVector a20 = FloatVector.fromArray(F, acc, a0 + 2 * d), a21 = FloatVector.fromArray(F, acc, a0 + 2 * d + second);
    FloatVector a30 = FloatVector.fromArray(F, acc, a0 + 3 * d), a31 = FloatVector.fromArray(F, acc, a0 + 3 * d + second);
    for (int j = 0; j < count; j++) {
      long at = col + j * blockBytes;
      float scale = Float.float16ToFloat(v.get(I16_LE, at));
      long row = at + 2 + codeOff;
      FloatVector k0, k1;
      if (q4) { // L code bytes: low nibbles are channels i0.., high nibbles half + i0..
        IntVector x = (IntVector) ByteVector.fromMemorySegment(B, v, row, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
        k0 = x.and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        k1 = x.lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      } else if (TWO_PARTS) {
        ByteVector x = ByteVector.fromMemorySegment(B, v, row, LE);
        k0 = (FloatVector) x.convertShape(B2F, F, 0);
        k1 = (FloatVector) x.convertShape(B2F, F, 1);
      } else {
        k0 = (FloatVector) ByteVector.fromMemorySegment(B, v, row, LE).convertShape(B2F, F, 0);
        k1 = (FloatVector) ByteVector.fromMemorySegment(B, v, row + L, LE).convertShape(B2F, F, 0);
      }
      FloatVector w;
      w = FloatVector.broadcast(F, p[p0 + j] * scale);
      a00 = k0.fma(w, a00);
      a01 = k1.fma(w, a01);
      w = FloatVector.broadcast(F, p[p0 + 1 * pStride + j] * scale);
      a10 = k0.fma(w, a10);
      a11 = k1.fma(w, a11);
      w = FloatVector.broadcast(F, p[p0 + 2 * pStride + j] * scale);
      a20 = k0.fma(w, a20);
      a21 = k1.fma(w, a21);
      w = FloatVector.broadcast(F, p[p0 + 3 * pStride + j] * scale);
      a30 = k0.fma(w, a30);
      a31 = k1.fma(w, a31);
    }
    a00.intoArray(acc, a0);
    a01.intoArray(acc, a0 + second);
    a10.intoArray(acc, a0 + 1 * d);
    a11.intoArray(acc, a0 + 1 * d + second);
    a20.intoArray(acc, a0 + 2 * d);
    a21.intoArray(acc, a0 + 2 * d + second);
    a30.intoArray(acc, a0 + 3 * d);
    a31.intoArray(acc, a0 + 3 * d + second);
  }

  /** {@link #pv2x4} for one head. */
  static void pv2x1(float[] p, int p0, int pStride, MemorySegment v, long col, long blockBytes,
      int count, boolean q4, long codeOff, float[] acc, int a0, int second, int d) {
    FloatVector a00 = FloatVector.fromArray(F, acc, a0), a01 = FloatVector.fromArray(F, acc, a0 + second);
    for (int j = 0; j < count; j++) {
      long at = col + j * blockBytes;
      float scale = Float.float16ToFloat(v.get(I16_LE, at));
      long row = at + 2 + codeOff;
      FloatVector k0, k1;
      if (q4) { // L code bytes: low nibbles are channels i0.., high nibbles half + i0..
        IntVector x = (IntVector) ByteVector.fromMemorySegment(B, v, row, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
        k0 = x.and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        k1 = x.lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      } else if (TWO_PARTS) {
        ByteVector x = ByteVector.fromMemorySegment(B, v, row, LE);
        k0 = (FloatVector) x.convertShape(B2F, F, 0);
        k1 = (FloatVector) x.convertShape(B2F, F, 1);
      } else {
        k0 = (FloatVector) ByteVector.fromMemorySegment(B, v, row, LE).convertShape(B2F, F, 0);
        k1 = (FloatVector) ByteVector.fromMemorySegment(B, v, row + L, LE).convertShape(B2F, F, 0);
      }
      FloatVector w;
      w = FloatVector.broadcast(F, p[p0 + j] * scale);
      a00 = k0.fma(w, a00);
      a01 = k1.fma(w, a01);
    }
    a00.intoArray(acc, a0);
    a01.intoArray(acc, a0 + second);
  }
}
