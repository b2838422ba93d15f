package hflash.tiles;

import java.lang.foreign.MemorySegment;

/**
 * The kernels of a tiled prefill block: many query rows (a block of positions times the GQA
 * group, e.g. 32 x 4 = 128 for W1) against one K/V tile that stays in L1/L2 while all of them
 * use it. Where the decode kernels ({@link TileKernels}) stream a tile once for four query heads
 * and widen 16-bit elements on every load, these widen a tile once per block into f32 scratch
 * and then run arithmetic-bound register-blocked loops over plain arrays: R rows x C vectors of
 * accumulators, each K or V vector loaded once per R rows, each q or p element broadcast once per
 * C vectors (see docs/KERNELS.md, "Prefill micro-kernels").
 *
 * <p><b>Bits.</b> Every score is {@code fma(q_c, k_c, acc)} over c = 0 .. d-1 in order starting
 * from 0, and every p.V element is {@code fma(p_j, v_j, acc)} over the tile's keys in order
 * starting from 0 and then added once to the running sum: the summation order of
 * {@link ScalarTileKernels#scores} and of the decode path's per-tile p.V partial
 * ({@code TileLoop.accumulateTile}). A 16-bit element widens to its exact f32 value, so
 * {@code q * k} is the same real product the decode kernels round (they fold f16's 2^112 into q
 * or p, which scales both factors exactly). Hence a prefill row has the bits of one decode call.
 *
 * <p>Scratch layouts ({@link #KEY_CHUNK} = 64 keys or channels per chunk, so every inner loop
 * steps by a constant and the JIT can drop its range checks):
 *
 * <pre>
 * kf  (ceil(count/64), d, 64): kf[(j/64)*d*64 + c*64 + j%64] = K[j][c]; keys [count, roundUp(count, 64))
 *     are finite (zero or the tile's padding), so the score loops run whole 64-key chunks
 * vf  (ceil(d/64), tileTokens, 64): vf[(c/64)*tileTokens*64 + j*64 + c%64] = V[j][c]
 * q   (rows, d) row-major at qOff, times the softmax scale
 * s   (rows, sStride): scores; sStride &gt;= roundUp(count, 64)
 * p   (rows, pStride): weights
 * acc (rows, d) row-major at accOff
 * </pre>
 *
 * Kernels trust their inputs (the engine sizes the scratch by the plan); they only {@code assert}.
 * Block dtypes (q8_0, q4_0) are not widened here: their tiles stay on the decode kernels.
 */
public interface PrefillKernels {

  /** Keys (in kf) and channels (in vf) per chunk. */
  int KEY_CHUNK = 64;

  /** Short name, e.g. {@code "prefill-vector-512-6x4"} or {@code "prefill-scalar"}. */
  String name();

  /** Floats of kf for a tile of {@code tileTokens} keys of head dimension d. */
  static int keyScratch(int tileTokens, int d) {
    return Math.multiplyExact(roundUp(tileTokens), d);
  }

  /** Floats of vf for a tile of {@code tileTokens} keys of head dimension d. */
  static int valueScratch(int tileTokens, int d) {
    return Math.multiplyExact(roundUp(d), tileTokens);
  }

  /** {@code n} rounded up to a multiple of {@link #KEY_CHUNK}. */
  static int roundUp(int n) {
    return (n + KEY_CHUNK - 1) / KEY_CHUNK * KEY_CHUNK;
  }

  /**
   * K rows {@code [0, count)} of the tile at byte offset {@code kOff} (laid out as
   * the cache's {@code TileLayout} says, 16-bit runs paired) into kf as exact f32 values.
   */
  void widenKeys(MemorySegment k, long kOff, TileEncoding dtype, int d, int count, float[] kf);

  /** V rows {@code [0, count)} of the tile of {@code tileTokens} keys at {@code vOff} into vf. */
  void widenValues(MemorySegment v, long vOff, TileEncoding dtype, int d, int count, int tileTokens, float[] vf);

  /**
   * {@code s[r*sStride + j] = q[qOff + r*d ..] . K[j]} for {@code r < rows}, {@code j < count}
   * (fma over c in order from 0); may write finite values for keys up to roundUp(count, 64).
   */
  void scores(float[] q, int qOff, int rows, int d, float[] kf, int count, float[] s, int sStride);

  /**
   * {@link #scores} that also writes each row's max over its keys {@code [0, count)} into
   * {@code rowMax[0 .. rows)}: the number {@link TileKernels#max} finds over the row (a max is
   * exact), taken from the score registers before they are stored instead of in a second pass.
   */
  void scores(float[] q, int qOff, int rows, int d, float[] kf, int count, float[] s, int sStride, float[] rowMax);

  /**
   * Per row r &lt; rows in one call: {@code s[r*sStride + j] = exp(s[r*sStride + j] - m[mOff + r])}
   * for j &lt; count and {@code sums[r]} = their sum; each row gives the bits of
   * {@link TileKernels#expSum} of the decode kernels these prefill kernels go with ({@link #of}).
   */
  void expRows(float[] s, int sStride, int rows, int count, float[] m, int mOff, float[] sums);

  /**
   * {@code acc[accOff + r*d + c] += sum_j p[r*pStride + j] * V[j][c]} for {@code r < rows},
   * {@code c < d}, the sum over {@code j < count} formed first (fma in key order from 0) and then
   * added to acc: the decode path's per-tile partial. vf holds a tile of {@code tileTokens} keys.
   */
  void accumulate(float[] p, int pStride, int rows, int d, float[] vf, int tileTokens, int count,
      float[] acc, int accOff);

  /**
   * {@code -Dhflash.prefillKernels=decode} keeps a tiled prefill on the decode kernels (the path
   * before these kernels, same bits), for A/B timing; default {@code micro}.
   */
  String PROPERTY = "hflash.prefillKernels";

  /**
   * The prefill kernels a tiled prefill over a {@code dtype} cache uses next to {@code kernels}, or
   * null when it stays on the decode kernels: block dtypes, or {@link #PROPERTY} = {@code decode}.
   *
   * @throws IllegalArgumentException when the property is neither {@code micro} nor {@code decode}
   */
  static PrefillKernels select(TileKernels kernels, TileEncoding dtype) {
    String raw = System.getProperty(PROPERTY, "micro").trim();
    if (!raw.equals("micro") && !raw.equals("decode")) {
      throw new IllegalArgumentException(PROPERTY + " must be micro or decode: " + raw);
    }
    return dtype.quantized() || raw.equals("decode") ? null : of(kernels);
  }

  /**
   * The prefill kernels that go with {@code kernels}: the vector ones at this JVM's width for
   * vector kernels of that width, else the scalar twin (which gives the same bits).
   */
  static PrefillKernels of(TileKernels kernels) {
    if (kernels.bitSize() > 0 && ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()
        && kernels.bitSize() == VectorProbe.kernelBitSize()) {
      return VectorProbe.createPrefill();
    }
    return new ScalarPrefillKernels(kernels);
  }
}
