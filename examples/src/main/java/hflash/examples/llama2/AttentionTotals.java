package hflash.examples.llama2;

import java.util.Locale;

/**
 * Sums of the engine's per-call {@code AttentionReport} over a run.
 *
 * @param calls number of {@code decode} calls (tokens x layers)
 * @param keysInContext key rows an exact pass over the same contexts would score (keys x KV heads, summed)
 * @param keysScored key rows whose scores were computed (once per KV head, shared by its query heads)
 * @param tilesRead KV tiles read
 * @param kvBytesRead bytes of K and V read, refinement re-reads included
 * @param exactKvBytes bytes of K and V an exact pass reads: {@code keysInContext * 2 * rowBytes}
 * @param summaryBytesRead bytes of tile summaries read (certified, budgeted)
 * @param sampleBytesRead bytes of the sample store read (sampled)
 * @param rescales online-softmax rescales of the running accumulator
 * @param maxErrorBound largest per-head bound on {@code ||out_h - exact_h||} of any call (0 when exact)
 */
public record AttentionTotals(long calls, long keysInContext, long keysScored, long tilesRead, long kvBytesRead,
    long exactKvBytes, long summaryBytesRead, long sampleBytesRead, long rescales, double maxErrorBound) {

  /** The totals of an exact run, before the approximate modes existed: nothing skipped, no side structures. */
  public AttentionTotals(long calls, long keysScored, long tilesRead, long kvBytesRead, long rescales) {
    this(calls, 0, keysScored, tilesRead, kvBytesRead, kvBytesRead, 0, 0, rescales, 0);
  }

  /** Every byte the attention read: K, V, summaries and samples. */
  public long bytesRead() {
    return kvBytesRead + summaryBytesRead + sampleBytesRead;
  }

  /** {@link #bytesRead()} over what exact attention reads for the same calls (1 for exact; 0 when nothing ran). */
  public double bytesFraction() {
    return exactKvBytes == 0 ? 0 : (double) bytesRead() / exactKvBytes;
  }

  /**
   * One line, e.g. {@code attention: 1000 calls, 52000 keys scored, 1000 tiles read, 3.3 MB read (1.00 of exact),
   * 40 rescales, max error bound 0}.
   */
  public String summary() {
    return String.format(Locale.ROOT, "attention: %d calls, %d keys scored, %d tiles read, %.1f MB read"
        + " (%.2f of exact), %d rescales, max error bound %.3g", calls, keysScored, tilesRead, bytesRead() / 1e6,
        bytesFraction(), rescales, maxErrorBound);
  }
}
