package hflash.tiles;

import static hflash.tiles.VectorLoads.BF16_HIGH;
import static hflash.tiles.VectorLoads.F16_MASK;
import static jdk.incubator.vector.VectorOperators.ASHR;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.S2I;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link PrefillKernels} with {@code jdk.incubator.vector} at the width of {@link VectorConstants}.
 *
 * <p>Register blocking ({@link VectorConstants#WIDE}): with 32 vector registers (AVX-512 at any
 * width, NEON) the score and p.V loops hold {@value #ROWS_WIDE} rows x 4 vectors = 24
 * accumulators, + 4 loaded K (or V) vectors + 1 broadcast = 29 registers; per channel (or key)
 * step 4 loads and 6 broadcasts feed 24 FMAs (the decode kernels' 4 x 4: 8 per 16). With 16
 * registers (AVX2, SSE) 4 rows x 2 vectors = 8 accumulators, 11 registers: 6 loads per 8 FMAs.
 * The rows left over (rows mod R) run a one-row loop. K and V come from heap scratch widened once
 * per block ({@link #widenKeys}), so a 16-bit tile costs what an f32 tile costs, and every loop
 * steps its arrays by a constant ({@link PrefillKernels#KEY_CHUNK}), which lets C2 hoist the range
 * checks.
 *
 * <p>As in {@link VectorScoreKernels}, every loop keeps its vectors in locals inside one method: a
 * vector crossing a call C2 does not inline is boxed on the heap.
 */
final class VectorPrefillKernels implements PrefillKernels {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final VectorSpecies<Integer> I = VectorConstants.INTS;
  private static final VectorSpecies<Short> S = VectorConstants.SHORTS;
  private static final int L = F.length();
  private static final int KC = KEY_CHUNK;
  private static final int KB = TileFormat.KEY_BLOCK;
  private static final int SPAN = TileFormat.PAIR_SPAN;
  private static final boolean WIDE = VectorConstants.WIDE;
  /** Rows of the register block with 32 registers. */
  static final int ROWS_WIDE = 6;
  /** Rows of the register block (R). */
  private static final int R = WIDE ? ROWS_WIDE : 4;
  /** Vectors of the register block (C). */
  private static final int C = WIDE ? 4 : 2;
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  private static final float F16_EXP_SHIFT = VectorLoads.F16_EXP_SHIFT;

  @Override
  public String name() {
    return "prefill-vector-" + F.vectorBitSize() + "-" + R + "x" + C;
  }

  // ----------------------------------------------------------------------------- widening

  @Override
  public void widenKeys(MemorySegment k, long kOff, TileEncoding dtype, int d, int count, float[] kf) {
    assert !dtype.quantized() && count > 0;
    int blocks = (count + KB - 1) / KB;
    int bytes = dtype.bytes();
    boolean f32 = dtype == TileEncoding.F32, bf16 = dtype == TileEncoding.BF16;
    for (int b = 0; b < blocks; b++) {
      long src = kOff + (long) b * KB * d * bytes;
      int dst = (b / 2) * d * KC + (b % 2) * KB;
      for (int c = 0; c < d; c++, src += (long) KB * bytes, dst += KC) {
        run(k, src, f32, bf16, kf, dst);
      }
    }
    if (blocks % 2 == 1) { // the second half of the last 64-key chunk: zeros (finite scores)
      int dst = (blocks / 2) * d * KC + KB;
      for (int c = 0; c < d; c++, dst += KC) {
        Arrays.fill(kf, dst, dst + KB, 0f);
      }
    }
  }

  @Override
  public void widenValues(MemorySegment v, long vOff, TileEncoding dtype, int d, int count, int tileTokens,
      float[] vf) {
    assert !dtype.quantized() && count <= tileTokens;
    int bytes = dtype.bytes();
    boolean f32 = dtype == TileEncoding.F32, bf16 = dtype == TileEncoding.BF16;
    int blocks = (d + TileFormat.CHANNEL_BLOCK - 1) / TileFormat.CHANNEL_BLOCK;
    for (int cb = 0; cb < blocks; cb++) {
      int w = TileFormat.valueBlockWidth(cb, d);
      long src = vOff + (long) cb * TileFormat.CHANNEL_BLOCK * tileTokens * bytes;
      int dst = (cb / 2) * tileTokens * KC + (cb % 2) * TileFormat.CHANNEL_BLOCK;
      for (int j = 0; j < count; j++, src += (long) w * bytes, dst += KC) {
        if (w == TileFormat.CHANNEL_BLOCK) {
          run(v, src, f32, bf16, vf, dst);
        } else { // the narrow last block: natural order
          int i = 0;
          for (; i + L <= w; i += L) {
            if (f32) {
              FloatVector.fromMemorySegment(F, v, src + 4L * i, LE).intoArray(vf, dst + i);
            } else {
              IntVector y = (IntVector) ShortVector.fromMemorySegment(S, v, src + 2L * i, LE).convertShape(S2I, I, 0);
              (bf16 ? y.lanewise(LSHL, 16).reinterpretAsFloats()
                  : y.lanewise(LSHL, 13).and(F16_MASK).reinterpretAsFloats().mul(F16_EXP_SHIFT)).intoArray(vf, dst + i);
            }
          }
          for (; i < w; i++) {
            vf[dst + i] = dtype.read(v, src + (long) i * bytes);
          }
        }
      }
    }
  }

  /**
   * One run of 32 elements at {@code src} (a channel of a K block, a row of a full V block; 16-bit
   * runs paired, see {@link TileFormat}) as exact floats into {@code dst[at .. at + 32)}. Loads,
   * widening and stores stay in this method: a FloatVector returned by a call would be boxed.
   */
  private static void run(MemorySegment seg, long src, boolean f32, boolean bf16, float[] dst, int at) {
    if (f32) {
      for (int i = 0; i < KB; i += L) {
        FloatVector.fromMemorySegment(F, seg, src + 4L * i, LE).intoArray(dst, at + i);
      }
      return;
    }
    for (int w = 0; w < SPAN; w += L) { // word w holds elements w (low half) and w + 16 (high half)
      IntVector x = IntVector.fromMemorySegment(I, seg, src + 4L * w, LE);
      // widening written out (VectorLoads): a helper returning the vectors would be boxed when not inlined
      FloatVector lo = bf16 ? x.lanewise(LSHL, 16).reinterpretAsFloats()
          : x.lanewise(LSHL, 16).lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector hi = bf16 ? x.and(BF16_HIGH).reinterpretAsFloats() : x.lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      (bf16 ? lo : lo.mul(F16_EXP_SHIFT)).intoArray(dst, at + w);
      (bf16 ? hi : hi.mul(F16_EXP_SHIFT)).intoArray(dst, at + SPAN + w);
    }
  }

  // ------------------------------------------------------------------------------- scores

  @Override
  public void scores(float[] q, int qOff, int rows, int d, float[] kf, int count, float[] s, int sStride) {
    int chunks = (count + KC - 1) / KC;
    for (int ch = 0; ch < chunks; ch++) {
      for (int sub = 0; sub < KC; sub += C * L) {
        block(q, qOff, rows, d, kf, ch * d * KC + sub, s, sStride, ch * KC + sub);
      }
    }
  }

  /** Scores of keys [j0, j0 + C * L) (widened K from k0) for every row, by register blocks. */
  private static void block(float[] q, int qOff, int rows, int d, float[] kf, int k0, float[] s, int sStride, int j0) {
    int r = 0;
    if (WIDE) {
      for (; r + R <= rows; r += R) {
        VectorPrefillScores.scores6Rows4Vec(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride);
      }
      if (r + 4 <= rows) { // rows mod 6 = 4 or 5 (W1's 16 sequences x 4 heads: 64 = 10 x 6 + 4)
        VectorPrefillScores.scores4Rows4Vec(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride);
        r += 4;
      }
      if (r + 2 <= rows) {
        VectorPrefillScores.scores2Rows4Vec(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride);
        r += 2;
      }
      if (r < rows) {
        VectorPrefillScores.scores1Row4Vec(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride);
      }
    } else {
      for (; r + R <= rows; r += R) {
        VectorPrefillScores.scores4Rows2Vec(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride);
      }
      if (r + 2 <= rows) {
        VectorPrefillScores.scores2Rows2Vec(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride);
        r += 2;
      }
      if (r < rows) {
        VectorPrefillScores.scores1Row2Vec(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride);
      }
    }
  }

  @Override
  public void scores(float[] q, int qOff, int rows, int d, float[] kf, int count, float[] s, int sStride,
      float[] rowMax) {
    Arrays.fill(rowMax, 0, rows, Float.NEGATIVE_INFINITY);
    int chunks = (count + KC - 1) / KC;
    for (int ch = 0; ch < chunks; ch++) {
      for (int sub = 0; sub < KC; sub += C * L) {
        int k0 = ch * d * KC + sub, j0 = ch * KC + sub;
        if (j0 + C * L > count) { // a block reaching into the padding keys: its max over the valid keys
          block(q, qOff, rows, d, kf, k0, s, sStride, j0);
          for (int x = 0; x < rows; x++) {
            float m = rowMax[x];
            for (int j = j0; j < count; j++) {
              m = Math.max(m, s[x * sStride + j]);
            }
            rowMax[x] = m;
          }
          continue;
        }
        int r = 0;
        if (WIDE) {
          for (; r + R <= rows; r += R) {
            VectorPrefillScores.scores6Rows4VecMax(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride, rowMax, r);
          }
          if (r + 4 <= rows) { // rows mod 6 = 4 or 5 (W1's 16 sequences x 4 heads: 64 = 10 x 6 + 4)
            VectorPrefillScores.scores4Rows4VecMax(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride, rowMax, r);
            r += 4;
          }
          if (r + 2 <= rows) {
            VectorPrefillScores.scores2Rows4VecMax(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride, rowMax, r);
            r += 2;
          }
          if (r < rows) {
            VectorPrefillScores.scores1Row4VecMax(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride, rowMax, r);
          }
        } else {
          for (; r + R <= rows; r += R) {
            VectorPrefillScores.scores4Rows2VecMax(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride, rowMax, r);
          }
          if (r + 2 <= rows) {
            VectorPrefillScores.scores2Rows2VecMax(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride, rowMax, r);
            r += 2;
          }
          if (r < rows) {
            VectorPrefillScores.scores1Row2VecMax(q, qOff + r * d, d, kf, k0, s, r * sStride + j0, sStride, rowMax, r);
          }
        }
      }
    }
  }

  // ------------------------------------------------------------------------------ softmax

  @Override
  public void expRows(float[] s, int sStride, int rows, int count, float[] m, int mOff, float[] sums) {
    VectorMath.expRows(s, sStride, rows, count, m, mOff, sums);
  }

  // ---------------------------------------------------------------------------------- p.V

  @Override
  public void accumulate(float[] p, int pStride, int rows, int d, float[] vf, int tileTokens, int count,
      float[] acc, int accOff) {
    int chunks = (d + KC - 1) / KC;
    for (int cc = 0; cc < chunks; cc++) {
      int cw = Math.min(KC, d - cc * KC);
      int base = cc * tileTokens * KC;
      int c = 0;
      for (; c + C * L <= cw; c += C * L) {
        int v0 = base + c, a0 = accOff + cc * KC + c;
        int r = 0;
        if (WIDE) {
          for (; r + R <= rows; r += R) {
            VectorPrefillValues.accumulate6Rows4Vec(p, r * pStride, pStride, vf, v0, count, acc, a0 + r * d, d);
          }
          if (r + 4 <= rows) {
            VectorPrefillValues.accumulate4Rows4Vec(p, r * pStride, pStride, vf, v0, count, acc, a0 + r * d, d);
            r += 4;
          }
          if (r + 2 <= rows) {
            VectorPrefillValues.accumulate2Rows4Vec(p, r * pStride, pStride, vf, v0, count, acc, a0 + r * d, d);
            r += 2;
          }
          if (r < rows) {
            VectorPrefillValues.accumulate1Row4Vec(p, r * pStride, vf, v0, count, acc, a0 + r * d);
          }
        } else {
          for (; r + R <= rows; r += R) {
            VectorPrefillValues.accumulate4Rows2Vec(p, r * pStride, pStride, vf, v0, count, acc, a0 + r * d, d);
          }
          if (r + 2 <= rows) {
            VectorPrefillValues.accumulate2Rows2Vec(p, r * pStride, pStride, vf, v0, count, acc, a0 + r * d, d);
            r += 2;
          }
          if (r < rows) {
            VectorPrefillValues.accumulate1Row2Vec(p, r * pStride, vf, v0, count, acc, a0 + r * d);
          }
        }
      }
      for (; c + L <= cw; c += L) { // single vectors of a narrow last chunk
        for (int r = 0; r < rows; r++) {
          VectorPrefillValues.accumulate1Row1Vec(p, r * pStride, vf, base + c, count, acc, accOff + r * d + cc * KC + c);
        }
      }
      for (; c < cw; c++) { // scalar columns
        for (int r = 0; r < rows; r++) {
          float sum = 0f;
          for (int j = 0; j < count; j++) {
            sum = Math.fma(p[r * pStride + j], vf[base + j * KC + c], sum);
          }
          acc[accOff + r * d + cc * KC + c] += sum;
        }
      }
    }
  }
}
