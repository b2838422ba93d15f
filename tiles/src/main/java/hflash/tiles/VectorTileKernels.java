package hflash.tiles;

import static jdk.incubator.vector.VectorOperators.AND;
import static jdk.incubator.vector.VectorOperators.EQ;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.MAX;
import static jdk.incubator.vector.VectorOperators.S2I;

import hflash.memory.DType;
import hflash.memory.TileLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@code jdk.incubator.vector} kernels at the width chosen by {@link VectorConstants}.
 *
 * <p>Loop shape (Lucene's): a {@code loopBound} vector body, then a scalar tail, never a masked
 * tail. Heads are processed in blocks of four so that each K or V vector loaded from the cache
 * feeds four FMAs (one per query head of the group) before the next load: the group shares every
 * load, which is what makes the decode step memory-bound rather than load-bound.
 *
 * <p>The score and p.V kernels live in {@link VectorScoreKernels} and {@link VectorValueKernels};
 * this class picks their shape: 4 vectors x 4 heads where the JIT has 32 vector registers
 * ({@link VectorConstants#WIDE}), 2 x 4 where it has 16 (AVX2, SSE), and at 512 bits the 4 x 4
 * shape takes two blocks at once (a block row is two vectors there). Full 16-bit runs are paired
 * ({@link TileLayout}) and widened with shifts and masks on 32-bit words; f16 comes out times
 * 2^-112, with the 2^112 folded into a copy of q or p ({@link #rebias}), exact for normal and
 * subnormal halves (the cache never stores Inf/NaN, see {@code KvCache}). When that copy would
 * overflow the call goes to the scalar reference, which gives the same bits.
 */
final class VectorTileKernels implements TileKernels {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final VectorSpecies<Short> S = VectorConstants.SHORTS;
  private static final VectorSpecies<Integer> I = VectorConstants.INTS;
  private static final int L = F.length();
  private static final int KB = TileLayout.KEY_BLOCK;
  private static final int CB = TileLayout.CHANNEL_BLOCK;
  /** 4 x 4 kernel shapes: the register file holds 16 accumulators (see VectorConstants). */
  private static final boolean WIDE = VectorConstants.WIDE;
  /** At 512 bits a block row is two vectors: the 4 x 4 shape then covers two blocks (or not: see VectorConstants). */
  private static final boolean PAIR_BLOCKS = VectorConstants.PAIR_BLOCKS;
  private static final ScalarTileKernels SCALAR = new ScalarTileKernels();
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
  /** 2^112: moves an f16 exponent (bias 15) to the f32 bias (127). */
  private static final float F16_EXP_SHIFT = 0x1p112f;

  VectorTileKernels() {
    if (F.vectorBitSize() < 128) {
      throw new UnsupportedOperationException("no vector kernel for width " + F.vectorBitSize());
    }
  }

  @Override
  public String name() {
    return "vector-" + F.vectorBitSize();
  }

  @Override
  public int bitSize() {
    return F.vectorBitSize();
  }

  @Override
  public String shape() {
    // 4 x 4 inside one block needs four vectors per block row (256 and 128 bits)
    return PAIR_BLOCKS ? "4x4-block-pairs" : WIDE && KB >= 4 * L ? "4x4" : "2x4";
  }

  // ---------------------------------------------------------------------------------- scores

  @Override
  public void scores(float[] q, int qOff, int g, int d, MemorySegment k, long kOff, DType dtype,
      int count, float[] s, int sStride) {
    assert g > 0 && d > 0 && count >= 0 && sStride >= (count + KB - 1) / KB * KB;
    if (dtype.quantized()) {
      VectorQuantKernels.scores(q, qOff, g, d, k, kOff, dtype, count, s, sStride);
      return;
    }
    boolean f32 = dtype == DType.F32, bf16 = dtype == DType.BF16;
    if (dtype == DType.F16) {
      // fold the 2^112 of the widening into a copy of q (see rebias); when that copy overflows
      // (|q| >= 2^16, no real query) the reference kernel gives the same bits
      float[] qs = rebias(q, qOff, g, d, d);
      if (qs == null) {
        SCALAR.scores(q, qOff, g, d, k, kOff, dtype, count, s, sStride);
        return;
      }
      q = qs;
      qOff = 0;
    }
    int blocks = (count + KB - 1) / KB;
    long blockBytes = (long) KB * d * dtype.bytes();
    for (int b = 0; b < blocks; ) {
      // at 512 bits a block row is one vector pair: the 4 x 4 shape takes two blocks at once
      int unit = PAIR_BLOCKS && b + 1 < blocks ? 2 : 1;
      long at = kOff + b * blockBytes;
      int h = 0;
      for (; h + 4 <= g; h += 4) {
        int q0 = qOff + h * d, j = h * sStride + b * KB;
        if (f32) {
          scoresF32(q, q0, d, k, at, blockBytes, unit, s, j, sStride);
        } else {
          scoresHalf(q, q0, d, k, at, blockBytes, unit, bf16, s, j, sStride);
        }
      }
      for (; h < g; h++) {
        for (int u = 0; u < unit; u++) {
          int q0 = qOff + h * d, j = h * sStride + (b + u) * KB;
          long bt = at + u * blockBytes;
          if (f32) {
            for (int jj = 0; jj < KB; jj += 2 * L) {
              VectorScoreKernels.f32x2x1(q, q0, d, k, bt + jj * 4L, L * 4L, KB * 4L, s, j + jj, j + jj + L);
            }
          } else {
            for (int w = 0; w < TileLayout.PAIR_SPAN; w += L) {
              VectorScoreKernels.halfx2x1(q, q0, d, k, bt + w * 4L, KB * 2L, bf16, s, j + w, j + w + 16);
            }
          }
        }
      }
      b += unit;
    }
  }

  /** One f32 unit (one block, or two at 512 bits) for four heads, in the shape the registers allow. */
  private static void scoresF32(float[] q, int q0, int d, MemorySegment k, long at, long blockBytes,
      int unit, float[] s, int j, int sStride) {
    long v = L * 4L, row = KB * 4L;
    if (unit == 2) {
      VectorScoreKernels.f32x4x4(q, q0, d, k, at, v, blockBytes, blockBytes + v, row, s, j, j + L, j + KB,
          j + KB + L, sStride);
    } else if (WIDE && KB >= 4 * L) {
      for (int jj = 0; jj < KB; jj += 4 * L) {
        VectorScoreKernels.f32x4x4(q, q0, d, k, at + jj * 4L, v, 2 * v, 3 * v, row, s, j + jj, j + jj + L,
            j + jj + 2 * L, j + jj + 3 * L, sStride);
      }
    } else {
      for (int jj = 0; jj < KB; jj += 2 * L) {
        VectorScoreKernels.f32x2x4(q, q0, d, k, at + jj * 4L, v, row, s, j + jj, j + jj + L, sStride);
      }
    }
  }

  /**
   * One paired 16-bit unit for four heads: word w of a block row holds keys w and w + 16, so a
   * vector of L words gives the scores of keys w.. and w + 16.. .
   */
  private static void scoresHalf(float[] q, int q0, int d, MemorySegment k, long at, long blockBytes,
      int unit, boolean bf16, float[] s, int j, int sStride) {
    long row = KB * 2L;
    int span = TileLayout.PAIR_SPAN;
    if (unit == 2) {
      VectorScoreKernels.halfx4x4(q, q0, d, k, at, blockBytes, row, bf16, s, j, j + span, j + KB,
          j + KB + span, sStride);
    } else if (WIDE && span >= 2 * L) {
      for (int w = 0; w < span; w += 2 * L) {
        VectorScoreKernels.halfx4x4(q, q0, d, k, at + w * 4L, L * 4L, row, bf16, s, j + w, j + w + span,
            j + w + L, j + w + L + span, sStride);
      }
    } else {
      for (int w = 0; w < span; w += L) {
        VectorScoreKernels.halfx2x4(q, q0, d, k, at + w * 4L, row, bf16, s, j + w, j + w + span, sStride);
      }
    }
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
   * callers fall back to the multiplying widening otherwise (sampled's guard lets weights reach e^20).
   */
  private static float[] rebias(float[] x, int off, int rows, int n, int stride) {
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

  /**
   * L 16-bit values at {@code off} widened to floats (bf16 or f16 bits); with {@code raw}, f16
   * values come out times 2^-112 (the caller has scaled the other factor by 2^112, see rebias).
   */
  private static FloatVector loadHalf(MemorySegment seg, long off, boolean bf16, boolean raw) {
    IntVector bits = (IntVector) ShortVector.fromMemorySegment(S, seg, off, LE).convertShape(S2I, I, 0);
    if (bf16) {
      return bits.lanewise(LSHL, 16).reinterpretAsFloats();
    }
    // The sign-extended bits shifted left by 13 put the f16 exponent and mantissa in f32 position
    // (bits 13..27) and copies of the sign in bits 28..31; masking keeps the sign in bit 31 only.
    // Times 2^112 rebiases the exponent (15 -> 127) and normalises subnormal halves; the float
    // multiply keeps the sign. Four operations after the widening instead of six.
    FloatVector scaled = bits.lanewise(LSHL, 13).lanewise(AND, 0x8fffe000).reinterpretAsFloats();
    return raw ? scaled : scaled.mul(F16_EXP_SHIFT);
  }

  // ---------------------------------------------------------------------------- softmax parts

  @Override
  public float max(float[] x, int off, int n) {
    int i = 0;
    float m = Float.NEGATIVE_INFINITY;
    if (n >= L) {
      int bound = F.loopBound(n);
      FloatVector mv = FloatVector.fromArray(F, x, off);
      for (i = L; i < bound; i += L) {
        mv = mv.max(FloatVector.fromArray(F, x, off + i));
      }
      m = mv.reduceLanes(MAX);
    }
    for (; i < n; i++) {
      m = Math.max(m, x[off + i]);
    }
    return m;
  }

  @Override
  public float expSum(float[] x, int off, int n, float m) {
    return VectorMath.expSum(x, off, n, m);
  }

  @Override
  public void scale(float[] x, int off, int n, float a) {
    int i = 0;
    int bound = F.loopBound(n);
    for (; i < bound; i += L) {
      FloatVector.fromArray(F, x, off + i).mul(a).intoArray(x, off + i);
    }
    for (; i < n; i++) {
      x[off + i] *= a;
    }
  }

  // ------------------------------------------------------------------------------- accumulate

  @Override
  public void accumulate(float[] p, int pStride, int g, int d, MemorySegment v, long vOff,
      DType dtype, int count, int tileTokens, float[] acc, int accOff) {
    assert g > 0 && d > 0 && count >= 0 && count <= tileTokens && pStride >= count;
    if (dtype.quantized()) {
      VectorQuantKernels.accumulate(p, pStride, g, d, v, vOff, dtype, count, tileTokens, acc, accOff);
      return;
    }
    boolean f32 = dtype == DType.F32, bf16 = dtype == DType.BF16;
    if (dtype == DType.F16) {
      float[] ps = rebias(p, 0, g, count, pStride);
      if (ps == null) { // a weight of 2^16 or more (sampled mode's guard allows e^20): the reference
        SCALAR.accumulate(p, pStride, g, d, v, vOff, dtype, count, tileTokens, acc, accOff);
        return;
      }
      p = ps;
    }
    int bytes = dtype.bytes();
    long blockBytes = (long) CB * tileTokens * bytes; // one full channel block of the tile
    int blocks = (d + CB - 1) / CB;
    for (int cb = 0; cb < blocks; ) {
      int c0 = cb * CB;
      int w = TileLayout.valueBlockWidth(cb, d);
      long at = vOff + c0 * (long) tileTokens * bytes;
      if (w < CB) { // the narrow last block: natural order
        int h = 0;
        for (; h + 4 <= g; h += 4) {
          VectorValueKernels.natural4(p, h * pStride, pStride, w, v, at, dtype, count, acc, accOff + h * d + c0, d);
        }
        for (; h < g; h++) {
          VectorValueKernels.natural1(p, h * pStride, w, v, at, dtype, count, acc, accOff + h * d + c0);
        }
        cb++;
        continue;
      }
      int unit = PAIR_BLOCKS && cb + 1 < blocks && TileLayout.valueBlockWidth(cb + 1, d) == CB ? 2 : 1;
      int h = 0;
      for (; h + 4 <= g; h += 4) {
        int a0 = accOff + h * d;
        if (f32) {
          accumulateF32(p, h * pStride, pStride, v, at, blockBytes, unit, count, acc, a0, d, c0);
        } else {
          accumulateHalf(p, h * pStride, pStride, v, at, blockBytes, unit, bf16, count, acc, a0, d, c0);
        }
      }
      for (; h < g; h++) {
        for (int u = 0; u < unit; u++) {
          int a = accOff + h * d + c0 + u * CB;
          long bt = at + u * blockBytes;
          if (f32) {
            for (int cc = 0; cc < CB; cc += 2 * L) {
              VectorValueKernels.f32x2x1(p, h * pStride, v, bt + cc * 4L, L * 4L, CB * 4L, count, acc, a + cc, a + cc + L);
            }
          } else {
            for (int wd = 0; wd < TileLayout.PAIR_SPAN; wd += L) {
              VectorValueKernels.halfx2x1(p, h * pStride, v, bt + wd * 4L, CB * 2L, bf16, count, acc, a + wd,
                  a + wd + TileLayout.PAIR_SPAN);
            }
          }
        }
      }
      cb += unit;
    }
  }

  /** One full f32 channel block (or two at 512 bits) for four heads; acc columns from c0. */
  private static void accumulateF32(float[] p, int p0, int pStride, MemorySegment v, long at,
      long blockBytes, int unit, int count, float[] acc, int a0, int d, int c0) {
    long vb = L * 4L, row = CB * 4L;
    if (unit == 2) {
      VectorValueKernels.f32x4x4(p, p0, pStride, v, at, vb, blockBytes, blockBytes + vb, row, count, acc, a0,
          d, c0, c0 + L, c0 + CB, c0 + CB + L);
    } else if (WIDE && CB >= 4 * L) {
      for (int cc = 0; cc < CB; cc += 4 * L) {
        int c = c0 + cc;
        VectorValueKernels.f32x4x4(p, p0, pStride, v, at + cc * 4L, vb, 2 * vb, 3 * vb, row, count, acc, a0,
            d, c, c + L, c + 2 * L, c + 3 * L);
      }
    } else {
      for (int cc = 0; cc < CB; cc += 2 * L) {
        VectorValueKernels.f32x2x4(p, p0, pStride, v, at + cc * 4L, vb, row, count, acc, a0, d, c0 + cc,
            c0 + cc + L);
      }
    }
  }

  /** One full paired 16-bit channel block (or two at 512 bits) for four heads. */
  private static void accumulateHalf(float[] p, int p0, int pStride, MemorySegment v, long at,
      long blockBytes, int unit, boolean bf16, int count, float[] acc, int a0, int d, int c0) {
    long row = CB * 2L;
    int span = TileLayout.PAIR_SPAN;
    if (unit == 2) {
      VectorValueKernels.halfx4x4(p, p0, pStride, v, at, blockBytes, row, bf16, count, acc, a0, d, c0,
          c0 + span, c0 + CB, c0 + CB + span);
    } else if (WIDE && span >= 2 * L) {
      for (int w = 0; w < span; w += 2 * L) {
        int c = c0 + w;
        VectorValueKernels.halfx4x4(p, p0, pStride, v, at + w * 4L, L * 4L, row, bf16, count, acc, a0, d, c,
            c + span, c + L, c + L + span);
      }
    } else {
      for (int w = 0; w < span; w += L) {
        VectorValueKernels.halfx2x4(p, p0, pStride, v, at + w * 4L, row, bf16, count, acc, a0, d, c0 + w,
            c0 + w + span);
      }
    }
  }


  // ----------------------------------------------------------------------- hierarchical modes

  @Override
  public void nodeBounds(float[] q, int qOff, int d, MemorySegment rec, long box, long ball,
      DType dtype, float[] out, int o) {
    dtype = dtype.summaryDType(); // the box records of a block-dtype cache are f32
    int c = 0;
    float boxSum = 0f, magnitude = 0f, dot = 0f;
    int bound = F.loopBound(d);
    int b = dtype.bytes();
    boolean f32 = dtype == DType.F32, bf16 = dtype == DType.BF16;
    if (bound > 0) {
      FloatVector bx = FloatVector.zero(F), m = bx, t = bx;
      for (; c < bound; c += L) {
        FloatVector qc = FloatVector.fromArray(F, q, qOff + c);
        long loAt = box + (long) c * b, hiAt = box + (long) (d + c) * b;
        FloatVector lo = f32 ? FloatVector.fromMemorySegment(F, rec, loAt, LE) : loadHalf(rec, loAt, bf16, false);
        FloatVector hi = f32 ? FloatVector.fromMemorySegment(F, rec, hiAt, LE) : loadHalf(rec, hiAt, bf16, false);
        FloatVector ce = FloatVector.fromMemorySegment(F, rec, ball + (long) c * Float.BYTES, LE);
        bx = bx.add(qc.mul(lo).max(qc.mul(hi)));
        m = qc.abs().fma(lo.abs().max(hi.abs()), m);
        t = qc.fma(ce, t);
      }
      boxSum = VectorMath.sumLanes(bx);
      magnitude = VectorMath.sumLanes(m);
      dot = VectorMath.sumLanes(t);
    }
    out[o] = boxSum;
    out[o + 1] = magnitude;
    out[o + 2] = dot;
    ScalarTileKernels.addNodeBounds(q, qOff, d, rec, box, ball, dtype, c, out, o); // scalar tail
  }

  @Override
  public void rowScores(float[] q, int qOff, int g, int d, MemorySegment rows, long off,
      long rowStrideBytes, int count, float[] s, int sStride) {
    int bound = F.loopBound(d);
    float[] lanes = g >= 4 && bound > 0 ? FOUR_LANES.get() : null;
    for (int j = 0; j < count; j++) {
      long row = off + j * rowStrideBytes;
      int h = 0;
      for (; h + 4 <= g && bound > 0; h += 4) { // each row vector loaded once for four heads
        int q0 = qOff + h * d, q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < bound; c += L) {
          FloatVector k = FloatVector.fromMemorySegment(F, rows, row + (long) c * Float.BYTES, LE);
          a0 = FloatVector.fromArray(F, q, q0 + c).fma(k, a0);
          a1 = FloatVector.fromArray(F, q, q1 + c).fma(k, a1);
          a2 = FloatVector.fromArray(F, q, q2 + c).fma(k, a2);
          a3 = FloatVector.fromArray(F, q, q3 + c).fma(k, a3);
        }
        // the four lane sums side by side: each in lane order as VectorMath.sumLanes (same bits),
        // four independent add chains instead of four dependent ones, one scratch lookup per call
        a0.intoArray(lanes, 0);
        a1.intoArray(lanes, L);
        a2.intoArray(lanes, 2 * L);
        a3.intoArray(lanes, 3 * L);
        float d0 = 0f, d1 = 0f, d2 = 0f, d3 = 0f;
        for (int i = 0; i < L; i++) {
          d0 += lanes[i];
          d1 += lanes[L + i];
          d2 += lanes[2 * L + i];
          d3 += lanes[3 * L + i];
        }
        s[h * sStride + j] = rowTail(q, q0, d, bound, rows, row, d0);
        s[(h + 1) * sStride + j] = rowTail(q, q1, d, bound, rows, row, d1);
        s[(h + 2) * sStride + j] = rowTail(q, q2, d, bound, rows, row, d2);
        s[(h + 3) * sStride + j] = rowTail(q, q3, d, bound, rows, row, d3);
      }
      for (; h < g; h++) {
        int qh = qOff + h * d;
        float dot = 0f;
        if (bound > 0) {
          FloatVector a = FloatVector.zero(F);
          for (int c = 0; c < bound; c += L) {
            a = FloatVector.fromArray(F, q, qh + c)
                .fma(FloatVector.fromMemorySegment(F, rows, row + (long) c * Float.BYTES, LE), a);
          }
          dot = VectorMath.sumLanes(a);
        }
        s[h * sStride + j] = rowTail(q, qh, d, bound, rows, row, dot);
      }
    }
  }

  /** Per-thread scratch of rowScores' four lane sums: created once per thread, then reused. */
  private static final ThreadLocal<float[]> FOUR_LANES = ThreadLocal.withInitial(() -> new float[4 * L]);

  /** Adds channels [from, d) of q . row to {@code dot}: the scalar tail of a row score. */
  private static float rowTail(float[] q, int qh, int d, int from, MemorySegment rows, long row,
      float dot) {
    for (int c = from; c < d; c++) {
      dot = Math.fma(q[qh + c], rows.get(F32_LE, row + (long) c * Float.BYTES), dot);
    }
    return dot;
  }
}
