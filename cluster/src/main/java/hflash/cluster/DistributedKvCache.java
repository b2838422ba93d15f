package hflash.cluster;

import com.hazelcast.cluster.Member;
import com.hazelcast.cluster.MembershipEvent;
import com.hazelcast.cluster.MembershipListener;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.map.IMap;
import hflash.memory.DType;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;

/**
 * A KV cache whose positions are striped over the members of a Hazelcast cluster
 * ({@link Striping}: blocks of whole tiles, block {@code b} on shard {@code b % shards}), with the
 * contract of {@link hflash.memory.KvCache}: {@code append} (single and batched, all or nothing),
 * {@code length}, {@code truncate}, {@code close}. Each shard has {@code replicas} copies on
 * distinct members (default 2 when there are at least 2 members); each copy is an ordinary
 * off-heap {@code KvCache} in the member's {@link ShardStore}. The placement (shape, striping,
 * shard to members) is kept in the cluster map {@link ClusterSetup#PLACEMENTS} ({@link
 * CachePlacement}), so a new coordinator can {@link #attach} to the cache after this one is gone.
 *
 * <p>Membership ({@link ShardRepair}, in the background): a member that fails a call (left,
 * died, shut down) is dropped from the placement and its copies are re-created on the remaining
 * members from a surviving copy, while reads go to the surviving copies; positions with no copy
 * left make every later decode that needs them throw {@link ShardLostException}. A member that
 * joins gets a new shard: the positions appended after the join stripe over it too.
 *
 * <p>Threading: one coordinator thread at a time calls append, truncate and decode (they take
 * this object's fair lock); the repair thread takes it only to widen the placement and for the
 * last rows of a copy.
 */
public final class DistributedKvCache implements AutoCloseable {

  /** Rows per append message: about 4 MB of floats at W1 shapes. */
  private static final int MESSAGE_FLOATS = 1 << 20;

  /** Replication, shard count and block size of a new cache. */
  public record Options(int replicas, int shards, int blockTiles) {
    public Options {
      if (replicas < 1) {
        throw new IllegalArgumentException("replicas must be >= 1: " + replicas);
      }
      if (shards < 0) {
        throw new IllegalArgumentException("shards must be >= 0 (0 = one per member): " + shards);
      }
      if (blockTiles < 1) {
        throw new IllegalArgumentException("blockTiles must be >= 1: " + blockTiles);
      }
    }

    /** 2 replicas (capped at the member count), one shard per member, blocks of one tile. */
    public static Options defaults() {
      return new Options(2, 0, 1);
    }
  }

  private final String name;
  private final KvCacheLayout layout;
  private final ShardClient client;
  final CachePlacement placement;
  final ShardRepair repair;
  private final int[] lengths; // (layers) global positions held
  final ReentrantLock lock = new ReentrantLock(true); // fair: the repair's catch-up is not starved by a decode loop
  private final List<int[]> truncationWatches = new ArrayList<>(); // low-water marks of running copies
  private final UUID listener;
  private final AtomicLong failovers = new AtomicLong();
  private final ShardSummaries summaries;
  private volatile boolean closed;

  private DistributedKvCache(HazelcastInstance hz, Placement p) {
    this.name = p.name();
    this.layout = p.layout();
    this.lengths = new int[layout.layers()];
    this.client = new ShardClient(hz);
    this.placement = new CachePlacement(p, client, this::scheduleRepair);
    this.repair = new ShardRepair(this, placement, client);
    this.summaries = new ShardSummaries(layout, p.shards());
    this.listener = hz.getCluster().addMembershipListener(new MembershipListener() {
      @Override
      public void memberAdded(MembershipEvent e) {
        scheduleRepair();
      }

      @Override
      public void memberRemoved(MembershipEvent e) {
        placement.memberFailed(e.getMember().getUuid().toString(), "left the cluster");
      }
    });
  }

