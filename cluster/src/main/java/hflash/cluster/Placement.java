package hflash.cluster;

import hflash.memory.DType;
import hflash.memory.KvCacheLayout;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;

/**
 * Where a distributed cache lives: its shape, its striping (segments included: a member that
 * joined added a shard) and, per shard, the members (UUIDs, primary first) that hold a copy. Kept
 * in the cluster map {@link ClusterSetup#PLACEMENTS} under the cache's name: the single truth
 * about where each position is, so it survives the coordinator ({@link DistributedKvCache#attach}
 * reads it back). {@code members} are the data members the placement has taken in: those of
 * the cluster at creation and each one that joined later and got its own shard; a member not
 * among them is new to this cache. Immutable; every change is a new record written back to the
 * map.
 */
public record Placement(String name, int layers, int kvHeads, int headDim, int capacity,
    String dtype, int tileTokens, Striping striping, int replicas, List<List<String>> owners,
    List<String> members) implements Serializable {

  public Placement {
    if (owners.size() != striping.shards()) {
      throw new IllegalArgumentException("owners differ from shards: " + owners.size() + "!="
          + striping.shards());
    }
    List<List<String>> copy = new ArrayList<>();
    for (List<String> o : owners) {
      copy.add(List.copyOf(o));
    }
    owners = List.copyOf(copy);
    members = List.copyOf(members);
  }

  KvCacheLayout layout() {
    return new KvCacheLayout(layers, kvHeads, headDim, capacity, DType.parse(dtype), tileTokens);
  }

  public int shards() {
    return striping.shards();
  }

  /**
   * The layout of a copy of {@code shard}: as many positions as it holds at capacity. Adding a
   * shard never raises an existing shard's count (the blocks past the new segment's start are
   * spread over more shards), so copies made before a join stay large enough.
   */
  KvCacheLayout shardLayout(int shard) {
    int c = Math.max(1, striping.shardLength(capacity, shard));
    return new KvCacheLayout(layers, kvHeads, headDim, c, DType.parse(dtype), tileTokens);
  }

  /** This placement without {@code member} among the owners of any shard. */
  Placement without(String member) {
    List<List<String>> o = new ArrayList<>();
    for (List<String> l : owners) {
      List<String> keep = new ArrayList<>(l);
      keep.remove(member);
      o.add(keep);
    }
    return with(o);
  }

  /** This placement with {@code member} added as the last owner of {@code shard}. */
  Placement plus(int shard, String member) {
    List<List<String>> o = new ArrayList<>(owners);
    List<String> l = new ArrayList<>(o.get(shard));
    l.add(member);
    o.set(shard, l);
    return with(o);
  }

  /**
   * This placement with one more shard from {@code from} on ({@link Striping#widen}), held by
   * {@code holders}; the first of them is the member that joined.
   */
  Placement widened(long from, List<String> holders) {
    List<List<String>> o = new ArrayList<>(owners);
    o.add(holders);
    List<String> m = new ArrayList<>(members);
    m.add(holders.getFirst());
    return new Placement(name, layers, kvHeads, headDim, capacity, dtype, tileTokens,
        striping.widen(from), replicas, o, m);
  }

  private Placement with(List<List<String>> o) {
    return new Placement(name, layers, kvHeads, headDim, capacity, dtype, tileTokens, striping,
        replicas, o, members);
  }

  /** Copies each member holds. */
  int copiesOn(String member) {
    int n = 0;
    for (List<String> l : owners) {
      n += l.contains(member) ? 1 : 0;
    }
    return n;
  }
}
