package hflash.cluster;

import com.hazelcast.cluster.Member;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * The background work of one {@link DistributedKvCache} coordinator, on its own thread, and the
 * recovery of a coordinator that attaches ({@link #recover}):
 *
 * <ul>
 *   <li><b>Rebalance on join</b>: a data member new to the cache (it joined after the cache was
 *       created) gets a new shard: the placement's striping is widened ({@link Striping#widen}) from the next
 *       block boundary past every stored position, so the positions appended from then on stripe
 *       over the new membership; nothing stored moves. The new shard's copies are created first,
 *       then the placement is written to the cluster map (the single truth).
 *   <li><b>Repair</b>: every shard short of {@code min(replicas, members)} live copies gets a new
 *       copy on the live member holding the fewest, copied from a surviving copy. The bulk of the
 *       copy runs <em>without</em> the cache's lock, so decode (on the surviving copies) and
 *       append proceed meanwhile; then, under the lock, the copy catches up with what was
 *       appended since (and rewinds what was truncated since) and joins the placement. Reads
 *       never see the new copy before it holds every row.
 * </ul>
 */
final class ShardRepair {

  /** Floats per copy message: about 4 MB. */
  private static final int MESSAGE_FLOATS = 1 << 20;

  private final DistributedKvCache cache;
  private final CachePlacement placement;
  private final ShardClient client;
  private final ExecutorService thread;
  private final AtomicLong copiesMade = new AtomicLong();
  private volatile Consumer<String> log = s -> {};
  /** Tests: runs on the repair thread after a copy's unlocked bulk phase, before its catch-up. */
  volatile Runnable afterBulkCopy = () -> {};

  ShardRepair(DistributedKvCache cache, CachePlacement placement, ShardClient client) {
    this.cache = cache;
    this.placement = placement;
    this.client = client;
    this.thread = Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "hflash-repair-" + cache.name());
      t.setDaemon(true);
      return t;
    });
  }

  void setLog(Consumer<String> log) {
    this.log = log;
  }

  long copiesMade() {
    return copiesMade.get();
  }

  /** Queues a rebalance and repair pass (membership changed, a member was dropped). */
  void schedule() {
    try {
      thread.execute(this::run);
    } catch (RejectedExecutionException e) {
      // detached or closed
    }
  }

  /** Waits until no pass is queued or running. */
  void await() {
    try {
      thread.submit(() -> {}).get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (ExecutionException e) {
      throw new IllegalStateException(e.getCause());
    } catch (RejectedExecutionException e) {
      // detached or closed: nothing runs any more
    }
  }

  void shutdown() {
    thread.shutdownNow();
  }

  private void run() {
    if (cache.isClosed()) {
      return;
    }
    try {
      rebalance();
      repair();
    } catch (RuntimeException e) {
      log.accept("repair of " + cache.name() + " failed: " + e);
    }
  }

  /**
   * A new coordinator's start ({@link DistributedKvCache#attach}), under the cache's lock: the
   * lengths every shard agrees on (rows past them are truncated away) into {@code lengths}, and
   * the shards' summaries rebuilt from the rows the members hold.
   */
  void recover(int[] lengths) {
    cache.lock.lock();
    try {
      recoverLengths(lengths);
      recoverSummaries();
    } finally {
      cache.lock.unlock();
    }
  }

  /** Applies {@code call} to the first live copy of shard {@code s} that answers; null if none. */
  private <T> T askAnyCopy(int s, Callable<T> call) {
    for (String u : placement.liveOwners(s)) {
      try {
        return Calls.get(client.submit(u, call));
      } catch (RuntimeException e) {
        if (!Calls.isMemberFailure(e)) {
          throw e;
        }
        placement.memberFailed(u, e.toString());
      }
    }
    return null;
  }

  private void recoverLengths(int[] lengths) {
    hflash.memory.KvCacheLayout layout = cache.layout();
    int layers = layout.layers();
    Placement p = placement.current();
    int shards = p.shards();
    long[][] held = new long[shards][layers]; // min over live copies; MAX_VALUE = unknown (lost)
    for (int s = 0; s < shards; s++) {
      Arrays.fill(held[s], Long.MAX_VALUE);
      for (String u : placement.liveOwners(s)) {
        try {
          int[] len = Calls.get(client.submit(u, new ShardTasks.Lengths(cache.name(), s)));
          for (int l = 0; l < layers; l++) {
            held[s][l] = Math.min(held[s][l], len[l]);
          }
        } catch (RuntimeException e) {
          if (!Calls.isMemberFailure(e)) {
            throw e;
          }
          placement.memberFailed(u, e.toString());
        }
      }
    }
    Striping st = p.striping();
    for (int l = 0; l < layers; l++) {
      long lo = 0, hi = layout.capacity(); // largest n with shardLength(n, s) <= held[s] for all s
      while (lo < hi) {
        long mid = (lo + hi + 1) >>> 1;
        boolean ok = true;
        for (int s = 0; s < shards && ok; s++) {
          ok = st.shardLength(mid, s) <= held[s][l];
        }
        if (ok) {
          lo = mid;
        } else {
          hi = mid - 1;
        }
      }
      lengths[l] = (int) lo;
    }
    for (int l = 0; l < layers; l++) { // drop rows past the consistent prefix
      cache.truncateShards(l, lengths[l]);
    }
  }

  /** Rebuilds the shards' summaries from the rows one live copy of each holds. */
  private void recoverSummaries() {
    ShardSummaries summaries = cache.summaries();
    for (int s = 0; s < placement.current().shards(); s++) {
      float[] packed = askAnyCopy(s, new ShardTasks.Summary(cache.name(), s));
      if (packed == null) {
        summaries.unknown(s);
      } else {
        summaries.set(s, packed);
      }
    }
  }

  /** The data members this coordinator has not dropped, oldest first. */
  private List<String> usableMembers() {
    List<String> out = new ArrayList<>();
    for (Member m : client.dataMembers()) {
      String u = m.getUuid().toString();
      if (!placement.failed(u)) {
        out.add(u);
      }
    }
    return out;
  }

  /**
   * Gives every usable member that is new to the cache (not among the placement's members) a new
   * shard for the positions appended next. The
   * copies are created without the lock (allocating a large shard takes a while), sized for the
   * segment starting at the current length; the placement is widened under the lock from the
   * current length or that one, whichever is later (a later start only shrinks the shard).
   */
  private void rebalance() {
    for (String u : usableMembers()) {
      Placement p = placement.current();
      long from0 = cache.maxLength();
      if (cache.isClosed() || from0 >= p.capacity()) {
        return; // closed, or no position is left to place
      }
      if (p.members().contains(u)) {
        continue;
      }
      List<String> others = new ArrayList<>(usableMembers());
      others.remove(u);
      others.sort(Comparator.comparingInt(p::copiesOn)); // stable: oldest first among equals
      List<String> owners = new ArrayList<>(List.of(u));
      owners.addAll(others.subList(0, Math.min(others.size(), p.replicas() - 1)));
      Placement wider = p.widened(from0, owners);
      int shard = wider.shards() - 1;
      if (!createCopies(shard, wider, owners)) {
        continue;
      }
      cache.lock.lock();
      try {
        long from = Math.max(from0, cache.maxLengthLocked());
        if (cache.isClosed() || from >= p.capacity()) {
          return;
        }
        Placement now = placement.update(q -> q.widened(from, owners));
        cache.summaries().ensureShards(now.shards());
        log.accept("member " + u + " joined " + cache.name() + ": new shard " + shard + " on "
            + owners + " takes the blocks from position " + now.striping().segments().getLast().start()
            + " on (" + now.shards() + " shards)");
      } finally {
        cache.lock.unlock();
      }
    }
  }

  /** Creates the copies of a new shard; on any failure drops those made and returns false. */
  private boolean createCopies(int shard, Placement p, List<String> owners) {
    List<Future<Long>> fs = new ArrayList<>();
    for (String o : owners) {
      fs.add(client.submit(o, new ShardTasks.Create(p.name(), shard, p.shardLayout(shard))));
    }
    RuntimeException error = null;
    for (Future<Long> f : fs) {
      try {
        Calls.get(f);
      } catch (RuntimeException e) {
        error = error == null ? e : error;
      }
    }
    if (error == null) {
      return true;
    }
    for (String o : owners) {
      try {
        Calls.get(client.submit(o, new ShardTasks.Drop(p.name(), shard)));
      } catch (RuntimeException e) {
        // gone or never made
      }
    }
    if (!Calls.isMemberFailure(error)) {
      throw error;
    }
    log.accept("no new shard for " + cache.name() + " on " + owners + ": " + error);
    return false;
  }

  /** Brings every shard back to min(replicas, members) live copies. */
  private void repair() {
    for (int s = 0; s < placement.current().shards() && !cache.isClosed(); s++) {
      while (!cache.isClosed()) {
        List<String> live = placement.liveOwners(s);
        List<String> candidates = usableMembers();
        candidates.removeAll(live);
        int want = Math.min(placement.current().replicas(), live.size() + candidates.size());
        if (live.isEmpty() || live.size() >= want || candidates.isEmpty()) {
          break;
        }
        Placement p = placement.current();
        candidates.sort(Comparator.comparingInt(p::copiesOn));
        String target = candidates.getFirst();
        if (copyShard(s, live.getFirst(), target)) {
          copiesMade.incrementAndGet();
          log.accept("shard " + s + " of " + cache.name() + " copied from " + live.getFirst()
              + " to " + target);
        }
      }
    }
  }

  /**
   * Copies shard {@code s} from {@code source} to {@code target} and adds the copy to the
   * placement; false when either member failed (it is dropped and the caller picks again).
   * Phase 1, without the lock: the rows held when the copy starts. Phase 2, under the lock: rows
   * below the lowest length any truncation reached since phase 1 began are still the same rows;
   * the target is rewound to that point and brought up to the current length.
   */
  private boolean copyShard(int s, String source, String target) {
    int[] low = cache.watchTruncations(); // global lengths now, lowered by every truncation
    int[] goal = low.clone();
    int[] copied = new int[goal.length]; // local rows the target holds, per layer
    String name = cache.name();
    try {
      try {
        Calls.get(client.submit(target, new ShardTasks.Drop(name, s)));
      } catch (RuntimeException e) {
        if (Calls.isMemberFailure(e)) {
          throw e;
        }
      }
      Placement p = placement.current();
      Calls.get(client.submit(target, new ShardTasks.Create(name, s, p.shardLayout(s))));
      try {
        for (int l = 0; l < goal.length; l++) {
          copyRows(s, l, 0, p.striping().shardLength(goal[l], s), source, target, copied);
        }
      } catch (RuntimeException e) {
        if (Calls.isMemberFailure(e)) {
          throw e;
        }
        // a truncation raced a read: phase 2 rewinds to the low-water mark and goes on from there
      }
      afterBulkCopy.run();
      cache.lock.lock();
      try {
        if (cache.isClosed() || !placement.liveOwners(s).contains(source)) {
          return false;
        }
        Striping st = placement.current().striping();
        for (int l = 0; l < goal.length; l++) {
          int keep = Math.min(copied[l], st.shardLength(low[l], s));
          if (keep < copied[l]) {
            Calls.get(client.submit(target, new ShardTasks.Truncate(name, s, l, keep)));
            copied[l] = keep;
          }
          copyRows(s, l, keep, st.shardLength(cache.lengthLocked(l), s), source, target, copied);
        }
        placement.update(q -> q.plus(s, target));
        return true;
      } finally {
        cache.lock.unlock();
      }
    } catch (RuntimeException e) {
      if (!Calls.isMemberFailure(e)) {
        throw e;
      }
      // which side failed: a member that is gone is dropped; the loop then picks again
      for (String u : List.of(source, target)) {
        if (client.member(u) == null) {
          placement.memberFailed(u, e.toString());
        }
      }
      if (client.member(source) != null && client.member(target) != null) {
        placement.memberFailed(target, e.toString());
      }
      return false;
    } finally {
      cache.unwatchTruncations(low);
    }
  }

  /** Copies local rows {@code [from, to)} of one layer; {@code copied[layer]} follows. */
  private void copyRows(int s, int layer, int from, int to, String source, String target,
      int[] copied) {
    int row = cache.layout().kvHeads() * cache.layout().headDim();
    int perMessage = Math.max(1, MESSAGE_FLOATS / (2 * row));
    String name = cache.name();
    for (int f = from; f < to; f += perMessage) {
      int c = Math.min(perMessage, to - f);
      float[] kv = Calls.get(client.submit(source, new ShardTasks.ReadRows(name, s, layer, f, c)));
      float[] k = Arrays.copyOfRange(kv, 0, c * row);
      float[] v = Arrays.copyOfRange(kv, c * row, 2 * c * row);
      Calls.get(client.submit(target, new ShardTasks.Append(name, s, layer, f, c, k, v)));
      copied[layer] = f + c;
    }
  }
}