  /** {@link #create(HazelcastInstance, String, int, int, int, int, DType, int, Options)} with defaults. */
  public static DistributedKvCache create(HazelcastInstance hz, String name, int layers,
      int kvHeads, int headDim, int capacity, DType dtype, int tileTokens) {
    return create(hz, name, layers, kvHeads, headDim, capacity, dtype, tileTokens, Options.defaults());
  }

  /**
   * Creates the cache {@code name} over the current members of {@code hz}'s cluster: shard
   * {@code s} on members {@code s, s+1, ..} (oldest first, modulo the member count).
   *
   * @throws IllegalArgumentException bad shape, a block dtype, or a cache of that name exists
   * @throws IllegalStateException no member, or a member's memory budget is exceeded
   */
  public static DistributedKvCache create(HazelcastInstance hz, String name, int layers,
      int kvHeads, int headDim, int capacity, DType dtype, int tileTokens, Options options) {
    Objects.requireNonNull(hz, "hz");
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(options, "options");
    KvCacheLayout layout = new KvCacheLayout(layers, kvHeads, headDim, capacity, dtype, tileTokens);
    if (dtype.quantized()) {
      // the shard summaries round element by element; a block dtype rounds a value by its block
      throw new IllegalArgumentException("block dtypes are not supported over a distributed cache: "
          + dtype.id());
    }
    List<Member> members = new ShardClient(hz).dataMembers();
    if (members.isEmpty()) {
      throw new IllegalStateException("no data member in the cluster to hold " + name);
    }
    int m = members.size();
    int shards = options.shards() == 0 ? m : options.shards();
    int replicas = Math.min(options.replicas(), m);
    List<List<String>> owners = new ArrayList<>();
    for (int s = 0; s < shards; s++) {
      List<String> o = new ArrayList<>();
      for (int r = 0; r < replicas; r++) {
        o.add(members.get((s + r) % m).getUuid().toString());
      }
      owners.add(o);
    }
    Placement p = new Placement(name, layers, kvHeads, headDim, capacity, dtype.id(),
        layout.tileTokens(), new Striping(shards, options.blockTiles() * tileTokens), replicas, owners,
        members.stream().map(x -> x.getUuid().toString()).toList());
    IMap<String, Placement> map = hz.getMap(ClusterSetup.PLACEMENTS);
    if (map.putIfAbsent(name, p) != null) {
      throw new IllegalArgumentException("a distributed cache named " + name
          + " exists: attach to it or close it first");
    }
    DistributedKvCache c = new DistributedKvCache(hz, p);
    try {
      List<Future<?>> fs = new ArrayList<>();
      for (int s = 0; s < shards; s++) {
        for (String u : owners.get(s)) {
          fs.add(c.submit(u, new ShardTasks.Create(name, s, p.shardLayout(s))));
        }
      }
      for (Future<?> f : fs) {
        Calls.get(f);
      }
    } catch (RuntimeException e) {
      c.close();
      throw e;
    }
    return c;
  }

  /**
   * Attaches to the existing cache {@code name} (a coordinator restart): reads the placement from
   * the cluster, the lengths and the shards' summaries from the members (so certified and
   * budgeted ask the same members as the previous coordinator did). Positions that only some
   * shards received (an append cut short by the previous coordinator's death) are truncated
   * away, so every layer is a consistent prefix; under-replicated shards are repaired and
   * members that joined meanwhile get a shard, in the background.
   *
   * @throws IllegalArgumentException no cache of that name
   */
  public static DistributedKvCache attach(HazelcastInstance hz, String name) {
    IMap<String, Placement> map = hz.getMap(ClusterSetup.PLACEMENTS);
    Placement p = map.get(name);
    if (p == null) {
      throw new IllegalArgumentException("no distributed cache named " + name);
    }
    DistributedKvCache c = new DistributedKvCache(hz, p);
    try {
      c.repair.recover(c.lengths);
    } catch (RuntimeException e) {
      c.detach();
      throw e;
    }
    c.scheduleRepair();
    return c;
  }

