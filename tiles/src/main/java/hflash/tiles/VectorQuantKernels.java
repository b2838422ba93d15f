package hflash.tiles;

import static hflash.tiles.VectorLoads.Q4_HIGH;
import static hflash.tiles.VectorLoads.Q4_LOW;
import static hflash.tiles.VectorLoads.Q4_BIAS;
import static hflash.tiles.VectorLoads.Q4_MAGIC;
import static hflash.tiles.VectorLoads.Q8;
import static jdk.incubator.vector.VectorOperators.B2F;
import static jdk.incubator.vector.VectorOperators.LSHR;
import static jdk.incubator.vector.VectorOperators.ZERO_EXTEND_B2I;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector score and p.V kernels over q8_0/q4_0 tiles, bit-equal to {@link ScalarQuantKernels}. Each
 * register-blocked shape is written once for both block encodings; the load step (code bytes
 * widened to floats, {@link VectorLoads}) is written out in each shape's loop: a helper returning
 * the vectors would be boxed whenever C2 keeps it out of line (see {@link VectorFloatShapes}).
 *
 * <p><b>Scores.</b> In a K group one code byte of the 32 keys is one 32-byte run
 * ({@link TileFormat}), so a byte vector of keys widens ({@code B2F}) into float lanes of keys,
 * exactly as the f32 kernel's key rows; per lane the block sum runs over the block's channels in
 * order, then the 32 keys' scales (decoded once per block column into a per-thread array) are
 * folded in with one FMA per block: {@code s = fma(blk, scale, s)}. q4_0 zero-extends the code
 * bytes to int lanes and takes the low nibbles ({@code (x & 15) - 8}) for the first half of the
 * channels and the high nibbles ({@code (x >>> 4) - 8}) for the second: two passes over the same
 * bytes, so each lane sees the channels in the scalar twin's order; the {@code - 8} and the
 * conversion are one OR and one float subtract ({@link VectorLoads#Q4_MAGIC}). In 32-bit lanes
 * because x86 has no byte shift: split in byte lanes, C2 widened, shifted and narrowed every vector.
 *
 * <p>Shapes: {@link #blockScores4Vec4Heads} (4 key vectors x 4 heads: 16 accumulators, 21
 * registers) where 32 registers hold it and a byte vector has exactly L lanes ({@link #WIDE}): at
 * 512 bits two K groups side by side (two streams, unless block pairs are off), at 256 one group;
 * it halves the broadcasts and loop overhead per FMA of {@link #blockScores2Vec4Heads} (8
 * accumulators, 11 registers: fits 16), which serves the rest; {@link #blockScores2Vec1Head} for
 * the heads of a group that are not a multiple of 4.
 *
 * <p><b>p.V.</b> A V block is ggml's contiguous block; per key the weight {@code p * scale} is one
 * scalar per head, so the codes widen once and feed four FMAs ({@link #blockAccumulate2Vec4Heads},
 * 8 accumulators; a 4 x 4 p.V shape with the weights precomputed measured slower for both
 * encodings). q8_0 covers 2L channels per sweep; q4_0 L code bytes (L low-nibble channels and the
 * L high-nibble channels half a block further). Channels no sweep covers (head dims below 2L,
 * q4_0 at 128 bits where no byte vector has 4 lanes) go to the scalar twin's channel loop, which
 * keeps the bits.
 *
 * <p>At 128 bits the smallest byte vector (64 bits) holds two float vectors' lanes: it is loaded
 * once and widened as parts 0 and 1 ({@link #TWO_PARTS}).
 */
final class VectorQuantKernels {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final VectorSpecies<Integer> I = VectorConstants.INTS;
  private static final VectorSpecies<Byte> B = VectorLoads.B;
  private static final int L = F.length();
  /** True at 128 bits: one byte vector widens into two float vectors (parts 0 and 1). */
  private static final boolean TWO_PARTS = VectorLoads.B.length() == 2 * L;
  /** The second key vector of a 2-vector shape: same bytes, part 1 (128 bits), or L bytes further. */
  private static final long SECOND_BYTES = TWO_PARTS ? 0 : L;
  private static final int SECOND_PART = TWO_PARTS ? 1 : 0;
  /** 32 registers and a byte vector of exactly L lanes: the 4 x 4 score shape. */
  static final boolean WIDE = VectorConstants.WIDE && VectorLoads.B.length() == L;
  /** Two K groups side by side at 512 bits (two streams), as the 16-bit block pairs. */
  private static final boolean PAIRS = VectorConstants.PAIR_BLOCKS;
  private static final int G = TileFormat.GROUP;
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);
  /** Per-thread scales of one block column's 32 keys (or two groups' 64), as floats. */
  private static final ThreadLocal<float[]> SCALES = ThreadLocal.withInitial(() -> new float[2 * G]);

  private VectorQuantKernels() {}

  /** {@link TileKernels#scores} for a block encoding. */
  static void scores(float[] q, int qOff, int g, int d, MemorySegment k, long kOff, TileEncoding t, int count,
      float[] s, int sStride) {
    int len = TileFormat.blockLength(d);
    boolean q4 = t == TileEncoding.Q4_0;
    long rowBytes = t.rowBytes(d), blockBytes = TileFormat.blockBytes(t, d);
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
        long codes = col + TileFormat.GROUP_SCALE_BYTES;
        boolean first = b == 0;
        int h = 0;
        for (; h + 4 <= g; h += 4) {
          int q0 = qOff + h * d + b * len, j = h * sStride + grp * G;
          if (unit == 2) {
            blockScores4Vec4Heads(q4, q, q0, d, k, codes, L, groupBytes, groupBytes + L, len, sc, 0, L, G, G + L,
                first, s, j, j + L, j + G, j + G + L, sStride);
          } else if (WIDE && L == 8) {
            blockScores4Vec4Heads(q4, q, q0, d, k, codes, L, 2 * L, 3 * L, len, sc, 0, L, 2 * L, 3 * L, first, s,
                j, j + L, j + 2 * L, j + 3 * L, sStride);
          } else {
            for (int jj = 0; jj < G; jj += 2 * L) {
              blockScores2Vec4Heads(q4, q, q0, d, k, codes + jj, len, sc, jj, first, s, j + jj, sStride);
            }
          }
        }
        for (; h < g; h++) {
          for (int u = 0; u < unit; u++) {
            for (int jj = 0; jj < G; jj += 2 * L) {
              blockScores2Vec1Head(q4, q, qOff + h * d + b * len, k, codes + u * groupBytes + jj, len, sc,
                  u * G + jj, first, s, h * sStride + (grp + u) * G + jj);
            }
          }
        }
      }
      grp += unit;
    }
  }

  /** {@link TileKernels#accumulate} for a block encoding. */
  static void accumulate(float[] p, int pStride, int g, int d, MemorySegment v, long vOff, TileEncoding t,
      int count, int tileTokens, float[] acc, int accOff) {
    int len = TileFormat.blockLength(d);
    int half = (len + 1) / 2;
    boolean q4 = t == TileEncoding.Q4_0;
    long blockBytes = TileFormat.blockBytes(t, d);
    // q8_0: 2L channels per sweep (acc columns c and c + L); q4_0: L code bytes per sweep, their
    // low nibbles at columns i and their high nibbles at i + half; no q4_0 sweep at 128 bits
    int step = q4 ? L : 2 * L, end = q4 ? (TWO_PARTS ? 0 : len - half) : len, second = q4 ? half : L;
    for (int b = 0; b < d / len; b++) {
      long col = vOff + (long) b * tileTokens * blockBytes;
      int a = accOff + b * len;
      int c0 = 0;
      for (; c0 + step <= end; c0 += step) {
        int h = 0;
        for (; h + 4 <= g; h += 4) {
          blockAccumulate2Vec4Heads(q4, p, h * pStride, pStride, v, col, blockBytes, count, c0, acc, a + h * d + c0,
              second, d);
        }
        for (; h < g; h++) {
          blockAccumulate2Vec1Head(q4, p, h * pStride, v, col, blockBytes, count, c0, acc, a + h * d + c0, second);
        }
      }
      if (q4) {
        ScalarQuantKernels.accumulateChannels(p, pStride, g, d, v, vOff, t, count, tileTokens, acc, accOff, b, c0, half);
        ScalarQuantKernels.accumulateChannels(p, pStride, g, d, v, vOff, t, count, tileTokens, acc, accOff, b,
            half + c0, len);
      } else {
        ScalarQuantKernels.accumulateChannels(p, pStride, g, d, v, vOff, t, count, tileTokens, acc, accOff, b, c0, len);
      }
    }
  }

  /**
   * Scores of one block column for 4 key vectors x 4 heads, 16 accumulators, 21 vector registers.
   * Code byte 0 of key vector i at {@code at + o_i} (o_0 = 0; byte c of a key is {@code c * 32}
   * further); heads: q0 = the block's channel 0 in head 0's q row, the next heads d apart. Per lane
   * the block sum runs over the block's channels in order (q4_0: the low nibbles, then the high
   * ones), then {@code s = fma(blk, scale, s)} with the scales of vector i at {@code sc[c_i ..]} (s
   * starts at +0 when {@code first}); vector i's scores go to {@code s[h * sStride + j_i ..]}.
   */
  static void blockScores4Vec4Heads(boolean q4, float[] q, int q0, int d, MemorySegment k, long at, long o1,
      long o2, long o3, int len, float[] sc, int c0, int c1, int c2, int c3, boolean first, float[] s, int j0,
      int j1, int j2, int j3, int sStride) {
    int half = (len + 1) / 2;
    FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
    FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    for (int pass = 0; pass < (q4 ? 2 : 1); pass++) {
      // q8_0: code byte e is channel e; q4_0: its low nibble is channel e, its high one half + e
      int enc = q4 ? (pass == 0 ? Q4_LOW : Q4_HIGH) : Q8;
      int n = q4 ? (pass == 0 ? half : len - half) : len;
      int qa = q0 + pass * half, qb = qa + d, qc = qb + d, qd = qc + d;
      for (int e = 0; e < n; e++) {
        long row = at + (long) e * G;
        // load step, written out (VectorLoads): 4 byte vectors, widened as the pass's encoding says
        ByteVector x0 = ByteVector.fromMemorySegment(B, k, row, LE), x1 = ByteVector.fromMemorySegment(B, k, row + o1, LE);
        ByteVector x2 = ByteVector.fromMemorySegment(B, k, row + o2, LE), x3 = ByteVector.fromMemorySegment(B, k, row + o3, LE);
        FloatVector k0 = enc == Q8 ? (FloatVector) x0.convertShape(B2F, F, 0)
            : (enc == Q4_LOW ? ((IntVector) x0.convertShape(ZERO_EXTEND_B2I, I, 0)).and(15)
                : ((IntVector) x0.convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4)).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        FloatVector k1 = enc == Q8 ? (FloatVector) x1.convertShape(B2F, F, 0)
            : (enc == Q4_LOW ? ((IntVector) x1.convertShape(ZERO_EXTEND_B2I, I, 0)).and(15)
                : ((IntVector) x1.convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4)).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        FloatVector k2 = enc == Q8 ? (FloatVector) x2.convertShape(B2F, F, 0)
            : (enc == Q4_LOW ? ((IntVector) x2.convertShape(ZERO_EXTEND_B2I, I, 0)).and(15)
                : ((IntVector) x2.convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4)).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        FloatVector k3 = enc == Q8 ? (FloatVector) x3.convertShape(B2F, F, 0)
            : (enc == Q4_LOW ? ((IntVector) x3.convertShape(ZERO_EXTEND_B2I, I, 0)).and(15)
                : ((IntVector) x3.convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4)).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        FloatVector b = FloatVector.broadcast(F, q[qa + e]);
        a00 = k0.fma(b, a00);
        a01 = k1.fma(b, a01);
        a02 = k2.fma(b, a02);
        a03 = k3.fma(b, a03);
        b = FloatVector.broadcast(F, q[qb + e]);
        a10 = k0.fma(b, a10);
        a11 = k1.fma(b, a11);
        a12 = k2.fma(b, a12);
        a13 = k3.fma(b, a13);
        b = FloatVector.broadcast(F, q[qc + e]);
        a20 = k0.fma(b, a20);
        a21 = k1.fma(b, a21);
        a22 = k2.fma(b, a22);
        a23 = k3.fma(b, a23);
        b = FloatVector.broadcast(F, q[qd + e]);
        a30 = k0.fma(b, a30);
        a31 = k1.fma(b, a31);
        a32 = k2.fma(b, a32);
        a33 = k3.fma(b, a33);
      }
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
   * Scores of one block column for 2 key vectors (2L keys from code byte 0 at {@code at}, scales at
   * {@code sc[jj ..]}) x 4 heads, 8 accumulators, 11 vector registers; otherwise as
   * {@link #blockScores4Vec4Heads}. The scores go to {@code s[h * sStride + j0 ..]}.
   */
  static void blockScores2Vec4Heads(boolean q4, float[] q, int q0, int d, MemorySegment k, long at, int len,
      float[] sc, int jj, boolean first, float[] s, int j0, int sStride) {
    int half = (len + 1) / 2;
    FloatVector a00 = FloatVector.zero(F), a01 = a00, a10 = a00, a11 = a00;
    FloatVector a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (int pass = 0; pass < (q4 ? 2 : 1); pass++) {
      int enc = q4 ? (pass == 0 ? Q4_LOW : Q4_HIGH) : Q8;
      int n = q4 ? (pass == 0 ? half : len - half) : len;
      int qa = q0 + pass * half, qb = qa + d, qc = qb + d, qd = qc + d;
      for (int e = 0; e < n; e++) {
        long row = at + (long) e * G;
        // load step, written out (VectorLoads); at 128 bits both vectors are parts of one byte vector
        ByteVector x0 = ByteVector.fromMemorySegment(B, k, row, LE);
        ByteVector x1 = TWO_PARTS ? x0 : ByteVector.fromMemorySegment(B, k, row + SECOND_BYTES, LE);
        FloatVector k0 = enc == Q8 ? (FloatVector) x0.convertShape(B2F, F, 0)
            : (enc == Q4_LOW ? ((IntVector) x0.convertShape(ZERO_EXTEND_B2I, I, 0)).and(15)
                : ((IntVector) x0.convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4)).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        FloatVector k1 = enc == Q8 ? (FloatVector) x1.convertShape(B2F, F, SECOND_PART)
            : (enc == Q4_LOW ? ((IntVector) x1.convertShape(ZERO_EXTEND_B2I, I, SECOND_PART)).and(15)
                : ((IntVector) x1.convertShape(ZERO_EXTEND_B2I, I, SECOND_PART)).lanewise(LSHR, 4)).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        FloatVector b = FloatVector.broadcast(F, q[qa + e]);
        a00 = k0.fma(b, a00);
        a01 = k1.fma(b, a01);
        b = FloatVector.broadcast(F, q[qb + e]);
        a10 = k0.fma(b, a10);
        a11 = k1.fma(b, a11);
        b = FloatVector.broadcast(F, q[qc + e]);
        a20 = k0.fma(b, a20);
        a21 = k1.fma(b, a21);
        b = FloatVector.broadcast(F, q[qd + e]);
        a30 = k0.fma(b, a30);
        a31 = k1.fma(b, a31);
      }
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

  /** {@link #blockScores2Vec4Heads} for 1 head: 2 accumulators, 4 vector registers. */
  static void blockScores2Vec1Head(boolean q4, float[] q, int q0, MemorySegment k, long at, int len,
      float[] sc, int jj, boolean first, float[] s, int j0) {
    int half = (len + 1) / 2;
    FloatVector a00 = FloatVector.zero(F), a01 = a00;
    for (int pass = 0; pass < (q4 ? 2 : 1); pass++) {
      int enc = q4 ? (pass == 0 ? Q4_LOW : Q4_HIGH) : Q8;
      int n = q4 ? (pass == 0 ? half : len - half) : len;
      int qa = q0 + pass * half;
      for (int e = 0; e < n; e++) {
        long row = at + (long) e * G;
        FloatVector b = FloatVector.broadcast(F, q[qa + e]);
        // load step, written out (VectorLoads); at 128 bits both vectors are parts of one byte vector
        ByteVector x0 = ByteVector.fromMemorySegment(B, k, row, LE);
        ByteVector x1 = TWO_PARTS ? x0 : ByteVector.fromMemorySegment(B, k, row + SECOND_BYTES, LE);
        FloatVector k0 = enc == Q8 ? (FloatVector) x0.convertShape(B2F, F, 0)
            : (enc == Q4_LOW ? ((IntVector) x0.convertShape(ZERO_EXTEND_B2I, I, 0)).and(15)
                : ((IntVector) x0.convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4)).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        FloatVector k1 = enc == Q8 ? (FloatVector) x1.convertShape(B2F, F, SECOND_PART)
            : (enc == Q4_LOW ? ((IntVector) x1.convertShape(ZERO_EXTEND_B2I, I, SECOND_PART)).and(15)
                : ((IntVector) x1.convertShape(ZERO_EXTEND_B2I, I, SECOND_PART)).lanewise(LSHR, 4)).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        a00 = k0.fma(b, a00);
        a01 = k1.fma(b, a01);
      }
    }
    FloatVector s0 = FloatVector.fromArray(F, sc, jj), s1 = FloatVector.fromArray(F, sc, jj + L);
    FloatVector z = FloatVector.zero(F);
    a00.fma(s0, first ? z : FloatVector.fromArray(F, s, j0)).intoArray(s, j0);
    a01.fma(s1, first ? z : FloatVector.fromArray(F, s, j0 + L)).intoArray(s, j0 + L);
  }

  /**
   * p.V over the keys of one block column (key j's block at {@code col + j * blockBytes}) for 2
   * channel vectors x 4 heads, 8 accumulators, 11 vector registers: q8_0 reads 2L code bytes from
   * {@code codeOff} (channels at acc offsets 0 and {@code second} = L); q4_0 reads L bytes, low
   * nibbles to offset 0, high nibbles to {@code second} = half. {@code acc[a0 + h*d ..]} is loaded,
   * updated, stored.
   */
  static void blockAccumulate2Vec4Heads(boolean q4, float[] p, int p0, int pStride, MemorySegment v, long col,
      long blockBytes, int count, long codeOff, float[] acc, int a0, int second, int d) {
    FloatVector a00 = FloatVector.fromArray(F, acc, a0), a01 = FloatVector.fromArray(F, acc, a0 + second);
    FloatVector a10 = FloatVector.fromArray(F, acc, a0 + 1 * d), a11 = FloatVector.fromArray(F, acc, a0 + 1 * d + second);
    FloatVector a20 = FloatVector.fromArray(F, acc, a0 + 2 * d), a21 = FloatVector.fromArray(F, acc, a0 + 2 * d + second);
    FloatVector a30 = FloatVector.fromArray(F, acc, a0 + 3 * d), a31 = FloatVector.fromArray(F, acc, a0 + 3 * d + second);
    for (int j = 0; j < count; j++) {
      long at = col + j * blockBytes;
      float scale = Float.float16ToFloat(v.get(I16_LE, at));
      long row = at + 2 + codeOff;
      // q4_0: one load of L code bytes, low and high nibbles; q8_0: 2L code bytes
      // load step, written out (VectorLoads): q4_0 one byte vector, low and high nibbles; q8_0 2L bytes
      ByteVector x0 = ByteVector.fromMemorySegment(B, v, row, LE);
      FloatVector k0, k1;
      if (q4) {
        IntVector u = (IntVector) x0.convertShape(ZERO_EXTEND_B2I, I, 0);
        k0 = u.and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        k1 = u.lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      } else {
        ByteVector x1 = TWO_PARTS ? x0 : ByteVector.fromMemorySegment(B, v, row + SECOND_BYTES, LE);
        k0 = (FloatVector) x0.convertShape(B2F, F, 0);
        k1 = (FloatVector) x1.convertShape(B2F, F, SECOND_PART);
      }
      FloatVector w = FloatVector.broadcast(F, p[p0 + j] * scale);
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

  /** {@link #blockAccumulate2Vec4Heads} for 1 head: 2 accumulators, 4 vector registers. */
  static void blockAccumulate2Vec1Head(boolean q4, float[] p, int p0, MemorySegment v, long col, long blockBytes,
      int count, long codeOff, float[] acc, int a0, int second) {
    FloatVector a00 = FloatVector.fromArray(F, acc, a0), a01 = FloatVector.fromArray(F, acc, a0 + second);
    for (int j = 0; j < count; j++) {
      long at = col + j * blockBytes;
      float scale = Float.float16ToFloat(v.get(I16_LE, at));
      long row = at + 2 + codeOff;
      // load step, written out (VectorLoads): q4_0 one byte vector, low and high nibbles; q8_0 2L bytes
      ByteVector x0 = ByteVector.fromMemorySegment(B, v, row, LE);
      FloatVector k0, k1;
      if (q4) {
        IntVector u = (IntVector) x0.convertShape(ZERO_EXTEND_B2I, I, 0);
        k0 = u.and(15).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
        k1 = u.lanewise(LSHR, 4).or(Q4_MAGIC).reinterpretAsFloats().sub(Q4_BIAS);
      } else {
        ByteVector x1 = TWO_PARTS ? x0 : ByteVector.fromMemorySegment(B, v, row + SECOND_BYTES, LE);
        k0 = (FloatVector) x0.convertShape(B2F, F, 0);
        k1 = (FloatVector) x1.convertShape(B2F, F, SECOND_PART);
      }
      FloatVector w = FloatVector.broadcast(F, p[p0 + j] * scale);
      a00 = k0.fma(w, a00);
      a01 = k1.fma(w, a01);
    }
    a00.intoArray(acc, a0);
    a01.intoArray(acc, a0 + second);
  }
}
