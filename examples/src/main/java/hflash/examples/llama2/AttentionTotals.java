package hflash.examples.llama2;

import java.util.Locale;

/**
 * Sums of the engine's per-call {@code AttentionReport} over a run.
 *
 * @param calls number of {@code decode} calls (tokens x layers)
 * @param keysScored keys whose score was computed
 * @param tilesRead KV tiles read
 * @param kvBytesRead bytes of K and V read
 * @param rescales online-softmax rescales of the running accumulator
 */
public record AttentionTotals(long calls, long keysScored, long tilesRead, long kvBytesRead, long rescales) {

  /** One line, e.g. {@code attention: 1000 calls, 52000 keys scored, 1000 tiles read, 3.3 MB KV read, 40 rescales}. */
  public String summary() {
    return String.format(Locale.ROOT, "attention: %d calls, %d keys scored, %d tiles read, %.1f MB KV read,"
        + " %d rescales", calls, keysScored, tilesRead, kvBytesRead / 1e6, rescales);
  }
}
