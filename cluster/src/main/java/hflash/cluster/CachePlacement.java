package hflash.cluster;

import com.hazelcast.map.IMap;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;

/**
 * The coordinator's view of one cache's {@link Placement}: the current record (also in the
 * cluster map {@link ClusterSetup#PLACEMENTS}, written back on every change, so the map stays
 * the single truth a new coordinator reads), the members this coordinator dropped after they
 * failed a call, and what follows from both: the live copies of a shard and the positions with
 * none left. Thread-safe: decode threads drop members while the repair thread adds copies.
 */
final class CachePlacement {

  private final String name;
  private final ShardClient client;
  private final IMap<String, Placement> map;
  private final Object lock = new Object();
  private final Set<String> failed = ConcurrentHashMap.newKeySet();
  private volatile Placement placement;
  private volatile boolean frozen; // closed or detached: the map is no longer written
  private volatile Consumer<String> log = s -> {};
  private final Runnable onDrop;

  CachePlacement(Placement p, ShardClient client, Runnable onDrop) {
    this.name = p.name();
    this.placement = p;
    this.client = client;
    this.map = client.hazelcast().getMap(ClusterSetup.PLACEMENTS);
    this.onDrop = onDrop;
  }

  void setLog(Consumer<String> log) {
    this.log = log;
  }

  Placement current() {
    return placement;
  }

  /** Applies {@code change} to the placement and records the result in the cluster. */
  Placement update(UnaryOperator<Placement> change) {
    synchronized (lock) {
      placement = change.apply(placement);
      persist();
      return placement;
    }
  }

  /** Whether this coordinator dropped {@code member} after a failure. */
  boolean failed(String member) {
    return failed.contains(member);
  }

  /** The owners of {@code shard} that are still members and not dropped, primary first. */
  List<String> liveOwners(int shard) {
    List<String> out = new ArrayList<>();
    for (String u : placement.owners().get(shard)) {
      if (!failed.contains(u) && client.member(u) != null) {
        out.add(u);
      }
    }
    return out;
  }

  /**
   * Drops {@code member} from every shard it held (it failed a call or left), records the new
   * placement in the cluster and tells the repair.
   */
  void memberFailed(String member, String why) {
    boolean owner = false;
    synchronized (lock) {
      if (placement.copiesOn(member) > 0) {
        owner = true;
        failed.add(member);
        placement = placement.without(member);
        persist();
      }
    }
    if (owner) {
      log.accept("member " + member + " dropped from " + name + ": " + why);
      onDrop.run();
    }
  }

  private void persist() {
    if (!frozen) {
      try {
        map.put(name, placement);
      } catch (RuntimeException e) {
        log.accept("could not record the placement of " + name + ": " + e);
      }
    }
  }

  /** Stops writing the map (detach, close). */
  void freeze() {
    frozen = true;
  }

  /** Shards with no live copy now. */
  List<Integer> lostShards() {
    List<Integer> out = new ArrayList<>();
    for (int s = 0; s < placement.shards(); s++) {
      if (liveOwners(s).isEmpty()) {
        out.add(s);
      }
    }
    return out;
  }

  /** Positions per layer (up to {@code maxLength}) with no live copy. */
  long lostPositions(int maxLength) {
    Striping st = placement.striping();
    long n = 0;
    for (int s : lostShards()) {
      n += st.shardLength(maxLength, s);
    }
    return n;
  }

  /** The exception for shards without a copy, naming the layers and global ranges up to {@code maxLength}. */
  ShardLostException lost(List<Integer> shards, int maxLength) {
    Striping st = placement.striping();
    StringBuilder sb = new StringBuilder("positions lost (every copy's member failed) in layers [0, "
        + placement.layers() + "):");
    long total = 0;
    for (int s : shards) {
      List<long[]> ranges = st.globalRanges(s, st.shardLength(maxLength, s));
      long n = 0;
      for (long[] r : ranges) {
        n += r[1] - r[0];
      }
      total += n;
      sb.append(s == shards.getFirst() ? " shard " : "; shard ").append(s).append(": ");
      for (int i = 0; i < Math.min(4, ranges.size()); i++) {
        sb.append(i > 0 ? ", " : "").append('[').append(ranges.get(i)[0]).append(", ")
            .append(ranges.get(i)[1]).append(')');
      }
      if (ranges.size() > 4) {
        sb.append(", ... ").append(ranges.size() - 4).append(" more blocks of ")
            .append(st.blockTokens()).append(" up to ").append(ranges.getLast()[1]);
      }
      sb.append(" (").append(n).append(" positions)");
    }
    return new ShardLostException(sb.toString(), total);
  }
}
