package hflash.engine;

import hflash.tiles.PrefillKernels;
import hflash.tiles.TileKernels;
import java.util.Arrays;

/**
 * Online-softmax state of a set of query heads (Rabe &amp; Staats, arXiv:2112.05682; Dao,
 * FlashAttention-2, arXiv:2307.08691):
 *
 * <pre>
 * m[h]          running max of the scores seen so far (starts at -inf)
 * l[h]          sum of exp(s_j - m[h]) over the keys seen (starts at 0)
 * acc[h*d + c]  sum of exp(s_j - m[h]) * v_j[c]           (starts at 0)
 * out           acc / l, or 0 when l == 0 (no key seen: a fully-masked row maps to zeros)
 * </pre>
 *
 * Per tile with scores {@code s_j}: {@code m' = max(m, max_j s_j)}, {@code alpha = exp(m - m')},
 * {@code l = l*alpha + sum_j exp(s_j - m')}, {@code acc = acc*alpha + sum_j exp(s_j - m') v_j}.
 * Two states over disjoint key ranges merge with the same rule ({@link #merge}), which is how
 * split-K partial results combine (FlashDecoding).
 *
 * <p>Not thread-safe: each worker owns its states.
 */
public final class AttentionState {

  private final int heads;
  private final int headDim;
  final float[] m; // (heads)
  final float[] l; // (heads)
  final float[] acc; // (heads, headDim) row-major

  /** A state for {@code heads} query heads of dimension {@code headDim}, reset. */
  public AttentionState(int heads, int headDim) {
    if (heads <= 0 || headDim <= 0) {
      throw new IllegalArgumentException("heads and headDim must be positive: " + heads + ", " + headDim);
    }
    this.heads = heads;
    this.headDim = headDim;
    this.m = new float[heads];
    this.l = new float[heads];
    this.acc = new float[Math.multiplyExact(heads, headDim)];
    reset();
  }

  public int heads() {
    return heads;
  }

  public int headDim() {
    return headDim;
  }

  /** Running max of head {@code h}. */
  public float max(int h) {
    return m[h];
  }

  /** Running sum of head {@code h}. */
  public float sum(int h) {
    return l[h];
  }

  /** Back to the empty state: m = -inf, l = 0, acc = 0. */
  public void reset() {
    Arrays.fill(m, Float.NEGATIVE_INFINITY);
    Arrays.fill(l, 0f);
    Arrays.fill(acc, 0f);
  }

  /**
   * {@link #absorbScores} for a tile whose scores were already turned into weights relative to
   * their own max: row i of {@code s} holds {@code exp(s_j - tileMax[i])} and sums to
   * {@code tileSum[i]} (the certified K-scan computes both while it measures the tile's mass).
   * Rescales the rows in place to {@code exp(s_j - m')}, so they are ready for p.V.
   *
   * @param stats tileMax of head i at {@code maxes[statsOff + i]}, tileSum at {@code sums[statsOff + i]}
   */
  int absorbWeights(TileKernels kernels, int h0, int g, float[] s, int sStride, int count,
      float[] maxes, double[] sums, int statsOff, float[] alphas) {
    int rescales = 0;
    for (int i = 0; i < g; i++) {
      int h = h0 + i;
      float tileMax = maxes[statsOff + i];
      rescales += raiseMax(kernels, h, i, tileMax, alphas);
      float f = tileMax == m[h] ? 1f : (float) Math.exp(tileMax - m[h]);
      if (f != 1f) {
        kernels.scale(s, i * sStride, count, f);
      }
      l[h] += (float) sums[statsOff + i] * f;
    }
    return rescales;
  }

