package hflash.engine;

/**
 * What one decode call did, counted per KV head: a key row scored once serves all {@code g} query
 * heads of its group, so it counts once. Mutable and reused: {@link DecodeAttention#report()}
 * returns the same object after every call (no allocation per call); copy the numbers out if you
 * need them later, or use {@link #addTo(AttentionReport)} to keep a running total.
 */
public final class AttentionReport {

  long keysInContext;
  long keysScored;
  long tilesRead;
  long kvBytesRead;
  long rescales;

  /** Key rows an exact call over the same context reads: keys attended times KV heads. */
  public long keysInContext() {
    return keysInContext;
  }

  /** Key rows whose scores were computed (each for every query head of its group). */
  public long keysScored() {
    return keysScored;
  }

  /** Tiles opened, summed over KV heads. */
  public long tilesRead() {
    return tilesRead;
  }

  /** Bytes of K and V read from the cache. */
  public long kvBytesRead() {
    return kvBytesRead;
  }

  /** Times a running max grew after its first tile, forcing the accumulators to be rescaled. */
  public long rescales() {
    return rescales;
  }

  /** Share of the context's key rows that were scored (1 for exact). */
  public double keysFraction() {
    return keysInContext == 0 ? 1.0 : (double) keysScored / keysInContext;
  }

  /** Sets every counter to zero. */
  public void reset() {
    keysInContext = keysScored = tilesRead = kvBytesRead = rescales = 0;
  }

  /** Adds this report's counters into {@code total}; returns {@code total}. */
  public AttentionReport addTo(AttentionReport total) {
    total.keysInContext += keysInContext;
    total.keysScored += keysScored;
    total.tilesRead += tilesRead;
    total.kvBytesRead += kvBytesRead;
    total.rescales += rescales;
    return total;
  }

  @Override
  public String toString() {
    return "AttentionReport[keysInContext=" + keysInContext + ", keysScored=" + keysScored
        + ", tilesRead=" + tilesRead + ", kvBytesRead=" + kvBytesRead + ", rescales=" + rescales + "]";
  }
}
