package hflash.cluster;

import com.hazelcast.cluster.Member;
import com.hazelcast.cluster.MembershipEvent;
import com.hazelcast.cluster.MembershipListener;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.core.IExecutorService;
import com.hazelcast.map.IMap;
import hflash.memory.DType;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
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
 * off-heap {@code KvCache} in the member's {@link ShardStore}. The placement (shard to members) is
 * kept in the cluster map {@link ClusterSetup#PLACEMENTS}, so a new coordinator can
 * {@link #attach} to the cache after this one is gone.
 *
 * <p>Faults: an append returns once every live copy of the affected shards holds it. A member
 * that fails a call (left, died, shut down) is dropped from the placement and its copies are
 * re-created on the remaining members in the background (from a surviving copy); until then reads
 * go to the surviving copies. Positions with no copy left make every later decode that needs them
 * throw {@link ShardLostException}.
 *
 * <p>Threading: one coordinator thread at a time calls append, truncate and decode (they take
 * this object's lock); the repair runs on its own thread and takes the lock too while it copies
 * a shard, so a call waits for a running copy.
 */
public final class DistributedKvCache implements AutoCloseable {

  /** Rows per copy/append message: about 4 MB of floats at W1 shapes. */
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

  private final HazelcastInstance hz;
  private final String name;
  private final KvCacheLayout layout;
  private final Striping striping;
  private final IExecutorService executor;
  private final IMap<String, Placement> placements;
  private final Object placementLock = new Object();
  private volatile Placement placement;
  private final int[] lengths; // (layers) global positions held
  final ReentrantLock lock = new ReentrantLock();
  private final Set<String> failed = ConcurrentHashMap.newKeySet(); // members dropped by this coordinator
  private final ExecutorService repairer;
  private final UUID listener;
  private final AtomicLong failovers = new AtomicLong();
  private final AtomicLong copiesMade = new AtomicLong();
  private volatile Consumer<String> log = s -> {};
  private ShardSummaries summaries; // null after attach: unknown, nothing is skipped
  private volatile boolean closed;

  private DistributedKvCache(HazelcastInstance hz, Placement p) {
    this.hz = hz;
    this.name = p.name();
    this.layout = p.layout();
    this.striping = p.striping();
    this.placement = p;
    this.lengths = new int[layout.layers()];
    this.executor = hz.getExecutorService(ClusterSetup.EXECUTOR);
    this.placements = hz.getMap(ClusterSetup.PLACEMENTS);
    this.repairer = Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "hflash-repair-" + name);
      t.setDaemon(true);
      return t;
    });
    this.listener = hz.getCluster().addMembershipListener(new MembershipListener() {
      @Override
      public void memberAdded(MembershipEvent e) {
        scheduleRepair();
      }

      @Override
      public void memberRemoved(MembershipEvent e) {
        memberFailed(e.getMember().getUuid().toString(), "left the cluster");
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
   * @throws IllegalArgumentException bad shape, or a cache of that name exists
   * @throws IllegalStateException no member, or a member's memory budget is exceeded
   */
  public static DistributedKvCache create(HazelcastInstance hz, String name, int layers,
      int kvHeads, int headDim, int capacity, DType dtype, int tileTokens, Options options) {
    Objects.requireNonNull(hz, "hz");
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(options, "options");
    KvCacheLayout layout = new KvCacheLayout(layers, kvHeads, headDim, capacity, dtype, tileTokens);
    List<Member> members = new ArrayList<>(hz.getCluster().getMembers());
    members.removeIf(Member::isLiteMember);
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
        layout.tileTokens(), shards, options.blockTiles() * tileTokens, replicas, owners);
    IMap<String, Placement> map = hz.getMap(ClusterSetup.PLACEMENTS);
    if (map.putIfAbsent(name, p) != null) {
      throw new IllegalArgumentException("a distributed cache named " + name
          + " exists: attach to it or close it first");
    }
    DistributedKvCache c = new DistributedKvCache(hz, p);
    c.summaries = new ShardSummaries(layout, c.striping); // exact: this coordinator sees every row
    try {
      List<Future<?>> fs = new ArrayList<>();
      for (int s = 0; s < shards; s++) {
        for (String u : owners.get(s)) {
          fs.add(c.submit(u, new ShardTasks.Create(name, s, p.shardLayout())));
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
   * the cluster and the lengths from the members. Positions that only some shards received (an
   * append cut short by the previous coordinator's death) are truncated away, so every layer is
   * a consistent prefix; under-replicated shards are repaired in the background.
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
      c.recoverLengths();
    } catch (RuntimeException e) {
      c.detach();
      throw e;
    }
    c.scheduleRepair();
    return c;
  }

  private void recoverLengths() {
    int layers = layout.layers();
    int shards = striping.shards();
    long[][] held = new long[shards][layers]; // min over live copies; MAX_VALUE = unknown (lost)
    for (int s = 0; s < shards; s++) {
      java.util.Arrays.fill(held[s], Long.MAX_VALUE);
      for (String u : placement.owners().get(s)) {
        try {
          int[] len = Calls.get(submit(u, new ShardTasks.Lengths(name, s)));
          for (int l = 0; l < layers; l++) {
            held[s][l] = Math.min(held[s][l], len[l]);
          }
        } catch (RuntimeException e) {
          if (!Calls.isMemberFailure(e)) {
            throw e;
          }
          memberFailed(u, e.toString());
        }
      }
    }
    for (int l = 0; l < layers; l++) {
      long lo = 0, hi = layout.capacity(); // largest n with shardLength(n, s) <= held[s] for all s
      while (lo < hi) {
        long mid = (lo + hi + 1) >>> 1;
        boolean ok = true;
        for (int s = 0; s < shards && ok; s++) {
          ok = striping.shardLength(mid, s) <= held[s][l];
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
      truncateShards(l, lengths[l]);
    }
  }

  /** Where this coordinator's log lines go (shard moves, failures); default: nowhere. */
  public void setLog(Consumer<String> log) {
    this.log = Objects.requireNonNull(log, "log");
  }

  public String name() {
    return name;
  }

  /** The global shape: capacity is the whole context. */
  public KvCacheLayout layout() {
    return layout;
  }

  public Striping striping() {
    return striping;
  }

  /** The current placement (as this coordinator last wrote or read it). */
  public Placement placement() {
    return placement;
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
    return copiesMade.get();
  }

  HazelcastInstance hazelcast() {
    return hz;
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
      if (summaries != null) {
        summaries.add(layer, p0, count, k, v);
      }
    } finally {
      lock.unlock();
    }
  }

  /** The shards' top-level summaries, or null when unknown (after an attach). */
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
        float[] kc = java.util.Arrays.copyOfRange(ks[s], done * row, (done + n) * row);
        float[] vc = java.util.Arrays.copyOfRange(vs[s], done * row, (done + n) * row);
        List<String> live = liveOwners(s);
        if (live.isEmpty()) {
          undo(layer, p0);
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
            memberFailed(who.get(i), e.toString());
          } else if (error == null) {
            error = e;
          }
        }
      }
      List<Integer> gone = new ArrayList<>();
      for (int s : new java.util.TreeSet<>(shardOf)) {
        if (written[s] == 0) {
          gone.add(s);
        }
      }
      if (error != null || !gone.isEmpty()) {
        undo(layer, p0);
        throw error != null ? error : lost(gone);
      }
    }
  }

  /** Rolls every shard of {@code layer} back to the global length {@code n}. */
  private void undo(int layer, int n) {
    truncateShards(layer, n);
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

  private void truncateShards(int layer, int n) {
    List<Future<Integer>> fs = new ArrayList<>();
    List<String> who = new ArrayList<>();
    for (int s = 0; s < striping.shards(); s++) {
      for (String u : liveOwners(s)) {
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
        memberFailed(who.get(i), e.toString());
      }
    }
  }

  // ---------------------------------------------------------------- members and failures

  <T> Future<T> submit(String member, java.util.concurrent.Callable<T> task) {
    Member m = member(member);
    if (m == null) {
      return java.util.concurrent.CompletableFuture.failedFuture(
          new ShardUnavailableException("member is not in the cluster: " + member));
    }
    return executor.submitToMember(task, m);
  }

  /** The cluster member with this UUID, or null when it left. */
  Member member(String uuid) {
    for (Member m : hz.getCluster().getMembers()) {
      if (m.getUuid().toString().equals(uuid)) {
        return m;
      }
    }
    return null;
  }

  /** The owners of {@code shard} that are still members and not dropped, primary first. */
  List<String> liveOwners(int shard) {
    List<String> out = new ArrayList<>();
    for (String u : placement.owners().get(shard)) {
      if (!failed.contains(u) && member(u) != null) {
        out.add(u);
      }
    }
    return out;
  }

  /**
   * Drops {@code member} from every shard it held (it failed a call or left), records the new
   * placement in the cluster and schedules the repair.
   */
  void memberFailed(String member, String why) {
    boolean owner = false;
    synchronized (placementLock) {
      if (placement.copiesOn(member) > 0) {
        owner = true;
        failed.add(member);
        placement = placement.without(member);
        persist();
      }
    }
    if (owner) {
      log.accept("member " + member + " dropped from " + name + ": " + why);
      scheduleRepair();
    }
  }

  private void persist() {
    if (!closed) {
      try {
        placements.put(name, placement);
      } catch (RuntimeException e) {
        log.accept("could not record the placement of " + name + ": " + e);
      }
    }
  }

  void countFailover() {
    failovers.incrementAndGet();
  }

  /** The exception for shards without a copy, naming the layers and global ranges. */
  ShardLostException lost(List<Integer> shards) {
    StringBuilder sb = new StringBuilder("positions lost (every copy's member failed) in layers [0, "
        + layout.layers() + "):");
    long total = 0;
    int maxLength = 0;
    for (int l : lengths) {
      maxLength = Math.max(maxLength, l);
    }
    for (int s : shards) {
      List<long[]> ranges = striping.globalRanges(s, striping.shardLength(maxLength, s));
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
        sb.append(", ... every ").append((long) striping.blockTokens() * striping.shards())
            .append(" positions up to ").append(ranges.getLast()[1]);
      }
      sb.append(" (").append(n).append(" positions)");
    }
    return new ShardLostException(sb.toString(), total);
  }

  /** Shards with no live copy now. */
  public List<Integer> lostShards() {
    List<Integer> out = new ArrayList<>();
    for (int s = 0; s < striping.shards(); s++) {
      if (liveOwners(s).isEmpty()) {
        out.add(s);
      }
    }
    return out;
  }

  /** Positions per layer (at the longest layer) with no live copy. */
  public long lostPositions() {
    int maxLength = 0;
    for (int l : lengths) {
      maxLength = Math.max(maxLength, l);
    }
    long n = 0;
    for (int s : lostShards()) {
      n += striping.shardLength(maxLength, s);
    }
    return n;
  }

  // ---------------------------------------------------------------- repair

  private void scheduleRepair() {
    if (!closed) {
      try {
        repairer.execute(this::repair);
      } catch (java.util.concurrent.RejectedExecutionException e) {
        // closing
      }
    }
  }

  /**
   * Brings every shard back to min(replicas, members) copies: for each shard short of copies,
   * picks the live member holding the fewest copies and copies the shard there from a surviving
   * copy, under the lock (calls wait meanwhile). Runs on the repair thread.
   */
  private void repair() {
    if (closed) {
      return;
    }
    lock.lock();
    try {
      for (int s = 0; s < striping.shards() && !closed; s++) {
        while (!closed) {
          List<String> live = liveOwners(s);
          List<String> candidates = new ArrayList<>();
          for (Member m : hz.getCluster().getMembers()) {
            String u = m.getUuid().toString();
            if (!m.isLiteMember() && !failed.contains(u) && !live.contains(u)) {
              candidates.add(u);
            }
          }
          int want = Math.min(placement.replicas(), live.size() + candidates.size());
          if (live.isEmpty() || live.size() >= want || candidates.isEmpty()) {
            break;
          }
          Placement p = placement;
          candidates.sort(java.util.Comparator.comparingInt(p::copiesOn));
          String target = candidates.getFirst();
          if (copyShard(s, live.getFirst(), target)) {
            synchronized (placementLock) {
              placement = placement.plus(s, target);
              persist();
            }
            copiesMade.incrementAndGet();
            log.accept("shard " + s + " of " + name + " copied from " + live.getFirst() + " to "
                + target);
          }
        }
      }
    } catch (RuntimeException e) {
      log.accept("repair of " + name + " failed: " + e);
    } finally {
      lock.unlock();
    }
  }

  /** Copies shard {@code s} from {@code source} to {@code target}; false when either failed. */
  private boolean copyShard(int s, String source, String target) {
    try {
      try {
        Calls.get(submit(target, new ShardTasks.Drop(name, s)));
      } catch (RuntimeException e) {
        if (Calls.isMemberFailure(e)) {
          throw e;
        }
      }
      Calls.get(submit(target, new ShardTasks.Create(name, s, placement.shardLayout())));
      int row = layout.kvHeads() * layout.headDim();
      int perMessage = Math.max(1, MESSAGE_FLOATS / (2 * row));
      for (int l = 0; l < lengths.length; l++) {
        int n = striping.shardLength(lengths[l], s);
        for (int from = 0; from < n; from += perMessage) {
          int c = Math.min(perMessage, n - from);
          float[] kv = Calls.get(submit(source, new ShardTasks.ReadRows(name, s, l, from, c)));
          float[] k = java.util.Arrays.copyOfRange(kv, 0, c * row);
          float[] v = java.util.Arrays.copyOfRange(kv, c * row, 2 * c * row);
          Calls.get(submit(target, new ShardTasks.Append(name, s, l, from, c, k, v)));
        }
      }
      return true;
    } catch (RuntimeException e) {
      if (!Calls.isMemberFailure(e)) {
        throw e;
      }
      // which side failed: a member that is gone is dropped; the loop then picks again
      for (String u : List.of(source, target)) {
        if (member(u) == null) {
          memberFailed(u, e.toString());
        }
      }
      if (member(source) != null && member(target) != null) {
        memberFailed(target, e.toString());
      }
      return false;
    }
  }

  /** Waits until no repair is queued or running (tests, benchmarks). */
  public void awaitRepairs() {
    try {
      repairer.submit(() -> {}).get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (java.util.concurrent.ExecutionException e) {
      throw new IllegalStateException(e.getCause());
    }
  }

  // ---------------------------------------------------------------- lifecycle

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
    repairer.shutdownNow();
    try {
      hz.getCluster().removeMembershipListener(listener);
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
      Map<String, Boolean> seen = new HashMap<>();
      for (Member m : hz.getCluster().getMembers()) {
        if (!m.isLiteMember() && seen.put(m.getUuid().toString(), true) == null) {
          fs.add(executor.submitToMember(new ShardTasks.Drop(name, -1), m));
        }
      }
      for (Future<Integer> f : fs) {
        try {
          Calls.get(f);
        } catch (RuntimeException e) {
          // a member that is gone holds nothing any more
        }
      }
      placements.remove(name);
    } catch (RuntimeException e) {
      log.accept("close of " + name + " could not reach the cluster: " + e);
    } finally {
      detach();
      lock.unlock();
    }
  }

  @Override
  public String toString() {
    return "DistributedKvCache[" + name + ", " + layout + ", shards=" + striping.shards()
        + ", blockTokens=" + striping.blockTokens() + ", replicas=" + placement.replicas() + "]";
  }
}