  /** Where this coordinator's log lines go (shard moves, joins, failures); default: nowhere. */
  public void setLog(Consumer<String> log) {
    Objects.requireNonNull(log, "log");
    placement.setLog(log);
    repair.setLog(log);
  }

  public String name() {
    return name;
  }

  /** The global shape: capacity is the whole context. */
  public KvCacheLayout layout() {
    return layout;
  }

  /** The current striping (it gains a segment when a member joins). */
  public Striping striping() {
    return placement.current().striping();
  }

  /** The current placement (as this coordinator last wrote or read it). */
  public Placement placement() {
    return placement.current();
  }

  /** Positions stored for {@code layer}. */
  public int length(int layer) {
    ensureOpen();
    Objects.checkIndex(layer, lengths.length);
    return lengths[layer];
  }

  /** Calls retried on another copy after a member failed, since creation. */
  public long failovers() {
    return failovers.get();
  }

  /** Shard copies re-created after failures, since creation. */
  public long copiesMade() {
    return repair.copiesMade();
  }

  /** Appends one position ({@code k}, {@code v}: (kvHeads, headDim)) to {@code layer}. */
  public void append(int layer, float[] k, float[] v) {
    append(layer, 1, k, v);
  }

  /**
   * Appends {@code count} positions to {@code layer}, all or nothing: validated first (lengths,
   * finite values in the dtype's range, capacity), then written to every live copy of each shard
   * the rows fall into; returns when all copies hold them. If some rows end with no copy (every
   * member holding their shard failed during the call) the append is undone on every shard and
   * {@link ShardLostException} is thrown.
   *
   * @param k (count, kvHeads, headDim) row-major
   * @param v (count, kvHeads, headDim) row-major
   */
  public void append(int layer, int count, float[] k, float[] v) {
    ensureOpen();
    Objects.checkIndex(layer, lengths.length);
    validateRows(count, k, v);
    lock.lock();
    try {
      int p0 = lengths[layer];
      if ((long) p0 + count > layout.capacity()) {
        throw new IllegalStateException("cache full: " + p0 + " + " + count + " > capacity "
            + layout.capacity() + " (layer=" + layer + ")");
      }
      Striping striping = striping();
      int row = layout.kvHeads() * layout.headDim();
      int shards = striping.shards();
      int[] start = new int[shards];
      int[] rows = new int[shards];
      for (int s = 0; s < shards; s++) {
        start[s] = striping.shardLength(p0, s);
        rows[s] = striping.shardLength((long) p0 + count, s) - start[s];
      }
      float[][] ks = new float[shards][], vs = new float[shards][];
      int[] fill = new int[shards];
      for (int s = 0; s < shards; s++) {
        ks[s] = new float[rows[s] * row];
        vs[s] = new float[rows[s] * row];
      }
      for (int i = 0; i < count; i++) {
        int s = striping.shardOf((long) p0 + i);
        System.arraycopy(k, i * row, ks[s], fill[s] * row, row);
        System.arraycopy(v, i * row, vs[s], fill[s] * row, row);
        fill[s]++;
      }
      writeShards(layer, start, rows, ks, vs, p0);
      lengths[layer] = p0 + count;
      summaries.add(striping, layer, p0, count, k, v);
    } finally {
      lock.unlock();
    }
  }

  /** The shards' top-level summaries (under the lock). */
  ShardSummaries summaries() {
    return summaries;
  }

  private void validateRows(int count, float[] k, float[] v) {
    Objects.requireNonNull(k, "k");
    Objects.requireNonNull(v, "v");
    if (count < 0) {
      throw new IllegalArgumentException("count must be >= 0: " + count);
    }
    long expected = (long) count * layout.kvHeads() * layout.headDim();
    if (k.length != expected || v.length != expected) {
      throw new IllegalArgumentException("k and v length must be count*kvHeads*headDim: "
          + k.length + ", " + v.length + " != " + expected);
    }
    DType dtype = layout.dtype();
    for (int pass = 0; pass < 2; pass++) {
      float[] a = pass == 0 ? k : v;
      for (int i = 0; i < a.length; i++) {
        if (!Float.isFinite(a[i]) || !dtype.representable(a[i])) {
          throw new IllegalArgumentException("non-finite or out-of-range " + dtype.id()
              + " value at " + (pass == 0 ? "k" : "v") + "[" + i + "]=" + a[i]);
        }
      }
    }
  }

