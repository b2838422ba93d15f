package hflash.cluster;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What one distributed decode call did: per member asked, the positions its shards held for the
 * call, the bytes it read, its own time and the round trip, and the payload bytes sent and
 * received (the request and reply as serialised, without Hazelcast's framing); plus the totals
 * and, for the bounded modes, the global per-head bounds of the merged result. Overwritten by
 * every call, like {@link hflash.engine.AttentionReport}.
 */
public final class ClusterReport {

  /**
   * One member's part of a call. {@code retry} is true for a request sent after a failover. The
   * round trip splits into {@code requestNanos} (submitted here to started there),
   * {@code memberNanos} (the member's own time; {@code memberCpuNanos} of it on a core) and
   * {@code replyNanos} (finished there to the reply in hand here); the two ends read {@code System.nanoTime()} in different processes,
   * which agree on one host (a system-wide monotonic clock) but not across hosts.
   */
  public record MemberCall(String member, String address, int[] shards, long positions,
      long bytesRead, long memberNanos, long memberCpuNanos, long roundTripNanos, long requestNanos,
      long replyNanos, long payloadSent, long payloadReceived, boolean retry) {
    @Override
    public String toString() {
      return "MemberCall[" + address + ", shards=" + Arrays.toString(shards) + ", positions="
          + positions + ", bytesRead=" + bytesRead + ", memberUs=" + memberNanos / 1000 + ", memberCpuUs=" + memberCpuNanos / 1000
          + ", roundTripUs=" + roundTripNanos / 1000 + ", requestUs=" + requestNanos / 1000
          + ", replyUs=" + replyNanos / 1000 + ", sent=" + payloadSent + ", received="
          + payloadReceived + (retry ? ", retry" : "") + "]";
    }
  }

  final List<MemberCall> calls = new ArrayList<>();
  long keysInContext;
  long keysScored;
  long tilesRead;
  long kvBytesRead;
  long summaryBytesRead;
  long sampleBytesRead;
  long fmas;
  int failovers;
  int shardsSkipped;
  boolean[] asked = new boolean[0]; // (shards) whose state was merged
  hflash.engine.AttentionConfig[] configs = new hflash.engine.AttentionConfig[0]; // (shards) run, null = not asked
  double[] rho = new double[0]; // (numHeads)
  double[] errorBound = new double[0]; // (numHeads)

  void reset(int numHeads) {
    calls.clear();
    keysInContext = keysScored = tilesRead = kvBytesRead = summaryBytesRead = sampleBytesRead = 0;
    fmas = 0;
    failovers = shardsSkipped = 0;
    if (rho.length != numHeads) {
      rho = new double[numHeads];
      errorBound = new double[numHeads];
    }
    Arrays.fill(rho, 0);
    Arrays.fill(errorBound, 0);
  }

  /** The requests of the call, one per member asked (plus one per failover retry). */
  public List<MemberCall> calls() {
    return List.copyOf(calls);
  }

  /** Distinct members asked. */
  public int membersAsked() {
    return (int) calls.stream().map(MemberCall::member).distinct().count();
  }

  /** Requests resent to another copy because a member failed during the call. */
  public int failovers() {
    return failovers;
  }

  /**
   * Shards holding keys of this call that were not asked: certified mode found their whole mass
   * too small to matter (from the shards' summaries); the bound accounts for them.
   */
  public int shardsSkipped() {
    return shardsSkipped;
  }

  /** Whether shard {@code s} was asked (its state merged) in this call. */
  public boolean asked(int s) {
    return s < asked.length && asked[s];
  }

  /**
   * The mode shard {@code s} ran in this call (budgeted: its share of the budget), or null when
   * it was not asked.
   */
  public hflash.engine.AttentionConfig shardConfig(int s) {
    return s < configs.length ? configs[s] : null;
  }

  public long keysInContext() {
    return keysInContext;
  }

  public long keysScored() {
    return keysScored;
  }

  public long tilesRead() {
    return tilesRead;
  }

  public long kvBytesRead() {
    return kvBytesRead;
  }

  /** K, V, summary and sample bytes read over all members. */
  public long bytesRead() {
    return kvBytesRead + summaryBytesRead + sampleBytesRead;
  }

  public long fmas() {
    return fmas;
  }

  /** Request bytes sent over all members. */
  public long payloadSent() {
    return calls.stream().mapToLong(MemberCall::payloadSent).sum();
  }

  /** Reply bytes received over all members. */
  public long payloadReceived() {
    return calls.stream().mapToLong(MemberCall::payloadReceived).sum();
  }

  /** Upper bound on the softmax share the merged result skipped, head h (bounded modes). */
  public double rho(int h) {
    return rho[h];
  }

  /** Upper bound on {@code ||out_h - exact_h||} of the merged result (bounded modes). */
  public double errorBound(int h) {
    return errorBound[h];
  }

  public double maxErrorBound() {
    return Arrays.stream(errorBound).max().orElse(0);
  }

  public double maxRho() {
    return Arrays.stream(rho).max().orElse(0);
  }

  @Override
  public String toString() {
    return "ClusterReport[membersAsked=" + membersAsked() + ", failovers=" + failovers
        + ", keysScored=" + keysScored + ", bytesRead=" + bytesRead() + ", sent=" + payloadSent()
        + ", received=" + payloadReceived() + ", maxErrorBound=" + maxErrorBound() + ", calls="
        + calls + "]";
  }
}
