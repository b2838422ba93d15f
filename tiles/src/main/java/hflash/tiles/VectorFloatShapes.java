package hflash.tiles;

import static hflash.tiles.VectorLoads.BF16;
import static hflash.tiles.VectorLoads.BF16_HIGH;
import static hflash.tiles.VectorLoads.F16_MASK;
import static hflash.tiles.VectorLoads.F32;
import static hflash.tiles.VectorLoads.F32_HIGH;
import static jdk.incubator.vector.VectorOperators.ASHR;
import static jdk.incubator.vector.VectorOperators.LSHL;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The register-blocked shapes over float tiles (f32, bf16, f16) of the score kernel
 * ({@link VectorScoreKernels}) and the p.V kernel ({@link VectorValueKernels}), one body per shape
 * and kernel for all three encodings. Both kernels are the same sweep,
 * {@code out[h][lanes] (+)= sum_t w[h][t] * row_t} over rows of a tile (scores: a K block row per
 * channel t, w = q; p.V: a V block row per key t, w = p), with the accumulators of a few vectors
 * for four heads (or one) held in registers for the whole sweep. The score shapes start from +0,
 * the p.V shapes load the accumulators from {@code out}; otherwise they are the same code, kept as
 * two bodies on purpose: one body shared by both kernels ran the p.V sweep up to 1.5x slower in
 * some JVMs at 512 bits (a compilation whose profile mixes both callers), docs/KERNELS.md.
 *
 * <p>Per lane the sum runs over t in order, {@code acc = fma(row_t, w_t, acc)}, the scalar twins'
 * order, so the bits equal theirs. f16 rows come out times 2^-112; the caller has scaled w by
 * 2^112 ({@link VectorLoads#rebias}).
 *
 * <p><b>The load step is written out in each loop, not called.</b> A row is read as vector pairs:
 * one load of L 32-bit words {@code x} at the pair's address, then the low vector (f32: x itself;
 * 16-bit: the low halves widened) and the high vector (f32: the next L floats; 16-bit: the high
 * halves), see {@link VectorLoads}. A helper method returning those vectors would be boxed whenever
 * C2 declines to inline it, and C2 may decline any call: it keeps out of line every callee it has
 * already compiled on its own into more than {@code InlineSmallCode} bytes, whatever its bytecode
 * size (docs/KERNELS.md, "Inlining"). The encoding tests ({@code enc == F32}, {@code enc == BF16})
 * are loop-invariant: C2 folds them against the branch profile or unswitches the loop, as it did
 * for the inlined helpers.
 *
 * <p><b>Row address.</b> Each loop walks the row address ({@code row += rowBytes}) rather than
 * computing {@code at + t * rowBytes}: one add per row instead of a sign extension, a multiply and
 * two adds from the stack, and a general-purpose register fewer (C2 had moved one through an XMM
 * register three times per row). The score shapes take the stride from the encoding (a constant
 * once C2 folds the encoding test), so C2 also removes the per-row bounds checks; the p.V shapes
 * take it as an argument, because for their 64-key calls the loop nest that removal builds cost
 * more than it saved (docs/KERNELS.md, "Vector kernel template"; {@code docs/perf/kernel-loops.sh}
 * prints the compiled loops).
 *
 * <p>Shapes, L = lanes per vector ({@link VectorConstants#WIDE} picks 4 x 4):
 *
 * <ul>
 *   <li>{@link #scores4Vec4Heads}, {@link #accumulate4Vec4Heads}: 4 vectors (two pairs) x 4 heads = 16 accumulators, + 4 row vectors
 *       + 1 broadcast = 21 vector registers: needs 32 (AVX-512 at any width, NEON).
 *   <li>{@link #scores2Vec4Heads}, {@link #accumulate2Vec4Heads}: 2 vectors (one pair) x 4 heads = 8 accumulators, 11 registers:
 *       fits AVX2's 16.
 *   <li>{@link #scores2Vec1Head}, {@link #accumulate2Vec1Head}: 2 vectors x 1 head, 2 accumulators, 4 registers.
 * </ul>
 */
final class VectorFloatShapes {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final VectorSpecies<Integer> I = VectorConstants.INTS;
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  /** Bytes of a K block row (the block's keys at one channel), f32 and 16-bit: the score shapes' stride. */
  private static final long ROW_F32 = (long) TileFormat.KEY_BLOCK * Float.BYTES;
  private static final long ROW_16 = (long) TileFormat.KEY_BLOCK * Short.BYTES;

  private VectorFloatShapes() {}

  /**
   * 4 vectors x 4 heads, 16 accumulators, 21 vector registers, over {@code n} rows. Row t: two
   * vector pairs at {@code at + t * rowBytes} (rowBytes: 128 for f32, 64 for 16-bit pairs) and
   * {@code + o2} (vectors 0, 1 and 2, 3); head h's weight of row t is {@code w[w0 + h * wStride + t]};
   * vector i of head h is accumulated in {@code out[o_i + h * outStride ..]}, from +0.
   */
  static void scores4Vec4Heads(int enc, float[] w, int w0, int wStride, int n, MemorySegment seg, long at, long o2,
      float[] out, int outStride, int o0, int o1, int o2Out, int o3) {
    int w1 = w0 + wStride, w2 = w1 + wStride, w3 = w2 + wStride;
    int r1 = outStride, r2 = 2 * outStride, r3 = 3 * outStride;
    FloatVector z = FloatVector.zero(F);
    FloatVector a00 = z, a01 = z;
    FloatVector a02 = z, a03 = z;
    FloatVector a10 = z, a11 = z;
    FloatVector a12 = z, a13 = z;
    FloatVector a20 = z, a21 = z;
    FloatVector a22 = z, a23 = z;
    FloatVector a30 = z, a31 = z;
    FloatVector a32 = z, a33 = z;
    long row = at, rowBytes = enc == F32 ? ROW_F32 : ROW_16;
    for (int t = 0; t < n; t++, row += rowBytes) {
      long row2 = row + o2;
      // load step (see the class comment): two pairs, each one word load and its two halves
      IntVector x = IntVector.fromMemorySegment(I, seg, row, LE), y = IntVector.fromMemorySegment(I, seg, row2, LE);
      FloatVector v0 = enc == F32 ? x.reinterpretAsFloats() : enc == BF16 ? x.lanewise(LSHL, 16).reinterpretAsFloats()
          : x.lanewise(LSHL, 16).lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector v1 = enc == F32 ? FloatVector.fromMemorySegment(F, seg, row + F32_HIGH, LE)
          : enc == BF16 ? x.and(BF16_HIGH).reinterpretAsFloats() : x.lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector v2 = enc == F32 ? y.reinterpretAsFloats() : enc == BF16 ? y.lanewise(LSHL, 16).reinterpretAsFloats()
          : y.lanewise(LSHL, 16).lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector v3 = enc == F32 ? FloatVector.fromMemorySegment(F, seg, row2 + F32_HIGH, LE)
          : enc == BF16 ? y.and(BF16_HIGH).reinterpretAsFloats() : y.lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector b = FloatVector.broadcast(F, w[w0 + t]);
      a00 = v0.fma(b, a00);
      a01 = v1.fma(b, a01);
      a02 = v2.fma(b, a02);
      a03 = v3.fma(b, a03);
      b = FloatVector.broadcast(F, w[w1 + t]);
      a10 = v0.fma(b, a10);
      a11 = v1.fma(b, a11);
      a12 = v2.fma(b, a12);
      a13 = v3.fma(b, a13);
      b = FloatVector.broadcast(F, w[w2 + t]);
      a20 = v0.fma(b, a20);
      a21 = v1.fma(b, a21);
      a22 = v2.fma(b, a22);
      a23 = v3.fma(b, a23);
      b = FloatVector.broadcast(F, w[w3 + t]);
      a30 = v0.fma(b, a30);
      a31 = v1.fma(b, a31);
      a32 = v2.fma(b, a32);
      a33 = v3.fma(b, a33);
    }
    a00.intoArray(out, o0);
    a01.intoArray(out, o1);
    a02.intoArray(out, o2Out);
    a03.intoArray(out, o3);
    a10.intoArray(out, o0 + r1);
    a11.intoArray(out, o1 + r1);
    a12.intoArray(out, o2Out + r1);
    a13.intoArray(out, o3 + r1);
    a20.intoArray(out, o0 + r2);
    a21.intoArray(out, o1 + r2);
    a22.intoArray(out, o2Out + r2);
    a23.intoArray(out, o3 + r2);
    a30.intoArray(out, o0 + r3);
    a31.intoArray(out, o1 + r3);
    a32.intoArray(out, o2Out + r3);
    a33.intoArray(out, o3 + r3);
  }

  /**
   * 2 vectors (one pair at {@code at + t * rowBytes}, rowBytes from the encoding: the low vector to
   * {@code out[o0 ..]}, the high one to {@code out[o1 ..]}) x 4 heads, 8 accumulators, 11 vector
   * registers; otherwise as {@link #scores4Vec4Heads}.
   */
  static void scores2Vec4Heads(int enc, float[] w, int w0, int wStride, int n, MemorySegment seg, long at,
      float[] out, int outStride, int o0, int o1) {
    int w1 = w0 + wStride, w2 = w1 + wStride, w3 = w2 + wStride;
    int r1 = outStride, r2 = 2 * outStride, r3 = 3 * outStride;
    FloatVector z = FloatVector.zero(F);
    FloatVector a00 = z, a01 = z;
    FloatVector a10 = z, a11 = z;
    FloatVector a20 = z, a21 = z;
    FloatVector a30 = z, a31 = z;
    long row = at, rowBytes = enc == F32 ? ROW_F32 : ROW_16;
    for (int t = 0; t < n; t++, row += rowBytes) {
      IntVector x = IntVector.fromMemorySegment(I, seg, row, LE); // load step: one pair
      FloatVector v0 = enc == F32 ? x.reinterpretAsFloats() : enc == BF16 ? x.lanewise(LSHL, 16).reinterpretAsFloats()
          : x.lanewise(LSHL, 16).lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector v1 = enc == F32 ? FloatVector.fromMemorySegment(F, seg, row + F32_HIGH, LE)
          : enc == BF16 ? x.and(BF16_HIGH).reinterpretAsFloats() : x.lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector b = FloatVector.broadcast(F, w[w0 + t]);
      a00 = v0.fma(b, a00);
      a01 = v1.fma(b, a01);
      b = FloatVector.broadcast(F, w[w1 + t]);
      a10 = v0.fma(b, a10);
      a11 = v1.fma(b, a11);
      b = FloatVector.broadcast(F, w[w2 + t]);
      a20 = v0.fma(b, a20);
      a21 = v1.fma(b, a21);
      b = FloatVector.broadcast(F, w[w3 + t]);
      a30 = v0.fma(b, a30);
      a31 = v1.fma(b, a31);
    }
    a00.intoArray(out, o0);
    a01.intoArray(out, o1);
    a10.intoArray(out, o0 + r1);
    a11.intoArray(out, o1 + r1);
    a20.intoArray(out, o0 + r2);
    a21.intoArray(out, o1 + r2);
    a30.intoArray(out, o0 + r3);
    a31.intoArray(out, o1 + r3);
  }

  /** {@link #scores2Vec4Heads} for 1 head ({@code w[w0 + t]}): 2 accumulators, 4 vector registers. */
  static void scores2Vec1Head(int enc, float[] w, int w0, int n, MemorySegment seg, long at,
      float[] out, int o0, int o1) {
    FloatVector z = FloatVector.zero(F);
    FloatVector a0 = z, a1 = z;
    long row = at, rowBytes = enc == F32 ? ROW_F32 : ROW_16;
    for (int t = 0; t < n; t++, row += rowBytes) {
      IntVector x = IntVector.fromMemorySegment(I, seg, row, LE); // load step: one pair
      FloatVector v0 = enc == F32 ? x.reinterpretAsFloats() : enc == BF16 ? x.lanewise(LSHL, 16).reinterpretAsFloats()
          : x.lanewise(LSHL, 16).lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector v1 = enc == F32 ? FloatVector.fromMemorySegment(F, seg, row + F32_HIGH, LE)
          : enc == BF16 ? x.and(BF16_HIGH).reinterpretAsFloats() : x.lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector b = FloatVector.broadcast(F, w[w0 + t]);
      a0 = v0.fma(b, a0);
      a1 = v1.fma(b, a1);
    }
    a0.intoArray(out, o0);
    a1.intoArray(out, o1);
  }

  /**
   * 4 vectors x 4 heads, 16 accumulators, 21 vector registers, over {@code n} rows. Row t: two
   * vector pairs at {@code at + t * rowBytes} and {@code + o2} (vectors 0, 1 and 2, 3); head h's
   * weight of row t is {@code w[w0 + h * wStride + t]}; vector i of head h is accumulated in
   * {@code out[o_i + h * outStride ..]}, loaded first.
   */
  static void accumulate4Vec4Heads(int enc, float[] w, int w0, int wStride, int n, MemorySegment seg, long at, long o2,
      long rowBytes, float[] out, int outStride, int o0, int o1, int o2Out, int o3) {
    int w1 = w0 + wStride, w2 = w1 + wStride, w3 = w2 + wStride;
    int r1 = outStride, r2 = 2 * outStride, r3 = 3 * outStride;
    FloatVector a00 = FloatVector.fromArray(F, out, o0), a01 = FloatVector.fromArray(F, out, o1);
    FloatVector a02 = FloatVector.fromArray(F, out, o2Out), a03 = FloatVector.fromArray(F, out, o3);
    FloatVector a10 = FloatVector.fromArray(F, out, o0 + r1), a11 = FloatVector.fromArray(F, out, o1 + r1);
    FloatVector a12 = FloatVector.fromArray(F, out, o2Out + r1), a13 = FloatVector.fromArray(F, out, o3 + r1);
    FloatVector a20 = FloatVector.fromArray(F, out, o0 + r2), a21 = FloatVector.fromArray(F, out, o1 + r2);
    FloatVector a22 = FloatVector.fromArray(F, out, o2Out + r2), a23 = FloatVector.fromArray(F, out, o3 + r2);
    FloatVector a30 = FloatVector.fromArray(F, out, o0 + r3), a31 = FloatVector.fromArray(F, out, o1 + r3);
    FloatVector a32 = FloatVector.fromArray(F, out, o2Out + r3), a33 = FloatVector.fromArray(F, out, o3 + r3);
    long row = at;
    for (int t = 0; t < n; t++, row += rowBytes) {
      long row2 = row + o2;
      // load step (see the class comment): two pairs, each one word load and its two halves
      IntVector x = IntVector.fromMemorySegment(I, seg, row, LE), y = IntVector.fromMemorySegment(I, seg, row2, LE);
      FloatVector v0 = enc == F32 ? x.reinterpretAsFloats() : enc == BF16 ? x.lanewise(LSHL, 16).reinterpretAsFloats()
          : x.lanewise(LSHL, 16).lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector v1 = enc == F32 ? FloatVector.fromMemorySegment(F, seg, row + F32_HIGH, LE)
          : enc == BF16 ? x.and(BF16_HIGH).reinterpretAsFloats() : x.lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector v2 = enc == F32 ? y.reinterpretAsFloats() : enc == BF16 ? y.lanewise(LSHL, 16).reinterpretAsFloats()
          : y.lanewise(LSHL, 16).lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector v3 = enc == F32 ? FloatVector.fromMemorySegment(F, seg, row2 + F32_HIGH, LE)
          : enc == BF16 ? y.and(BF16_HIGH).reinterpretAsFloats() : y.lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector b = FloatVector.broadcast(F, w[w0 + t]);
      a00 = v0.fma(b, a00);
      a01 = v1.fma(b, a01);
      a02 = v2.fma(b, a02);
      a03 = v3.fma(b, a03);
      b = FloatVector.broadcast(F, w[w1 + t]);
      a10 = v0.fma(b, a10);
      a11 = v1.fma(b, a11);
      a12 = v2.fma(b, a12);
      a13 = v3.fma(b, a13);
      b = FloatVector.broadcast(F, w[w2 + t]);
      a20 = v0.fma(b, a20);
      a21 = v1.fma(b, a21);
      a22 = v2.fma(b, a22);
      a23 = v3.fma(b, a23);
      b = FloatVector.broadcast(F, w[w3 + t]);
      a30 = v0.fma(b, a30);
      a31 = v1.fma(b, a31);
      a32 = v2.fma(b, a32);
      a33 = v3.fma(b, a33);
    }
    a00.intoArray(out, o0);
    a01.intoArray(out, o1);
    a02.intoArray(out, o2Out);
    a03.intoArray(out, o3);
    a10.intoArray(out, o0 + r1);
    a11.intoArray(out, o1 + r1);
    a12.intoArray(out, o2Out + r1);
    a13.intoArray(out, o3 + r1);
    a20.intoArray(out, o0 + r2);
    a21.intoArray(out, o1 + r2);
    a22.intoArray(out, o2Out + r2);
    a23.intoArray(out, o3 + r2);
    a30.intoArray(out, o0 + r3);
    a31.intoArray(out, o1 + r3);
    a32.intoArray(out, o2Out + r3);
    a33.intoArray(out, o3 + r3);
  }

  /**
   * 2 vectors (one pair at {@code at + t * rowBytes}: the low vector to {@code out[o0 ..]}, the
   * high one to {@code out[o1 ..]}) x 4 heads, 8 accumulators, 11 vector registers; otherwise as
   * {@link #accumulate4Vec4Heads}.
   */
  static void accumulate2Vec4Heads(int enc, float[] w, int w0, int wStride, int n, MemorySegment seg, long at,
      long rowBytes, float[] out, int outStride, int o0, int o1) {
    int w1 = w0 + wStride, w2 = w1 + wStride, w3 = w2 + wStride;
    int r1 = outStride, r2 = 2 * outStride, r3 = 3 * outStride;
    FloatVector a00 = FloatVector.fromArray(F, out, o0), a01 = FloatVector.fromArray(F, out, o1);
    FloatVector a10 = FloatVector.fromArray(F, out, o0 + r1), a11 = FloatVector.fromArray(F, out, o1 + r1);
    FloatVector a20 = FloatVector.fromArray(F, out, o0 + r2), a21 = FloatVector.fromArray(F, out, o1 + r2);
    FloatVector a30 = FloatVector.fromArray(F, out, o0 + r3), a31 = FloatVector.fromArray(F, out, o1 + r3);
    long row = at;
    for (int t = 0; t < n; t++, row += rowBytes) {
      IntVector x = IntVector.fromMemorySegment(I, seg, row, LE); // load step: one pair
      FloatVector v0 = enc == F32 ? x.reinterpretAsFloats() : enc == BF16 ? x.lanewise(LSHL, 16).reinterpretAsFloats()
          : x.lanewise(LSHL, 16).lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector v1 = enc == F32 ? FloatVector.fromMemorySegment(F, seg, row + F32_HIGH, LE)
          : enc == BF16 ? x.and(BF16_HIGH).reinterpretAsFloats() : x.lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector b = FloatVector.broadcast(F, w[w0 + t]);
      a00 = v0.fma(b, a00);
      a01 = v1.fma(b, a01);
      b = FloatVector.broadcast(F, w[w1 + t]);
      a10 = v0.fma(b, a10);
      a11 = v1.fma(b, a11);
      b = FloatVector.broadcast(F, w[w2 + t]);
      a20 = v0.fma(b, a20);
      a21 = v1.fma(b, a21);
      b = FloatVector.broadcast(F, w[w3 + t]);
      a30 = v0.fma(b, a30);
      a31 = v1.fma(b, a31);
    }
    a00.intoArray(out, o0);
    a01.intoArray(out, o1);
    a10.intoArray(out, o0 + r1);
    a11.intoArray(out, o1 + r1);
    a20.intoArray(out, o0 + r2);
    a21.intoArray(out, o1 + r2);
    a30.intoArray(out, o0 + r3);
    a31.intoArray(out, o1 + r3);
  }

  /** {@link #accumulate2Vec4Heads} for 1 head ({@code w[w0 + t]}): 2 accumulators, 4 vector registers. */
  static void accumulate2Vec1Head(int enc, float[] w, int w0, int n, MemorySegment seg, long at, long rowBytes,
      float[] out, int o0, int o1) {
    FloatVector a0 = FloatVector.fromArray(F, out, o0), a1 = FloatVector.fromArray(F, out, o1);
    long row = at;
    for (int t = 0; t < n; t++, row += rowBytes) {
      IntVector x = IntVector.fromMemorySegment(I, seg, row, LE); // load step: one pair
      FloatVector v0 = enc == F32 ? x.reinterpretAsFloats() : enc == BF16 ? x.lanewise(LSHL, 16).reinterpretAsFloats()
          : x.lanewise(LSHL, 16).lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector v1 = enc == F32 ? FloatVector.fromMemorySegment(F, seg, row + F32_HIGH, LE)
          : enc == BF16 ? x.and(BF16_HIGH).reinterpretAsFloats() : x.lanewise(ASHR, 3).and(F16_MASK).reinterpretAsFloats();
      FloatVector b = FloatVector.broadcast(F, w[w0 + t]);
      a0 = v0.fma(b, a0);
      a1 = v1.fma(b, a1);
    }
    a0.intoArray(out, o0);
    a1.intoArray(out, o1);
  }
}
