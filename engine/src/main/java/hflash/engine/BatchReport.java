package hflash.engine;

/**
 * What a {@link BatchedDecode} call read and did: totals over the batch, and one {@link AttentionReport} per
 * sequence. In a cascade a shared page's bytes are read once and attributed to its sequences in
 * equal shares ({@code perSequence(b).kvBytesRead()}), so the shares sum to {@link #kvBytesRead()}.
 */
public final class BatchReport {
  long kvBytesRead;
  long separateKvBytes;
  long fmas;
  long keysScored;
  long rescales;
  int pagesShared;
  int pagesRead;
  boolean cascade;
  AttentionReport[] perSequence = new AttentionReport[0];

  void reset(int batch, int numHeads) {
    kvBytesRead = separateKvBytes = fmas = keysScored = rescales = 0;
    pagesShared = pagesRead = 0;
    cascade = false;
    if (perSequence.length != batch) {
      perSequence = new AttentionReport[batch];
      for (int b = 0; b < batch; b++) {
        perSequence[b] = new AttentionReport(numHeads);
      }
    }
    for (AttentionReport r : perSequence) {
      r.reset();
    }
  }

  /** Bytes of K and V the call read (summaries and samples too, outside the cascade). */
  public long kvBytesRead() {
    return kvBytesRead;
  }

  /** What B separate decode calls read for the same step: every sequence's own keys. */
  public long separateKvBytes() {
    return separateKvBytes;
  }

  /** Multiply-adds of the call, as {@link AttentionReport#fmas()} counts them. */
  public long fmas() {
    return fmas;
  }

  /** Key rows scored, per KV head, summed over the sequences. */
  public long keysScored() {
    return keysScored;
  }

  /** Pages (with the same stored keys) that two or more sequences of the batch read together. */
  public int pagesShared() {
    return pagesShared;
  }

  /** Distinct pages the cascade read (each once per KV head); 0 outside the cascade. */
  public int pagesRead() {
    return pagesRead;
  }

  /** True when the last call ran as a cascade (exact mode). */
  public boolean cascade() {
    return cascade;
  }

  /** Sequences of the last call. */
  public int sequences() {
    return perSequence.length;
  }

  /** Counters of sequence b of the last call. */
  public AttentionReport perSequence(int b) {
    return perSequence[b];
  }
}