  /** Sends each shard's rows to its live copies, in messages of at most MESSAGE_FLOATS floats. */
  private void writeShards(int layer, int[] start, int[] rows, float[][] ks, float[][] vs, int p0) {
    int row = layout.kvHeads() * layout.headDim();
    int perMessage = Math.max(1, MESSAGE_FLOATS / row);
    int shards = start.length;
    for (int done = 0; ; done += perMessage) {
      List<Future<Integer>> fs = new ArrayList<>();
      List<String> who = new ArrayList<>();
      List<Integer> shardOf = new ArrayList<>();
      for (int s = 0; s < shards; s++) {
        int n = Math.min(perMessage, rows[s] - done);
        if (n <= 0) {
          continue;
        }
        float[] kc = Arrays.copyOfRange(ks[s], done * row, (done + n) * row);
        float[] vc = Arrays.copyOfRange(vs[s], done * row, (done + n) * row);
        List<String> live = placement.liveOwners(s);
        if (live.isEmpty()) {
          truncateShards(layer, p0);
          throw lost(List.of(s));
        }
        for (String u : live) {
          fs.add(submit(u, new ShardTasks.Append(name, s, layer, start[s] + done, n, kc, vc)));
          who.add(u);
          shardOf.add(s);
        }
      }
      if (fs.isEmpty()) {
        return;
      }
      int[] written = new int[shards];
      RuntimeException error = null;
      for (int i = 0; i < fs.size(); i++) {
        try {
          Calls.get(fs.get(i));
          written[shardOf.get(i)]++;
        } catch (RuntimeException e) {
          if (Calls.isMemberFailure(e)) {
            placement.memberFailed(who.get(i), e.toString());
          } else if (error == null) {
            error = e;
          }
        }
      }
      List<Integer> gone = new ArrayList<>();
      for (int s : new TreeSet<>(shardOf)) {
        if (written[s] == 0) {
          gone.add(s);
        }
      }
      if (error != null || !gone.isEmpty()) {
        truncateShards(layer, p0); // undo
        throw error != null ? error : lost(gone);
      }
    }
  }

  /** Shortens every layer to at most {@code n} positions, on every live copy. */
  public void truncate(int n) {
    ensureOpen();
    if (n < 0) {
      throw new IllegalArgumentException("length must be >= 0: " + n);
    }
    lock.lock();
    try {
      for (int l = 0; l < lengths.length; l++) {
        lengths[l] = Math.min(lengths[l], n);
        truncateShards(l, lengths[l]);
      }
    } finally {
      lock.unlock();
    }
  }

  /** Shortens {@code layer} to at most {@code n} positions. */
  public void truncate(int layer, int n) {
    ensureOpen();
    Objects.checkIndex(layer, lengths.length);
    if (n < 0) {
      throw new IllegalArgumentException("length must be >= 0: " + n);
    }
    lock.lock();
    try {
      lengths[layer] = Math.min(lengths[layer], n);
      truncateShards(layer, lengths[layer]);
    } finally {
      lock.unlock();
    }
  }

  /** Truncates every live copy of {@code layer} to the global length {@code n} (under the lock). */
  void truncateShards(int layer, int n) {
    for (int[] low : truncationWatches) {
      low[layer] = Math.min(low[layer], n);
    }
    Striping striping = striping();
    List<Future<Integer>> fs = new ArrayList<>();
    List<String> who = new ArrayList<>();
    for (int s = 0; s < striping.shards(); s++) {
      for (String u : placement.liveOwners(s)) {
        fs.add(submit(u, new ShardTasks.Truncate(name, s, layer, striping.shardLength(n, s))));
        who.add(u);
      }
    }
    for (int i = 0; i < fs.size(); i++) {
      try {
        Calls.get(fs.get(i));
      } catch (RuntimeException e) {
        if (!Calls.isMemberFailure(e)) {
          throw e;
        }
        placement.memberFailed(who.get(i), e.toString());
      }
    }
  }