  /**
   * Folds one tile's scores of heads {@code [h0, h0+g)} into the state and turns them into the
   * tile's weights {@code p_j = exp(s_j - m')} in place, ready for the {@code p . V} accumulation.
   *
   * @param s (g, sStride) scores of the tile, overwritten with the weights
   * @param alphas (g) or null: where to record each head's accumulator rescale factor (1 when
   *     none) instead of applying it; the pipeline's V unit applies them, in the same order
   * @return how many heads had to rescale a non-empty accumulator
   */
  int absorbScores(TileKernels kernels, int h0, int g, float[] s, int sStride, int count,
      float[] alphas) {
    int rescales = 0;
    for (int i = 0; i < g; i++) {
      int h = h0 + i;
      float tileMax = kernels.max(s, i * sStride, count);
      rescales += raiseMax(kernels, h, i, tileMax, alphas);
      l[h] += kernels.expSum(s, i * sStride, count, m[h]);
    }
    return rescales;
  }

  /**
   * {@link #absorbScores} of heads {@code [0, rows)} for a tile whose row maxima the prefill score
   * kernel already took ({@link PrefillKernels#scores(float[], int, int, int, float[], int, float[],
   * int, float[])}), the weights and sums formed by one {@link PrefillKernels#expRows} call. Per head
   * the operations are absorbScores' (raise the max, then {@code l += sum exp(s - m')}), so the
   * bits are the same.
   *
   * @param sums (rows) scratch for the row sums
   */
  int absorbRows(TileKernels kernels, PrefillKernels prefill, int rows, float[] s, int sStride, int count,
      float[] rowMax, float[] sums, float[] alphas) {
    int rescales = 0;
    for (int h = 0; h < rows; h++) {
      rescales += raiseMax(kernels, h, h, rowMax[h], alphas);
    }
    prefill.expRows(s, sStride, rows, count, m, 0, sums);
    for (int h = 0; h < rows; h++) {
      l[h] += sums[h];
    }
    return rescales;
  }

  /**
   * The online-softmax step of head h (group index i) for a tile with max {@code tileMax}: raises
   * m[h] to it, rescaling l and the accumulator (or recording the factor in {@code alphas[i]} for
   * the pipeline's V unit) when they hold mass. Returns 1 when it rescaled, else 0.
   */
  int raiseMax(TileKernels kernels, int h, int i, float tileMax, float[] alphas) {
    float alpha = 1f;
    int rescaled = 0;
    if (tileMax > m[h]) {
      if (l[h] != 0f) { // old max is finite and the accumulators hold mass: rescale them
        alpha = (float) Math.exp(m[h] - tileMax);
        l[h] *= alpha;
        if (alphas == null) {
          kernels.scale(acc, h * headDim, headDim, alpha);
        }
        rescaled = 1;
      }
      m[h] = tileMax;
    }
    if (alphas != null) {
      alphas[i] = alpha;
    }
    return rescaled;
  }

  /**
   * The sampled mode's update: head h's reference {@code m[h]} was fixed in advance (estimate plus
   * margin) and stays put unless a tile's max beats it by more than {@code guard}; then the state
   * rescales to that max (a guard firing). Weights are {@code exp(s - m) <= exp(guard)}, so with
   * guard &lt;= 60 nothing overflows, and keys far below the reference underflow only where their
   * share of the sum is below float resolution. Also tracks the true max in {@code trueMax}.
   *
   * @return guard firings
   */
  int absorbScoresWithReference(TileKernels kernels, int h0, int g, float[] s, int sStride,
      int count, float guard, float[] trueMax, float[] alphas) {
    int firings = 0;
    for (int i = 0; i < g; i++) {
      int h = h0 + i;
      float tileMax = kernels.max(s, i * sStride, count);
      trueMax[h] = Math.max(trueMax[h], tileMax);
      float alpha = 1f;
      if (tileMax > m[h] + guard) {
        if (l[h] != 0f) {
          alpha = (float) Math.exp(m[h] - tileMax);
          l[h] *= alpha;
          if (alphas == null) {
            kernels.scale(acc, h * headDim, headDim, alpha);
          }
        }
        m[h] = tileMax;
        firings++;
      }
      if (alphas != null) {
        alphas[i] = alpha;
      }
      l[h] += kernels.expSum(s, i * sStride, count, m[h]);
    }
    return firings;
  }

