package hflash.cluster;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;

/**
 * Block-interleaved placement of positions over shards, in segments. Inside a segment that starts
 * at global position {@code P} and stripes over {@code S} shards, position {@code p} is in block
 * {@code b = (p - P) / B} ({@code B = blockTokens}, a whole number of tiles) and block {@code b}
 * belongs to shard {@code b % S}; inside a shard the blocks are stored one after another, segment
 * after segment, so a shard's local positions are {@code [0, shardLength)} with no gaps. With one
 * segment (a cache as created):
 *
 * <pre>
 *   shard(p) = (p / B) % S          local(p) = (p / B / S) * B + p % B
 *   global(s, i) = ((i / B) * S + s) * B + i % B
 *   shardLength(n, s) = (n / (B*S)) * B + clamp(n % (B*S) - s*B, 0, B)
 * </pre>
 *
 * A later segment starts when a member joins ({@link #widen}): from the next block boundary past
 * every stored position, the new blocks stripe over one more shard (shards only grow: segment
 * {@code e} stripes over shards {@code 0 .. S_e - 1}, {@code S_e} increasing). Segment starts are
 * multiples of {@code B}, so every segment holds whole blocks and a shard's local blocks stay
 * aligned to {@code B}. In every case a causal prefix {@code [0, n)} of the context is a prefix
 * {@code [0, shardLength(n, s))} of every shard, so a decode with {@code keys = n} asks shard
 * {@code s} for its first {@code shardLength(n, s)} positions. The newest tokens spread over all
 * shards of the last segment as they arrive.
 */
public record Striping(int blockTokens, List<Segment> segments) implements Serializable {

  /** From global position {@code start} on (up to the next segment), blocks go to {@code shards} shards. */
  public record Segment(long start, int shards) implements Serializable {}

  public Striping {
    if (blockTokens < 1) {
      throw new IllegalArgumentException("blockTokens must be >= 1: " + blockTokens);
    }
    segments = List.copyOf(segments);
    if (segments.isEmpty() || segments.getFirst().start() != 0) {
      throw new IllegalArgumentException("the first segment must start at 0: " + segments);
    }
    for (int e = 0; e < segments.size(); e++) {
      Segment g = segments.get(e);
      if (g.shards() < 1) {
        throw new IllegalArgumentException("shards must be >= 1: " + g.shards());
      }
      if (g.start() % blockTokens != 0) {
        throw new IllegalArgumentException("segment start is not a multiple of blockTokens: " + g);
      }
      if (e > 0 && (g.start() <= segments.get(e - 1).start() || g.shards() <= segments.get(e - 1).shards())) {
        throw new IllegalArgumentException("segments must start later with more shards: " + segments);
      }
    }
  }

  /** One segment: {@code shards} shards from position 0. */
  public Striping(int shards, int blockTokens) {
    this(blockTokens, List.of(new Segment(0, shards)));
  }

  /** Shards of the last segment: every shard there is. */
  public int shards() {
    return segments.getLast().shards();
  }

  /**
   * This striping with one more shard from the block boundary at or after {@code from}: the last
   * segment is widened in place when it holds no position below that boundary yet.
   */
  public Striping widen(long from) {
    long start = Math.ceilDiv(from, blockTokens) * blockTokens;
    List<Segment> out = new ArrayList<>(segments);
    Segment last = out.getLast();
    if (start <= last.start()) {
      out.set(out.size() - 1, new Segment(last.start(), last.shards() + 1));
    } else {
      out.add(new Segment(start, last.shards() + 1));
    }
    return new Striping(blockTokens, out);
  }

  private long end(int e) {
    return e + 1 < segments.size() ? segments.get(e + 1).start() : Long.MAX_VALUE;
  }

  private int segmentOf(long p) {
    int e = segments.size() - 1;
    while (segments.get(e).start() > p) {
      e--;
    }
    return e;
  }

  /** Positions of shard {@code s} among the first {@code len} positions of segment {@code e}. */
  private long countIn(int e, int s, long len) {
    int shards = segments.get(e).shards();
    if (s >= shards || len <= 0) {
      return 0;
    }
    long round = (long) blockTokens * shards;
    long rem = len % round - (long) s * blockTokens;
    return (len / round) * blockTokens + Math.max(0, Math.min(blockTokens, rem));
  }

  public int shardOf(long p) {
    int e = segmentOf(p);
    Segment g = segments.get(e);
    return (int) (((p - g.start()) / blockTokens) % g.shards());
  }

  /** The local position of global position {@code p} in its shard. */
  public int local(long p) {
    return shardLength(p, shardOf(p));
  }

  /** The global position of local position {@code local} of shard {@code shard}. */
  public long global(int shard, int local) {
    long i = local;
    for (int e = 0; e < segments.size(); e++) {
      Segment g = segments.get(e);
      long full = end(e) == Long.MAX_VALUE ? Long.MAX_VALUE : countIn(e, shard, end(e) - g.start());
      if (i < full) {
        return g.start() + ((i / blockTokens) * g.shards() + shard) * blockTokens + i % blockTokens;
      }
      i -= full;
    }
    throw new IllegalArgumentException("shard out of range: " + shard);
  }

  /** Positions of {@code [0, n)} that shard {@code s} holds. */
  public int shardLength(long n, int s) {
    long sum = 0;
    for (int e = 0; e < segments.size() && segments.get(e).start() < n; e++) {
      long start = segments.get(e).start();
      sum += countIn(e, s, Math.min(n, end(e)) - start);
    }
    return (int) sum;
  }

  /**
   * The global position ranges {@code [from, to)} of shard {@code s}'s local positions
   * {@code [0, localLength)}, one per block, in order.
   */
  public List<long[]> globalRanges(int s, int localLength) {
    List<long[]> out = new ArrayList<>();
    for (int i = 0; i < localLength; i += blockTokens) {
      long from = global(s, i);
      out.add(new long[] {from, from + Math.min(blockTokens, localLength - i)});
    }
    return out;
  }
}