  // ---------------------------------------------------------------- for the repair and decode

  /** The lengths now, registered to be lowered by every truncation until {@link #unwatchTruncations}. */
  int[] watchTruncations() {
    lock.lock();
    try {
      int[] low = lengths.clone();
      truncationWatches.add(low);
      return low;
    } finally {
      lock.unlock();
    }
  }

  void unwatchTruncations(int[] low) {
    lock.lock();
    try {
      truncationWatches.remove(low);
    } finally {
      lock.unlock();
    }
  }

  /** Length of {@code layer}; the caller holds the lock. */
  int lengthLocked(int layer) {
    return lengths[layer];
  }

  /** The longest layer; the caller holds the lock. */
  int maxLengthLocked() {
    int max = 0;
    for (int l : lengths) {
      max = Math.max(max, l);
    }
    return max;
  }

  int maxLength() {
    lock.lock();
    try {
      return maxLengthLocked();
    } finally {
      lock.unlock();
    }
  }

  <T> Future<T> submit(String member, Callable<T> task) {
    return client.submit(member, task);
  }

  ShardClient client() {
    return client;
  }

  void countFailover() {
    failovers.incrementAndGet();
  }

  /** The exception for shards without a copy, naming the layers and global ranges. */
  ShardLostException lost(List<Integer> shards) {
    return placement.lost(shards, maxLengthLocked());
  }

  /** Shards with no live copy now. */
  public List<Integer> lostShards() {
    return placement.lostShards();
  }

  /** Positions per layer (at the longest layer) with no live copy. */
  public long lostPositions() {
    return placement.lostPositions(maxLength());
  }

  private void scheduleRepair() {
    if (!closed) {
      repair.schedule();
    }
  }

  /** Waits until no repair or rebalance is queued or running (tests, benchmarks). */
  public void awaitRepairs() {
    repair.await();
  }

  // ---------------------------------------------------------------- lifecycle

  boolean isClosed() {
    return closed;
  }

  void ensureOpen() {
    if (closed) {
      throw new IllegalStateException("DistributedKvCache is closed: " + this);
    }
  }

  /**
   * Stops this coordinator (its listener and repair thread) and leaves the shards and the
   * placement in the cluster for a later {@link #attach}. Idempotent.
   */
  public void detach() {
    if (closed) {
      return;
    }
    closed = true;
    placement.freeze();
    repair.shutdown();
    try {
      client.hazelcast().getCluster().removeMembershipListener(listener);
    } catch (RuntimeException e) {
      // the instance may be gone already
    }
  }

  /** Drops every copy on every member and the placement, then detaches. Idempotent. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    lock.lock();
    try {
      List<Future<Integer>> fs = new ArrayList<>();
      for (Member m : client.dataMembers()) {
        fs.add(client.submit(m, new ShardTasks.Drop(name, -1)));
      }
      for (Future<Integer> f : fs) {
        try {
          Calls.get(f);
        } catch (RuntimeException e) {
          // a member that is gone holds nothing any more
        }
      }
      client.hazelcast().getMap(ClusterSetup.PLACEMENTS).remove(name);
    } catch (RuntimeException e) {
      // logged nowhere else: the caller is closing
    } finally {
      detach();
      lock.unlock();
    }
  }

  @Override
  public String toString() {
    Placement p = placement.current();
    return "DistributedKvCache[" + name + ", " + layout + ", shards=" + p.shards()
        + ", blockTokens=" + p.striping().blockTokens() + ", replicas=" + p.replicas() + "]";
  }
}
