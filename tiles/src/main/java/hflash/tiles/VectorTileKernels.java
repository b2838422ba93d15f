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
 * <p>16-bit rows are widened lane for lane: {@code S2I} sign-extends the raw bits, bf16 then shifts
 * them into the top half of a float, f16 rebuilds the float with the magnitude-times-2^112 trick
 * (exact for normal and subnormal halves; the cache never stores Inf/NaN, see {@code KvCache}).
 * The dtype test inside the loops is loop-invariant; C2 unswitches it, so one loop serves all
 * dtypes (measured: see docs/BENCHMARKS.md).
 */
final class VectorTileKernels implements TileKernels {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final VectorSpecies<Short> S = VectorConstants.SHORTS;
  private static final VectorSpecies<Integer> I = VectorConstants.INTS;
  private static final int L = F.length();
  private static final int KB = TileLayout.KEY_BLOCK;
  private static final int CB = TileLayout.CHANNEL_BLOCK;
  /**
   * At 256 bits a 32-element block row is four vectors: sweep all four at once (16 accumulators,
   * which C2 keeps in registers on AVX-512 machines' 32 and spills a little on AVX2's 16) so the
   * block is still read front to back. At 512 bits it is two vectors (the x2 kernels); at 128
   * bits the x2 kernels take four half-row sweeps.
   */
  private static final boolean FOUR_PER_ROW = KB == 4 * L;
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

  // ---------------------------------------------------------------------------------- scores

