package hflash.tiles;

import static hflash.tiles.VectorLoads.F16_EXP_SHIFT;
import static hflash.tiles.VectorLoads.F16_MASK;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.MAX;
import static jdk.incubator.vector.VectorOperators.S2I;

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
 * <p>The score and p.V kernels live in {@link VectorScoreKernels} and {@link VectorValueKernels}
 * (float tiles) and {@link VectorQuantKernels} (q8_0, q4_0), which pick their shape: 4 vectors x
 * 4 heads where the JIT has 32 vector registers ({@link VectorConstants#WIDE}), 2 x 4 where it has
 * 16 (AVX2, SSE), and at 512 bits the 4 x 4 shape takes two blocks at once (a block row is two
 * vectors there). Every load and widening step is written out in the kernel loops (no helper
 * returns a vector; {@link VectorLoads} holds the constants): full 16-bit runs are paired ({@link TileFormat}) and widened with shifts and masks on 32-bit words; f16 comes out
 * times 2^-112, with the 2^112 folded into a copy of q or p ({@link VectorLoads#rebias}), exact for
 * normal and subnormal halves (the cache never stores Inf/NaN, see {@code KvCache}). When that copy
 * would overflow the call goes to the scalar reference, which gives the same bits.
 */
final class VectorTileKernels implements TileKernels {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final VectorSpecies<Integer> I = VectorConstants.INTS;
  private static final VectorSpecies<Short> S = VectorConstants.SHORTS;
  private static final int L = F.length();
  private static final int KB = TileFormat.KEY_BLOCK;
  /** 4 x 4 kernel shapes: the register file holds 16 accumulators (see VectorConstants). */
  private static final boolean WIDE = VectorConstants.WIDE;
  /** At 512 bits a block row is two vectors: the 4 x 4 shape then covers two blocks (or not: see VectorConstants). */
  private static final boolean PAIR_BLOCKS = VectorConstants.PAIR_BLOCKS;
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);

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
  public void scores(float[] q, int qOff, int g, int d, MemorySegment k, long kOff, TileEncoding dtype,
      int count, float[] s, int sStride) {
    assert g > 0 && d > 0 && count >= 0 && sStride >= (count + KB - 1) / KB * KB;
    if (dtype.quantized()) {
      VectorQuantKernels.scores(q, qOff, g, d, k, kOff, dtype, count, s, sStride);
    } else {
      VectorScoreKernels.scores(q, qOff, g, d, k, kOff, dtype, count, s, sStride);
    }
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
      TileEncoding dtype, int count, int tileTokens, float[] acc, int accOff) {
    assert g > 0 && d > 0 && count >= 0 && count <= tileTokens && pStride >= count;
    if (dtype.quantized()) {
      VectorQuantKernels.accumulate(p, pStride, g, d, v, vOff, dtype, count, tileTokens, acc, accOff);
    } else {
      VectorValueKernels.accumulate(p, pStride, g, d, v, vOff, dtype, count, tileTokens, acc, accOff);
    }
  }

  // ----------------------------------------------------------------------- hierarchical modes

  @Override
  public void nodeBounds(float[] q, int qOff, int d, MemorySegment rec, long box, long ball,
      TileEncoding dtype, float[] out, int o) {
    dtype = dtype.summaryEncoding(); // the box records of a block-dtype cache are f32
    int c = 0;
    float boxSum = 0f, magnitude = 0f, dot = 0f;
    int bound = F.loopBound(d);
    int b = dtype.bytes();
    boolean f32 = dtype == TileEncoding.F32, bf16 = dtype == TileEncoding.BF16;
    if (bound > 0) {
      FloatVector bx = FloatVector.zero(F), m = bx, t = bx;
      for (; c < bound; c += L) {
        FloatVector qc = FloatVector.fromArray(F, q, qOff + c);
        long loAt = box + (long) c * b, hiAt = box + (long) (d + c) * b;
        // load step written out (no helper returns a vector, see VectorFloatShapes): f32, or
        // natural-order 16-bit bounds widened exactly (f16: the widening times 2^112)
        FloatVector lo, hi;
        if (f32) {
          lo = FloatVector.fromMemorySegment(F, rec, loAt, LE);
          hi = FloatVector.fromMemorySegment(F, rec, hiAt, LE);
        } else {
          IntVector l16 = (IntVector) ShortVector.fromMemorySegment(S, rec, loAt, LE).convertShape(S2I, I, 0);
          IntVector h16 = (IntVector) ShortVector.fromMemorySegment(S, rec, hiAt, LE).convertShape(S2I, I, 0);
          lo = bf16 ? l16.lanewise(LSHL, 16).reinterpretAsFloats()
              : l16.lanewise(LSHL, 13).and(F16_MASK).reinterpretAsFloats().mul(F16_EXP_SHIFT);
          hi = bf16 ? h16.lanewise(LSHL, 16).reinterpretAsFloats()
              : h16.lanewise(LSHL, 13).and(F16_MASK).reinterpretAsFloats().mul(F16_EXP_SHIFT);
        }
        FloatVector ce = FloatVector.fromMemorySegment(F, rec, ball + (long) c * Float.BYTES, LE);
        bx = bx.add(qc.mul(lo).max(qc.mul(hi)));
        m = qc.abs().fma(lo.abs().max(hi.abs()), m);
        t = qc.fma(ce, t);
      }
      float[] lanes = VectorMath.lanes();
      bx.intoArray(lanes, 0);
      boxSum = VectorMath.sumLanes(lanes);
      m.intoArray(lanes, 0);
      magnitude = VectorMath.sumLanes(lanes);
      t.intoArray(lanes, 0);
      dot = VectorMath.sumLanes(lanes);
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
          float[] one = VectorMath.lanes();
          a.intoArray(one, 0);
          dot = VectorMath.sumLanes(one);
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