  /** Fixes head h's reference max before a sampled pass (its sum and accumulator stay 0). */
  void setReference(int h, float reference) {
    m[h] = reference;
  }

  /** Resets heads [h0, h0+g) only. */
  void reset(int h0, int g) {
    Arrays.fill(m, h0, h0 + g, Float.NEGATIVE_INFINITY);
    Arrays.fill(l, h0, h0 + g, 0f);
    Arrays.fill(acc, h0 * headDim, (h0 + g) * headDim, 0f);
  }

  /** ||acc_h / l_h||, the 2-norm of head h's current output (0 when l == 0). */
  double outputNorm(int h) {
    if (l[h] == 0f) {
      return 0;
    }
    double sq = 0;
    for (int c = 0; c < headDim; c++) {
      double x = acc[h * headDim + c] / (double) l[h];
      sq += x * x;
    }
    return Math.sqrt(sq);
  }

  /**
   * Merges {@code other} (a state over a disjoint set of keys) into this one. Commutative and
   * associative up to float rounding.
   */
  public void merge(AttentionState other) {
    if (other.heads != heads || other.headDim != headDim) {
      throw new IllegalArgumentException("state shapes differ: (" + heads + ", " + headDim
          + ") != (" + other.heads + ", " + other.headDim + ")");
    }
    for (int h = 0; h < heads; h++) {
      if (other.l[h] == 0f) {
        continue; // nothing seen on the other side
      }
      if (l[h] == 0f) {
        m[h] = other.m[h];
        l[h] = other.l[h];
        System.arraycopy(other.acc, h * headDim, acc, h * headDim, headDim);
        continue;
      }
      float mNew = Math.max(m[h], other.m[h]);
      float sa = (float) Math.exp(m[h] - mNew); // one of sa, sb is exactly 1
      float sb = (float) Math.exp(other.m[h] - mNew);
      l[h] = l[h] * sa + other.l[h] * sb;
      int base = h * headDim;
      for (int c = 0; c < headDim; c++) {
        acc[base + c] = acc[base + c] * sa + other.acc[base + c] * sb;
      }
      m[h] = mNew;
    }
  }

  /**
   * Writes the normalised output of every head into {@code out[outOff ..]} as (heads, headDim);
   * heads that saw no key get zeros.
   */
  public void finish(float[] out, int outOff) {
    for (int h = 0; h < heads; h++) {
      int base = h * headDim;
      if (l[h] == 0f) {
        Arrays.fill(out, outOff + base, outOff + base + headDim, 0f);
        continue;
      }
      float inv = 1f / l[h];
      for (int c = 0; c < headDim; c++) {
        out[outOff + base + c] = acc[base + c] * inv;
      }
    }
  }

  /** Floats {@link #writeTo} writes: {@code heads * (headDim + 2)}. */
  public int packedFloats() {
    return heads * 2 + acc.length;
  }

  /** Packs the state into {@code dst[off ..]} as m (heads), l (heads), acc (heads, headDim). */
  public void writeTo(float[] dst, int off) {
    System.arraycopy(m, 0, dst, off, heads);
    System.arraycopy(l, 0, dst, off + heads, heads);
    System.arraycopy(acc, 0, dst, off + 2 * heads, acc.length);
  }

  /** Restores a state packed by {@link #writeTo} (bit for bit). */
  public void readFrom(float[] src, int off) {
    System.arraycopy(src, off, m, 0, heads);
    System.arraycopy(src, off + heads, l, 0, heads);
    System.arraycopy(src, off + 2 * heads, acc, 0, acc.length);
  }

  /** Copies {@code other} into this state. */
  public void copyFrom(AttentionState other) {
    System.arraycopy(other.m, 0, m, 0, heads);
    System.arraycopy(other.l, 0, l, 0, heads);
    System.arraycopy(other.acc, 0, acc, 0, acc.length);
  }
}