  @Override
  public void scores(float[] q, int qOff, int g, int d, MemorySegment k, long kOff, DType dtype,
      int count, float[] s, int sStride) {
    assert g > 0 && d > 0 && count >= 0 && sStride >= (count + KB - 1) / KB * KB;
    int blocks = (count + KB - 1) / KB;
    long blockBytes = (long) KB * d * dtype.bytes();
    // f16: fold the 2^112 of the widening into a copy of q (see rebias), when that copy is finite
    float[] qs = dtype == DType.F16 ? rebias(q, qOff, g, d, d) : null;
    boolean raw = qs != null;
    if (raw) {
      q = qs;
      qOff = 0;
    }
    for (int kb = 0; kb < blocks; kb++) {
      long at = kOff + kb * blockBytes;
      int h = 0;
      for (; h + 4 <= g; h += 4) {
        if (FOUR_PER_ROW && dtype == DType.F32) {
          scores4x4(q, qOff + h * d, d, k, at, dtype, s, h * sStride + kb * KB, sStride);
        } else {
          scores4(q, qOff + h * d, d, k, at, dtype, raw, s, h * sStride + kb * KB, sStride);
        }
      }
      for (; h < g; h++) {
        scores1(q, qOff + h * d, d, k, at, dtype, raw, s, h * sStride + kb * KB);
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
   * One block of 32 keys for four heads: per channel c the block's 32 keys are contiguous, so a
   * sweep over c reads the block front to back. Two key vectors times four heads = eight
   * accumulators (11 registers with the loads and the broadcast: fits AVX2 as well as AVX-512);
   * each loaded K vector feeds four FMAs. At 512 bits one sweep covers the block; narrower
   * lanes take 32 / (2L) sweeps.
   */
  private static void scores4(float[] q, int q0, int d, MemorySegment k, long blockOff,
      DType dtype, boolean raw, float[] s, int s0, int sStride) {
    int q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
    int bytes = dtype.bytes();
    boolean f32 = dtype == DType.F32, bf16 = dtype == DType.BF16;
    long rowBytes = (long) KB * bytes;
    long second = (long) L * bytes;
    for (int jj = 0; jj < KB; jj += 2 * L) {
      FloatVector a00 = FloatVector.zero(F), a01 = a00, a10 = a00, a11 = a00;
      FloatVector a20 = a00, a21 = a00, a30 = a00, a31 = a00;
      long at = blockOff + (long) jj * bytes;
      for (int c = 0; c < d; c++, at += rowBytes) {
        FloatVector k0 = f32 ? FloatVector.fromMemorySegment(F, k, at, LE) : loadHalf(k, at, bf16, raw);
        FloatVector k1 = f32 ? FloatVector.fromMemorySegment(F, k, at + second, LE)
            : loadHalf(k, at + second, bf16, raw);
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
      int j = s0 + jj;
      a00.intoArray(s, j);
      a01.intoArray(s, j + L);
      a10.intoArray(s, j + sStride);
      a11.intoArray(s, j + sStride + L);
      a20.intoArray(s, j + 2 * sStride);
      a21.intoArray(s, j + 2 * sStride + L);
      a30.intoArray(s, j + 3 * sStride);
      a31.intoArray(s, j + 3 * sStride + L);
    }
  }

  /**
   * {@link #scores4} at 256 bits, f32: the block row of 32 keys is four vectors, swept at once.
   * (With the widening 16-bit loads the 16 accumulators no longer stay in registers and C2 boxes
   * them, ~7x slower: 16-bit dtypes keep the two-vector kernel.)
   */
  private static void scores4x4(float[] q, int q0, int d, MemorySegment k, long blockOff,
      DType dtype, float[] s, int s0, int sStride) {
    int q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
    int bytes = dtype.bytes();
    long rowBytes = (long) KB * bytes;
    long vb = (long) L * bytes;
    FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
    FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    long at = blockOff;
    for (int c = 0; c < d; c++, at += rowBytes) {
      FloatVector k0 = FloatVector.fromMemorySegment(F, k, at, LE);
      FloatVector k1 = FloatVector.fromMemorySegment(F, k, at + vb, LE);
      FloatVector k2 = FloatVector.fromMemorySegment(F, k, at + 2 * vb, LE);
      FloatVector k3 = FloatVector.fromMemorySegment(F, k, at + 3 * vb, LE);
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
    storeRow(s, s0, a00, a01, a02, a03);
    storeRow(s, s0 + sStride, a10, a11, a12, a13);
    storeRow(s, s0 + 2 * sStride, a20, a21, a22, a23);
    storeRow(s, s0 + 3 * sStride, a30, a31, a32, a33);
  }

  private static void storeRow(float[] x, int off, FloatVector a, FloatVector b, FloatVector c,
      FloatVector d) {
    a.intoArray(x, off);
    b.intoArray(x, off + L);
    c.intoArray(x, off + 2 * L);
    d.intoArray(x, off + 3 * L);
  }

  /** One block of 32 keys for one head (group remainders and g < 4). */
  private static void scores1(float[] q, int q0, int d, MemorySegment k, long blockOff,
      DType dtype, boolean raw, float[] s, int s0) {
    int bytes = dtype.bytes();
    boolean f32 = dtype == DType.F32, bf16 = dtype == DType.BF16;
    long rowBytes = (long) KB * bytes;
    long second = (long) L * bytes;
    for (int jj = 0; jj < KB; jj += 2 * L) {
      FloatVector a0 = FloatVector.zero(F), a1 = a0;
      long at = blockOff + (long) jj * bytes;
      for (int c = 0; c < d; c++, at += rowBytes) {
        FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
        a0 = (f32 ? FloatVector.fromMemorySegment(F, k, at, LE) : loadHalf(k, at, bf16, raw)).fma(b, a0);
        a1 = (f32 ? FloatVector.fromMemorySegment(F, k, at + second, LE)
            : loadHalf(k, at + second, bf16, raw)).fma(b, a1);
      }
      a0.intoArray(s, s0 + jj);
      a1.intoArray(s, s0 + jj + L);
    }
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
    int bytes = dtype.bytes();
    float[] ps = dtype == DType.F16 ? rebias(p, 0, g, count, pStride) : null;
    boolean raw = ps != null;
    if (raw) {
      p = ps;
    }
    for (int cb = 0, c0 = 0; c0 < d; cb++, c0 += CB) {
      int w = TileLayout.valueBlockWidth(cb, d);
      long blockOff = vOff + (long) c0 * tileTokens * bytes;
      int h = 0;
      for (; h + 4 <= g; h += 4) {
        if (FOUR_PER_ROW && w == CB && dtype == DType.F32) {
          accumulate4x4(p, h * pStride, pStride, v, blockOff, dtype, count, acc, accOff + h * d + c0, d);
        } else {
          accumulate4(p, h * pStride, pStride, w, v, blockOff, dtype, raw, count, acc, accOff + h * d + c0, d);
        }
      }
      for (; h < g; h++) {
        accumulate1(p, h * pStride, w, v, blockOff, dtype, raw, count, acc, accOff + h * d + c0);
      }
    }
  }

  /**
   * One channel block (w <= 32 channels, rows of w contiguous elements) for four heads: keys
   * inner, so the block is swept front to back while the heads' accumulators stay in registers
   * (acc is loaded and stored once per tile, not once per key); each V vector feeds four FMAs.
   * Two vectors x four heads = eight accumulators.
   */
  private static void accumulate4(float[] p, int p0, int pStride, int w, MemorySegment v,
      long blockOff, DType dtype, boolean raw, int count, float[] acc, int a0Off, int d) {
    int p1 = p0 + pStride, p2 = p1 + pStride, p3 = p2 + pStride;
    int a1Off = a0Off + d, a2Off = a1Off + d, a3Off = a2Off + d;
    int bytes = dtype.bytes();
    long rowBytes = (long) w * bytes;
    long second = (long) L * bytes;
    boolean f32 = dtype == DType.F32, bf16 = dtype == DType.BF16;
    int c = 0;
    for (; c + 2 * L <= w; c += 2 * L) {
      FloatVector a00 = FloatVector.fromArray(F, acc, a0Off + c);
      FloatVector a01 = FloatVector.fromArray(F, acc, a0Off + c + L);
      FloatVector a10 = FloatVector.fromArray(F, acc, a1Off + c);
      FloatVector a11 = FloatVector.fromArray(F, acc, a1Off + c + L);
      FloatVector a20 = FloatVector.fromArray(F, acc, a2Off + c);
      FloatVector a21 = FloatVector.fromArray(F, acc, a2Off + c + L);
      FloatVector a30 = FloatVector.fromArray(F, acc, a3Off + c);
      FloatVector a31 = FloatVector.fromArray(F, acc, a3Off + c + L);
      long at = blockOff + (long) c * bytes;
      for (int j = 0; j < count; j++, at += rowBytes) {
        FloatVector v0 = f32 ? FloatVector.fromMemorySegment(F, v, at, LE) : loadHalf(v, at, bf16, raw);
        FloatVector v1 = f32 ? FloatVector.fromMemorySegment(F, v, at + second, LE)
            : loadHalf(v, at + second, bf16, raw);
        FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
        a00 = v0.fma(b, a00);
        a01 = v1.fma(b, a01);
        b = FloatVector.broadcast(F, p[p1 + j]);
        a10 = v0.fma(b, a10);
        a11 = v1.fma(b, a11);
        b = FloatVector.broadcast(F, p[p2 + j]);
        a20 = v0.fma(b, a20);
        a21 = v1.fma(b, a21);
        b = FloatVector.broadcast(F, p[p3 + j]);
        a30 = v0.fma(b, a30);
        a31 = v1.fma(b, a31);
      }
      a00.intoArray(acc, a0Off + c);
      a01.intoArray(acc, a0Off + c + L);
      a10.intoArray(acc, a1Off + c);
      a11.intoArray(acc, a1Off + c + L);
      a20.intoArray(acc, a2Off + c);
      a21.intoArray(acc, a2Off + c + L);
      a30.intoArray(acc, a3Off + c);
      a31.intoArray(acc, a3Off + c + L);
    }
    for (; c + L <= w; c += L) {
      FloatVector a0 = FloatVector.fromArray(F, acc, a0Off + c);
      FloatVector a1 = FloatVector.fromArray(F, acc, a1Off + c);
      FloatVector a2 = FloatVector.fromArray(F, acc, a2Off + c);
      FloatVector a3 = FloatVector.fromArray(F, acc, a3Off + c);
      long at = blockOff + (long) c * bytes;
      for (int j = 0; j < count; j++, at += rowBytes) {
        FloatVector vv = f32 ? FloatVector.fromMemorySegment(F, v, at, LE) : loadHalf(v, at, bf16, raw);
        a0 = vv.fma(FloatVector.broadcast(F, p[p0 + j]), a0);
        a1 = vv.fma(FloatVector.broadcast(F, p[p1 + j]), a1);
        a2 = vv.fma(FloatVector.broadcast(F, p[p2 + j]), a2);
        a3 = vv.fma(FloatVector.broadcast(F, p[p3 + j]), a3);
      }
      a0.intoArray(acc, a0Off + c);
      a1.intoArray(acc, a1Off + c);
      a2.intoArray(acc, a2Off + c);
      a3.intoArray(acc, a3Off + c);
    }
    for (; c < w; c++) { // scalar tail: channels of a narrow last block
      accumulateColumn(p, p0, w, v, blockOff, dtype, raw, count, acc, a0Off, c);
      accumulateColumn(p, p1, w, v, blockOff, dtype, raw, count, acc, a1Off, c);
      accumulateColumn(p, p2, w, v, blockOff, dtype, raw, count, acc, a2Off, c);
      accumulateColumn(p, p3, w, v, blockOff, dtype, raw, count, acc, a3Off, c);
    }
  }

  /** {@link #accumulate4} at 256 bits over a full 32-channel f32 block: four vectors per row. */
  private static void accumulate4x4(float[] p, int p0, int pStride, MemorySegment v,
      long blockOff, DType dtype, int count, float[] acc, int a0Off, int d) {
    int p1 = p0 + pStride, p2 = p1 + pStride, p3 = p2 + pStride;
    int a1Off = a0Off + d, a2Off = a1Off + d, a3Off = a2Off + d;
    int bytes = dtype.bytes();
    long rowBytes = (long) CB * bytes;
    long vb = (long) L * bytes;
    FloatVector a00 = FloatVector.fromArray(F, acc, a0Off), a01 = FloatVector.fromArray(F, acc, a0Off + L);
    FloatVector a02 = FloatVector.fromArray(F, acc, a0Off + 2 * L), a03 = FloatVector.fromArray(F, acc, a0Off + 3 * L);
    FloatVector a10 = FloatVector.fromArray(F, acc, a1Off), a11 = FloatVector.fromArray(F, acc, a1Off + L);
    FloatVector a12 = FloatVector.fromArray(F, acc, a1Off + 2 * L), a13 = FloatVector.fromArray(F, acc, a1Off + 3 * L);
    FloatVector a20 = FloatVector.fromArray(F, acc, a2Off), a21 = FloatVector.fromArray(F, acc, a2Off + L);
    FloatVector a22 = FloatVector.fromArray(F, acc, a2Off + 2 * L), a23 = FloatVector.fromArray(F, acc, a2Off + 3 * L);
    FloatVector a30 = FloatVector.fromArray(F, acc, a3Off), a31 = FloatVector.fromArray(F, acc, a3Off + L);
    FloatVector a32 = FloatVector.fromArray(F, acc, a3Off + 2 * L), a33 = FloatVector.fromArray(F, acc, a3Off + 3 * L);
    long at = blockOff;
    for (int j = 0; j < count; j++, at += rowBytes) {
      FloatVector v0 = FloatVector.fromMemorySegment(F, v, at, LE);
      FloatVector v1 = FloatVector.fromMemorySegment(F, v, at + vb, LE);
      FloatVector v2 = FloatVector.fromMemorySegment(F, v, at + 2 * vb, LE);
      FloatVector v3 = FloatVector.fromMemorySegment(F, v, at + 3 * vb, LE);
      FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
      a00 = v0.fma(b, a00);
      a01 = v1.fma(b, a01);
      a02 = v2.fma(b, a02);
      a03 = v3.fma(b, a03);
      b = FloatVector.broadcast(F, p[p1 + j]);
      a10 = v0.fma(b, a10);
      a11 = v1.fma(b, a11);
      a12 = v2.fma(b, a12);
      a13 = v3.fma(b, a13);
      b = FloatVector.broadcast(F, p[p2 + j]);
      a20 = v0.fma(b, a20);
      a21 = v1.fma(b, a21);
      a22 = v2.fma(b, a22);
      a23 = v3.fma(b, a23);
      b = FloatVector.broadcast(F, p[p3 + j]);
      a30 = v0.fma(b, a30);
      a31 = v1.fma(b, a31);
      a32 = v2.fma(b, a32);
      a33 = v3.fma(b, a33);
    }
    storeRow(acc, a0Off, a00, a01, a02, a03);
    storeRow(acc, a1Off, a10, a11, a12, a13);
    storeRow(acc, a2Off, a20, a21, a22, a23);
    storeRow(acc, a3Off, a30, a31, a32, a33);
  }

  /** One channel block for one head. */
  private static void accumulate1(float[] p, int p0, int w, MemorySegment v, long blockOff,
      DType dtype, boolean raw, int count, float[] acc, int aOff) {
    int bytes = dtype.bytes();
    long rowBytes = (long) w * bytes;
    boolean f32 = dtype == DType.F32, bf16 = dtype == DType.BF16;
    int c = 0;
    for (; c + L <= w; c += L) {
      FloatVector a = FloatVector.fromArray(F, acc, aOff + c);
      long at = blockOff + (long) c * bytes;
      for (int j = 0; j < count; j++, at += rowBytes) {
        FloatVector vv = f32 ? FloatVector.fromMemorySegment(F, v, at, LE) : loadHalf(v, at, bf16, raw);
        a = vv.fma(FloatVector.broadcast(F, p[p0 + j]), a);
      }
      a.intoArray(acc, aOff + c);
    }
    for (; c < w; c++) {
      accumulateColumn(p, p0, w, v, blockOff, dtype, raw, count, acc, aOff, c);
    }
  }

  private static void accumulateColumn(float[] p, int p0, int w, MemorySegment v, long blockOff,
      DType dtype, boolean raw, int count, float[] acc, int aOff, int c) {
    int bytes = dtype.bytes();
    float unit = raw ? 0x1p-112f : 1f; // exact: every f16 value times 2^-112 is an f32 (subnormal at worst)
    float r = acc[aOff + c];
    for (int j = 0; j < count; j++) {
      r = Math.fma(p[p0 + j], dtype.read(v, blockOff + ((long) j * w + c) * bytes) * unit, r);
    }
    acc[aOff + c] = r;
  }

  // ----------------------------------------------------------------------- hierarchical modes

  @Override
  public void nodeBounds(float[] q, int qOff, int d, MemorySegment rec, long box, long ball,
      DType dtype, float[] out, int o) {
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

  // ------------------------------------------------------------------------------------ probe

  @Override
  public double streamSum(MemorySegment seg, long off, long floatCount) {
    double total = 0;
    long done = 0;
    // int-indexed inner loops over 1 MiB blocks: C2 unrolls and hoists checks in int counted
    // loops much better than in long ones
    while (floatCount - done >= STREAM_BLOCK) {
      total += streamBlock(seg, off + done * Float.BYTES, STREAM_BLOCK);
      done += STREAM_BLOCK;
    }
    int rest = (int) (floatCount - done);
    int bound = rest - rest % (4 * L);
    if (bound > 0) {
      total += streamBlock(seg, off + done * Float.BYTES, bound);
    }
    for (long i = done + bound; i < floatCount; i++) {
      total += seg.get(F32_LE, off + i * Float.BYTES);
    }
    return total;
  }

  private static final int STREAM_BLOCK = 1 << 18; // floats: 1 MiB

  /** Sums n floats, n a multiple of 4L: four accumulators hide the add latency. */
  private static double streamBlock(MemorySegment seg, long off, int n) {
    FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n; i += 4 * L) {
      long at = off + (long) i * Float.BYTES;
      s0 = s0.add(FloatVector.fromMemorySegment(F, seg, at, LE));
      s1 = s1.add(FloatVector.fromMemorySegment(F, seg, at + (long) L * Float.BYTES, LE));
      s2 = s2.add(FloatVector.fromMemorySegment(F, seg, at + 2L * L * Float.BYTES, LE));
      s3 = s3.add(FloatVector.fromMemorySegment(F, seg, at + 3L * L * Float.BYTES, LE));
    }
    return VectorMath.sumLanes(s0.add(s1).add(s2.add(s3)));
  }
}
