package hflash.cluster;

import java.util.ArrayList;
import java.util.List;

/**
 * Block-interleaved placement of positions over shards: global position {@code p} is in block
 * {@code b = p / B} ({@code B = blockTokens}, a whole number of tiles), block {@code b} belongs to
 * shard {@code b % S}, and inside the shard the blocks are stored one after another, so a shard's
 * local positions are {@code [0, shardLength)} with no gaps:
 *
 * <pre>
 *   shard(p) = (p / B) % S          local(p) = (p / B / S) * B + p % B
 *   global(s, i) = ((i / B) * S + s) * B + i % B
 *   shardLength(n, s) = (n / (B*S)) * B + clamp(n % (B*S) - s*B, 0, B)
 * </pre>
 *
 * A causal prefix {@code [0, n)} of the context is a prefix {@code [0, shardLength(n, s))} of every
 * shard, so a decode with {@code keys = n} asks shard {@code s} for its first
 * {@code shardLength(n, s)} positions. The newest tokens spread over all shards as they arrive.
 */
public record Striping(int shards, int blockTokens) {

  public Striping {
    if (shards < 1) {
      throw new IllegalArgumentException("shards must be >= 1: " + shards);
    }
    if (blockTokens < 1) {
      throw new IllegalArgumentException("blockTokens must be >= 1: " + blockTokens);
    }
  }

  public int shardOf(long p) {
    return (int) ((p / blockTokens) % shards);
  }

  public int local(long p) {
    return (int) ((p / blockTokens / shards) * blockTokens + p % blockTokens);
  }

  public long global(int shard, int local) {
    return ((long) (local / blockTokens) * shards + shard) * blockTokens + local % blockTokens;
  }

  /** Positions of {@code [0, n)} that shard {@code s} holds. */
  public int shardLength(long n, int s) {
    long round = (long) blockTokens * shards;
    long rem = n % round - (long) s * blockTokens;
    return (int) ((n / round) * blockTokens + Math.max(0, Math.min(blockTokens, rem)));
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
