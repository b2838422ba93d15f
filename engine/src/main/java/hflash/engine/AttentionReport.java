package hflash.engine;

import java.util.Arrays;

/**
 * What one decode call did. Key rows and tiles are counted per KV head: a key row scored once
 * serves all {@code g} query heads of its group, so it counts once. Mutable and reused:
 * {@link DecodeAttention#report()} returns the same object after every call (no allocation per
 * call); copy the numbers out if you need them later, or use {@link #addTo} for running totals.
 *
 * <p>Per query head, the approximate modes also give {@link #rho(int)} (an upper bound on the
 * softmax share of the keys they skipped) and {@link #errorBound(int)} (an upper bound on
 * {@code ||out_h - exact_h||} in the 2-norm); both are 0 for the exact modes. The sampled mode
 * gives {@link #estimateMiss(int)}, the true max minus the note's estimate.
 */
public final class AttentionReport {

  long keysInContext;
  long keysScored;
  long tilesRead;
  long kvBytesRead;
  long summaryBytesRead;
  long sampleBytesRead;
  long rescales;
  long guardFirings;
  long fmas;
  final double[] rho; // (numHeads)
  final double[] errorBound; // (numHeads)
  final double[] miss; // (numHeads)

  /** An empty report with no per-head figures, for running totals of counters. */
  public AttentionReport() {
    this(0);
  }

  AttentionReport(int numHeads) {
    rho = new double[numHeads];
    errorBound = new double[numHeads];
    miss = new double[numHeads];
  }

  /** A report for running totals (see {@link #addTo}); per-head figures keep their maxima. */
  public static AttentionReport totals(int numHeads) {
    return new AttentionReport(numHeads);
  }

  /** Key rows an exact call over the same context reads: keys attended times KV heads. */
  public long keysInContext() {
    return keysInContext;
  }

  /** Key rows whose scores were computed (each for every query head of its group). */
  public long keysScored() {
    return keysScored;
  }

  /** Tiles opened (K and V read), summed over KV heads. */
  public long tilesRead() {
    return tilesRead;
  }

  /** Bytes of K and V read from the cache, including refinement re-reads. */
  public long kvBytesRead() {
    return kvBytesRead;
  }

  /** Bytes of tile summaries read (certified and budgeted modes). */
  public long summaryBytesRead() {
    return summaryBytesRead;
  }

  /** Bytes of the sample store read (sampled mode). */
  public long sampleBytesRead() {
    return sampleBytesRead;
  }

  /**
   * Fused multiply-adds the call performed, counted from what it did (not timed): {@code d} per
   * query head per key row scored (scores, sample scores, the oracle's maxima), {@code d} per query
   * head per value row accumulated, {@link #EXP_FMAS} per weight exponentiated, and {@code 4d} per
   * query head per tile summary bounded ({@code d} per head per summary row for the ball-only
   * bound). The compute half of the roofline: {@code fmas / peak FMA rate} is the least time the
   * arithmetic can take. Maxima, comparisons, widening and the state updates are not counted.
   */
  public long fmas() {
    return fmas;
  }

  /**
   * Multiply-adds counted per exponentiated weight: the vector exp's two Cody-Waite FMAs and six
   * polynomial FMAs ({@code VectorMath.expSum}).
   */
  public static final int EXP_FMAS = 8;

  /** Every byte the call read: K, V, summaries and samples. */
  public long bytesRead() {
    return kvBytesRead + summaryBytesRead + sampleBytesRead;
  }

  /** Times a running max grew after its first tile, forcing the accumulators to be rescaled. */
  public long rescales() {
    return rescales;
  }

  /** Sampled mode: tiles whose max beat the fixed reference by more than the guard. */
  public long guardFirings() {
    return guardFirings;
  }

  /** Share of the context's key rows that were scored (1 for exact). */
  public double keysFraction() {
    return keysInContext == 0 ? 1.0 : (double) keysScored / keysInContext;
  }

  /** Upper bound on the softmax share of the keys head h skipped (0 when nothing was skipped). */
  public double rho(int h) {
    return rho[h];
  }

  /** Upper bound on {@code ||out_h - exact_h||}, 2-norm (0 when nothing was skipped). */
  public double errorBound(int h) {
    return errorBound[h];
  }

  /** Sampled mode: true max minus the estimate before the margin, for head h (&gt;= 0). */
  public double estimateMiss(int h) {
    return miss[h];
  }

  /** Largest {@link #errorBound(int)} over the heads. */
  public double maxErrorBound() {
    return max(errorBound);
  }

  /** Largest {@link #rho(int)} over the heads. */
  public double maxRho() {
    return max(rho);
  }

  /** Largest {@link #estimateMiss(int)} over the heads. */
  public double maxEstimateMiss() {
    return max(miss);
  }

  private static double max(double[] x) {
    double m = 0;
    for (double v : x) {
      m = Math.max(m, v);
    }
    return m;
  }

  /** Sets every counter and per-head figure to zero. */
  public void reset() {
    keysInContext = keysScored = tilesRead = kvBytesRead = rescales = 0;
    summaryBytesRead = sampleBytesRead = guardFirings = fmas = 0;
    Arrays.fill(rho, 0);
    Arrays.fill(errorBound, 0);
    Arrays.fill(miss, 0);
  }

  /** Adds the counters into {@code total} and keeps the per-head maxima; returns {@code total}. */
  public AttentionReport addTo(AttentionReport total) {
    total.keysInContext += keysInContext;
    total.keysScored += keysScored;
    total.tilesRead += tilesRead;
    total.kvBytesRead += kvBytesRead;
    total.summaryBytesRead += summaryBytesRead;
    total.sampleBytesRead += sampleBytesRead;
    total.rescales += rescales;
    total.guardFirings += guardFirings;
    total.fmas += fmas;
    for (int h = 0; h < Math.min(rho.length, total.rho.length); h++) {
      total.rho[h] = Math.max(total.rho[h], rho[h]);
      total.errorBound[h] = Math.max(total.errorBound[h], errorBound[h]);
      total.miss[h] = Math.max(total.miss[h], miss[h]);
    }
    return total;
  }

  /** Makes this report a copy of {@code other} (same number of heads). */
  void copyFrom(AttentionReport other) {
    reset();
    other.addTo(this);
  }

  @Override
  public String toString() {
    return "AttentionReport[keysInContext=" + keysInContext + ", keysScored=" + keysScored
        + ", tilesRead=" + tilesRead + ", kvBytesRead=" + kvBytesRead + ", summaryBytesRead="
        + summaryBytesRead + ", sampleBytesRead=" + sampleBytesRead + ", rescales=" + rescales
        + ", guardFirings=" + guardFirings + ", fmas=" + fmas + ", maxRho=" + maxRho() + ", maxErrorBound="
        + maxErrorBound() + "]";
  }
}
