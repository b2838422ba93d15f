package hflash.cluster;

import hflash.engine.DecodeAttention;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;

/**
 * The shard copies one member holds: for each (cache name, shard) an off-heap {@link KvCache} of
 * the shard's local positions and the {@link DecodeAttention} instances that read it. The K/V bytes
 * live here, never in Hazelcast maps. Owns every cache it created and closes them on
 * {@link #close()} (the member's shutdown). Each copy is used by one task at a time (tasks
 * synchronise on it), so concurrent callers cannot interleave an append with a decode.
 */
public final class ShardStore implements AutoCloseable {

  /** Key of the store in the member's user context. */
  public static final String KEY = "hflash.shardStore";

  private final Map<String, Replica> replicas = new ConcurrentHashMap<>();
  private final long memoryBytes; // budget for all copies, Long.MAX_VALUE = none
  private final Consumer<String> log;
  private volatile boolean closed;

  public ShardStore(long memoryBytes, Consumer<String> log) {
    if (memoryBytes <= 0) {
      throw new IllegalArgumentException("memory budget must be positive: " + memoryBytes);
    }
    this.memoryBytes = memoryBytes;
    this.log = log;
  }

  /** One shard copy: the local cache and its attention instances keyed by (numHeads, scale). */
  static final class Replica {
    final String cache;
    final int shard;
    final KvCache kv;
    private final Map<Long, DecodeAttention> attention = new ConcurrentHashMap<>();

    Replica(String cache, int shard, KvCache kv) {
      this.cache = cache;
      this.shard = shard;
      this.kv = kv;
    }

    private hflash.engine.AttentionState state; // the last decode's scratch state

    /** A scratch state for {@code numHeads} heads (the caller holds this copy's monitor). */
    hflash.engine.AttentionState state(int numHeads) {
      if (state == null || state.heads() != numHeads) {
        state = new hflash.engine.AttentionState(numHeads, kv.layout().headDim());
      }
      return state;
    }

    DecodeAttention attention(int numHeads, float scale) {
      long key = ((long) numHeads << 32) | (Float.floatToIntBits(scale) & 0xffffffffL);
      return attention.computeIfAbsent(key, k -> DecodeAttention.create(kv, numHeads, 1, scale));
    }

    void close() {
      attention.values().forEach(DecodeAttention::close);
      kv.close();
    }
  }

  private static String key(String cache, int shard) {
    return cache + "#" + shard;
  }

  /**
   * Creates the copy, or returns the existing one when its layout is the same (a retried create).
   *
   * @throws IllegalStateException the member's memory budget would be exceeded, or a copy with
   *     another layout exists
   */
  public synchronized Replica create(String cache, int shard, KvCacheLayout layout) {
    ensureOpen();
    Replica old = replicas.get(key(cache, shard));
    if (old != null) {
      if (!old.kv.layout().equals(layout)) {
        throw new IllegalStateException("shard " + shard + " of " + cache
            + " exists with another layout: " + old.kv.layout() + " != " + layout);
      }
      return old;
    }
    long need = 2L * layout.segmentBytes();
    long used = bytesReserved();
    if (used + need > memoryBytes || used + need < 0) {
      throw new IllegalStateException("member memory budget exceeded: " + used + " + " + need
          + " > " + memoryBytes + " bytes (shard " + shard + " of " + cache + ")");
    }
    Replica r = new Replica(cache, shard, KvCache.allocate(layout));
    replicas.put(key(cache, shard), r);
    log.accept("holds shard " + shard + " of " + cache + " (" + need + " bytes reserved)");
    return r;
  }

  /** The copy, or a {@link ShardUnavailableException} when this member does not hold it. */
  public Replica get(String cache, int shard) {
    ensureOpen();
    Replica r = replicas.get(key(cache, shard));
    if (r == null) {
      throw new ShardUnavailableException("member holds no shard " + shard + " of " + cache);
    }
    return r;
  }

  /** Drops one copy ({@code shard >= 0}) or every copy of {@code cache}; returns how many. */
  public synchronized int drop(String cache, int shard) {
    int n = 0;
    for (Replica r : new ArrayList<>(replicas.values())) {
      if (r.cache.equals(cache) && (shard < 0 || r.shard == shard)) {
        replicas.remove(key(r.cache, r.shard));
        synchronized (r) {
          r.close();
        }
        log.accept("dropped shard " + r.shard + " of " + cache);
        n++;
      }
    }
    return n;
  }

  /** The copies of {@code cache} held here. */
  public List<Replica> replicasOf(String cache) {
    List<Replica> out = new ArrayList<>();
    for (Replica r : replicas.values()) {
      if (r.cache.equals(cache)) {
        out.add(r);
      }
    }
    return out;
  }

  /** Off-heap bytes reserved by every copy. */
  public long bytesReserved() {
    long sum = 0;
    for (Replica r : replicas.values()) {
      sum += r.kv.bytesReserved();
    }
    return sum;
  }

  public int size() {
    return replicas.size();
  }

  private void ensureOpen() {
    if (closed) {
      throw new ShardUnavailableException("member is shutting down");
    }
  }

  /** Closes every copy. Idempotent. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    for (Replica r : replicas.values()) {
      synchronized (r) {
        r.close();
      }
    }
    replicas.clear();
  }
}
