package hflash.cluster;

import hflash.memory.DType;
import hflash.memory.KvCacheLayout;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;

/**
 * Where a distributed cache lives: its shape, its striping and, per shard, the members (UUIDs,
 * primary first) that hold a copy. Kept in the cluster map {@link ClusterSetup#PLACEMENTS} under
 * the cache's name, so it survives the coordinator: {@link DistributedKvCache#attach} reads it
 * back. Immutable; every change is a new record written back to the map.
 */
public record Placement(String name, int layers, int kvHeads, int headDim, int capacity,
    String dtype, int tileTokens, int shards, int blockTokens, int replicas,
    List<List<String>> owners) implements Serializable {

  public Placement {
    if (owners.size() != shards) {
      throw new IllegalArgumentException("owners differ from shards: " + owners.size() + "!=" + shards);
    }
    List<List<String>> copy = new ArrayList<>();
    for (List<String> o : owners) {
      copy.add(List.copyOf(o));
    }
    owners = List.copyOf(copy);
  }

  KvCacheLayout layout() {
    return new KvCacheLayout(layers, kvHeads, headDim, capacity, DType.parse(dtype), tileTokens);
  }

  Striping striping() {
    return new Striping(shards, blockTokens);
  }

  /** The layout of one shard copy: as many positions as the largest shard holds at capacity. */
  KvCacheLayout shardLayout() {
    int c = Math.max(1, striping().shardLength(capacity, 0));
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

  private Placement with(List<List<String>> o) {
    return new Placement(name, layers, kvHeads, headDim, capacity, dtype, tileTokens, shards,
        blockTokens, replicas, o);
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
