package hflash.cluster;

import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.core.HazelcastInstanceAware;
import com.hazelcast.internal.nio.BufferObjectDataInput;
import com.hazelcast.internal.nio.BufferObjectDataOutput;
import com.hazelcast.nio.ObjectDataInput;
import com.hazelcast.nio.ObjectDataOutput;
import com.hazelcast.nio.serialization.DataSerializable;
import hflash.engine.AttentionConfig;
import hflash.engine.AttentionMode;
import hflash.engine.AttentionReport;
import hflash.engine.AttentionState;
import hflash.engine.DecodeAttention;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.io.IOException;
import java.util.concurrent.Callable;

/**
 * The requests a coordinator sends to a member (Hazelcast executor tasks). Each runs on the member
 * against its {@link ShardStore}, validating like the local API does: the member's
 * {@link KvCache} and {@link DecodeAttention} check dimensions, positions and finite values with
 * the same messages, so a bad request fails on the member exactly as a local call would.
 * Serialised field by field ({@link DataSerializable}), float arrays as raw floats.
 */
public final class ShardTasks {

  private ShardTasks() {}

  /** CPU time of the current thread (a member's own time without the waits for a core). */
  static final java.lang.management.ThreadMXBean CPU = java.lang.management.ManagementFactory.getThreadMXBean();

  /** Common part: the store lookup and the payload size seen by serialisation. */
  abstract static class Task<T> implements Callable<T>, DataSerializable, HazelcastInstanceAware {
    transient HazelcastInstance hz;
    transient long payloadBytes; // bytes this task serialised to (set by write or read)

    @Override
    public void setHazelcastInstance(HazelcastInstance hz) {
      this.hz = hz;
    }

    ShardStore store() {
      Object s = hz.getUserContext().get(ShardStore.KEY);
      if (!(s instanceof ShardStore store)) {
        throw new ShardUnavailableException("member has no hflash shard store: " + hz.getName());
      }
      return store;
    }

    @Override
    public final void writeData(ObjectDataOutput out) throws IOException {
      int start = position(out);
      write(out);
      payloadBytes = position(out) - start;
    }

    @Override
    public final void readData(ObjectDataInput in) throws IOException {
      int start = position(in);
      read(in);
      payloadBytes = position(in) - start;
    }

    abstract void write(ObjectDataOutput out) throws IOException;

    abstract void read(ObjectDataInput in) throws IOException;
  }

  static int position(ObjectDataOutput out) {
    return out instanceof BufferObjectDataOutput b ? b.position() : 0;
  }

  static int position(ObjectDataInput in) {
    return in instanceof BufferObjectDataInput b ? b.position() : 0;
  }

  /** A task about one shard copy of one cache: those two fields are written first. */
  abstract static class ShardTask<T> extends Task<T> {
    String cache;
    int shard;

    ShardTask() {}

    ShardTask(String cache, int shard) {
      this.cache = cache;
      this.shard = shard;
    }

    @Override
    final void write(ObjectDataOutput out) throws IOException {
      out.writeString(cache);
      out.writeInt(shard);
      writeMore(out);
    }

    @Override
    final void read(ObjectDataInput in) throws IOException {
      cache = in.readString();
      shard = in.readInt();
      readMore(in);
    }

    void writeMore(ObjectDataOutput out) throws IOException {}

    void readMore(ObjectDataInput in) throws IOException {}
  }

  /** An empty round trip: measures the RPC cost. */
  public static final class Ping extends Task<Integer> {
    public Ping() {}

    @Override
    public Integer call() {
      return 0;
    }

    @Override
    void write(ObjectDataOutput out) {}

    @Override
    void read(ObjectDataInput in) {}
  }

  /** Creates a shard copy (idempotent for the same layout). */
  public static final class Create extends ShardTask<Long> {
    int layers, kvHeads, headDim, capacity, tileTokens;
    String dtype;

    public Create() {}

    Create(String cache, int shard, KvCacheLayout l) {
      super(cache, shard);
      this.layers = l.layers();
      this.kvHeads = l.kvHeads();
      this.headDim = l.headDim();
      this.capacity = l.capacity();
      this.tileTokens = l.tileTokens();
      this.dtype = l.dtype().id();
    }

    @Override
    public Long call() {
      KvCacheLayout l = new KvCacheLayout(layers, kvHeads, headDim, capacity, DType.parse(dtype), tileTokens);
      return store().create(cache, shard, l).kv.bytesReserved();
    }

    @Override
    void writeMore(ObjectDataOutput out) throws IOException {
      out.writeInt(layers);
      out.writeInt(kvHeads);
      out.writeInt(headDim);
      out.writeInt(capacity);
      out.writeInt(tileTokens);
      out.writeString(dtype);
    }

    @Override
    void readMore(ObjectDataInput in) throws IOException {
      layers = in.readInt();
      kvHeads = in.readInt();
      headDim = in.readInt();
      capacity = in.readInt();
      tileTokens = in.readInt();
      dtype = in.readString();
    }
  }

  /**
   * Appends {@code count} rows at local position {@code start} of one layer of a shard copy. A
   * retry of an append the copy already holds ({@code length == start + count}) is a no-op, so a
   * coordinator may resend after a lost reply; any other {@code start != length} fails.
   */
  public static final class Append extends ShardTask<Integer> {
    int layer, start, count;
    float[] k, v; // (count, kvHeads, headDim)

    public Append() {}

    Append(String cache, int shard, int layer, int start, int count, float[] k, float[] v) {
      super(cache, shard);
      this.layer = layer;
      this.start = start;
      this.count = count;
      this.k = k;
      this.v = v;
    }

    @Override
    public Integer call() {
      ShardStore.Replica r = store().get(cache, shard);
      synchronized (r) {
        int length = r.kv.length(layer);
        if (length == start + count && count > 0) {
          return length; // already applied
        }
        if (length != start) {
          throw new IllegalStateException("append position differs from shard length: " + start
              + "!=" + length + " (shard " + shard + " of " + cache + ", layer=" + layer + ")");
        }
        r.kv.append(layer, count, k, v);
        return r.kv.length(layer);
      }
    }

    @Override
    void writeMore(ObjectDataOutput out) throws IOException {
      out.writeInt(layer);
      out.writeInt(start);
      out.writeInt(count);
      out.writeFloatArray(k);
      out.writeFloatArray(v);
    }

    @Override
    void readMore(ObjectDataInput in) throws IOException {
      layer = in.readInt();
      start = in.readInt();
      count = in.readInt();
      k = in.readFloatArray();
      v = in.readFloatArray();
    }
  }

  /** Truncates a shard copy: one layer ({@code layer >= 0}) or all, to {@code length}. */
  public static final class Truncate extends ShardTask<Integer> {
    int layer, length;

    public Truncate() {}

    Truncate(String cache, int shard, int layer, int length) {
      super(cache, shard);
      this.layer = layer;
      this.length = length;
    }

    @Override
    public Integer call() {
      ShardStore.Replica r = store().get(cache, shard);
      synchronized (r) {
        if (layer < 0) {
          r.kv.truncate(length);
        } else {
          r.kv.truncate(layer, length);
        }
      }
      return length;
    }

    @Override
    void writeMore(ObjectDataOutput out) throws IOException {
      out.writeInt(layer);
      out.writeInt(length);
    }

    @Override
    void readMore(ObjectDataInput in) throws IOException {
      layer = in.readInt();
      length = in.readInt();
    }
  }

  /** Drops one copy ({@code shard >= 0}) or every copy of a cache on the member. */
  public static final class Drop extends ShardTask<Integer> {

    public Drop() {}

    Drop(String cache, int shard) {
      super(cache, shard);
    }

    @Override
    public Integer call() {
      return store().drop(cache, shard);
    }

  }

  /** The per-layer lengths of one shard copy. */
  public static final class Lengths extends ShardTask<int[]> {

    public Lengths() {}

    Lengths(String cache, int shard) {
      super(cache, shard);
    }

    @Override
    public int[] call() {
      ShardStore.Replica r = store().get(cache, shard);
      synchronized (r) {
        return lengths(r.kv);
      }
    }
  }

  /** The per-layer lengths of {@code kv}. */
  static int[] lengths(KvCache kv) {
    int[] out = new int[kv.layout().layers()];
    for (int l = 0; l < out.length; l++) {
      out[l] = kv.length(l);
    }
    return out;
  }

  /**
   * The packed top-level summary of one shard copy ({@link ShardSummaries#pack}): per layer and
   * KV head the box of the stored keys and the largest stored value-row norm, for a coordinator
   * that attached and must bound the shards as the one that appended them did.
   */
  public static final class Summary extends ShardTask<float[]> {

    public Summary() {}

    Summary(String cache, int shard) {
      super(cache, shard);
    }

    @Override
    public float[] call() {
      ShardStore.Replica r = store().get(cache, shard);
      synchronized (r) {
        return ShardSummaries.pack(r.kv.layout(), lengths(r.kv), r.kv::key, r.kv::value);
      }
    }
  }

  /**
   * Reads local rows {@code [from, from + count)} of one layer back as floats (exact: every
   * dtype value is a float), K rows then V rows, each (count, kvHeads, headDim); used to copy a
   * shard to a new member.
   */
  public static final class ReadRows extends ShardTask<float[]> {
    int layer, from, count;

    public ReadRows() {}

    ReadRows(String cache, int shard, int layer, int from, int count) {
      super(cache, shard);
      this.layer = layer;
      this.from = from;
      this.count = count;
    }

    @Override
    public float[] call() {
      ShardStore.Replica r = store().get(cache, shard);
      synchronized (r) {
        KvCache kv = r.kv;
        int length = kv.length(layer);
        if (from < 0 || count < 0 || from + count > length) {
          throw new IndexOutOfBoundsException("rows out of range [0, " + length + "): " + from
              + "+" + count + " (layer=" + layer + ")");
        }
        int heads = kv.layout().kvHeads();
        int d = kv.layout().headDim();
        int row = heads * d;
        float[] out = new float[2 * count * row];
        for (int i = 0; i < count; i++) {
          for (int h = 0; h < heads; h++) {
            for (int c = 0; c < d; c++) {
              out[i * row + h * d + c] = kv.key(layer, h, from + i, c);
              out[(count + i) * row + h * d + c] = kv.value(layer, h, from + i, c);
            }
          }
        }
        return out;
      }
    }

    @Override
    void writeMore(ObjectDataOutput out) throws IOException {
      out.writeInt(layer);
      out.writeInt(from);
      out.writeInt(count);
    }

    @Override
    void readMore(ObjectDataInput in) throws IOException {
      layer = in.readInt();
      from = in.readInt();
      count = in.readInt();
    }
  }

  /**
   * A decode call's request: for each member asked, its part (the shards it serves, each shard's
   * local key count and mode, {@code configs[i]}: budgeted splits its budget over the shards), and
   * the query shared by all. The same request goes to every member of the call
   * ({@link ShardClient#submitToAll}: Hazelcast serialises it once, not once per member, which
   * was the largest part of the coordinator's CPU time); each member runs its own part: for each
   * of its shards, the online-softmax state over the shard's first {@code keys[i]} local
   * positions.
   */
  public static final class Decode extends Task<DecodeReply> {

    /** One member's part; {@code member} null: whichever member runs the request. */
    record Part(String member, int[] shards, int[] keys, AttentionConfig[] configs) {}

    String cache;
    int layer, numHeads;
    float scale;
    java.util.List<Part> parts;
    float[] q; // (numHeads, headDim)

    public Decode() {}

    Decode(String cache, int layer, int numHeads, float scale, java.util.List<Part> parts, float[] q) {
      this.cache = cache;
      this.layer = layer;
      this.numHeads = numHeads;
      this.scale = scale;
      this.parts = parts;
      this.q = q;
    }

    /** A request with one part, for whichever member runs it. */
    Decode(String cache, int layer, int numHeads, float scale, int[] shards, int[] keys,
        AttentionConfig[] configs, float[] q) {
      this(cache, layer, numHeads, scale, java.util.List.of(new Part(null, shards, keys, configs)), q);
    }

    @Override
    public DecodeReply call() {
      long t0 = System.nanoTime();
      long cpu0 = CPU.getCurrentThreadCpuTime();
      ShardStore store = store();
      String self = hz.getCluster().getLocalMember().getUuid().toString();
      Part part = null;
      for (Part p : parts) {
        if (p.member() == null || p.member().equals(self)) {
          part = p;
          break;
        }
      }
      if (part == null) {
        throw new ShardUnavailableException("decode request has no part for member " + self);
      }
      int[] shards = part.shards(), keys = part.keys();
      AttentionConfig[] configs = part.configs();
      int n = shards.length;
      if (keys.length != n || configs.length != n) {
        throw new IllegalArgumentException("keys and configs lengths differ from shards: "
            + keys.length + ", " + configs.length + " != " + n);
      }
      DecodeReply reply = null;
      for (int i = 0; i < n; i++) {
        ShardStore.Replica r = store.get(cache, shards[i]);
        synchronized (r) {
          DecodeAttention a = r.attention(numHeads, scale);
          if (reply == null) {
            reply = new DecodeReply(n, numHeads, r.kv.layout().headDim(), !configs[0].modeConfig().isExact());
          }
          AttentionState state = r.state(numHeads); // reused: one call at a time per copy
          a.decodeState(layer, q, keys[i], configs[i], state);
          reply.put(i, state, a.report());
        }
      }
      if (reply == null) {
        throw new IllegalArgumentException("decode request names no shard");
      }
      reply.startNanos = t0;
      reply.memberNanos = System.nanoTime() - t0;
      reply.memberCpuNanos = CPU.getCurrentThreadCpuTime() - cpu0;
      return reply;
    }

    @Override
    void write(ObjectDataOutput out) throws IOException {
      out.writeString(cache);
      out.writeInt(layer);
      out.writeInt(numHeads);
      out.writeFloat(scale);
      out.writeInt(parts.size());
      for (Part p : parts) {
        out.writeString(p.member());
        out.writeIntArray(p.shards());
        out.writeIntArray(p.keys());
        for (AttentionConfig c : p.configs()) {
          writeConfig(out, c);
        }
      }
      out.writeFloatArray(q);
    }

    @Override
    void read(ObjectDataInput in) throws IOException {
      cache = in.readString();
      layer = in.readInt();
      numHeads = in.readInt();
      scale = in.readFloat();
      int count = in.readInt();
      parts = new java.util.ArrayList<>(count);
      for (int j = 0; j < count; j++) {
        String member = in.readString();
        int[] shards = in.readIntArray();
        int[] keys = in.readIntArray();
        AttentionConfig[] configs = new AttentionConfig[shards.length];
        for (int i = 0; i < configs.length; i++) {
          configs[i] = readConfig(in);
        }
        parts.add(new Part(member, shards, keys, configs));
      }
      q = in.readFloatArray();
    }
  }

  static void writeConfig(ObjectDataOutput out, AttentionConfig c) throws IOException {
    out.writeString(c.mode().name());
    out.writeDouble(c.epsilon());
    out.writeInt(c.budgetTiles());
    out.writeDouble(c.budgetShare());
    out.writeLong(c.budgetBytes());
    out.writeInt(c.delta());
    out.writeInt(c.radius());
    out.writeFloat(c.margin());
    out.writeFloat(c.guard());
    out.writeInt(c.sinks());
    out.writeInt(c.window());
    out.writeDouble(c.maxError());
    out.writeDouble(c.confidence());
    out.writeLong(c.seed());
  }

  static AttentionConfig readConfig(ObjectDataInput in) throws IOException {
    AttentionMode mode = AttentionMode.valueOf(in.readString());
    return new AttentionConfig(mode, in.readDouble(), in.readInt(), in.readDouble(), in.readLong(),
        in.readInt(), in.readInt(), in.readFloat(), in.readFloat(), in.readInt(), in.readInt(),
        in.readDouble(), in.readDouble(), in.readLong());
  }

  /** What a member sends back for a {@link Decode}: packed states and per-shard counters. */
  public static final class DecodeReply implements DataSerializable {
    float[] states; // (shards, numHeads * (headDim + 2)), AttentionState.writeTo packing
    long[] counters; // (shards, COUNTERS)
    double[] rho, errorBound; // (shards, numHeads), bounded modes only (else empty)
    long startNanos; // the member's System.nanoTime() when the task started (same host: comparable)
    long memberNanos;
    long memberCpuNanos; // CPU time of the task's thread: memberNanos minus waiting for a core
    transient long payloadBytes;
    transient int stride; // floats per packed state

    static final int COUNTERS = 6; // kvBytes, summaryBytes, sampleBytes, keysScored, tilesRead, fmas

    public DecodeReply() {}

    DecodeReply(int n, int numHeads, int headDim, boolean bounds) {
      stride = numHeads * (headDim + 2);
      states = new float[n * stride];
      counters = new long[n * COUNTERS];
      rho = new double[bounds ? n * numHeads : 0];
      errorBound = new double[bounds ? n * numHeads : 0];
    }

    void put(int i, AttentionState s, AttentionReport r) {
      s.writeTo(states, i * stride);
      counters[i * COUNTERS] = r.kvBytesRead();
      counters[i * COUNTERS + 1] = r.summaryBytesRead();
      counters[i * COUNTERS + 2] = r.sampleBytesRead();
      counters[i * COUNTERS + 3] = r.keysScored();
      counters[i * COUNTERS + 4] = r.tilesRead();
      counters[i * COUNTERS + 5] = r.fmas();
      if (rho.length > 0) {
        int heads = s.heads();
        for (int h = 0; h < heads; h++) {
          rho[i * heads + h] = r.rho(h);
          errorBound[i * heads + h] = r.errorBound(h);
        }
      }
    }

    @Override
    public void writeData(ObjectDataOutput out) throws IOException {
      int start = position(out);
      out.writeFloatArray(states);
      out.writeLongArray(counters);
      out.writeDoubleArray(rho);
      out.writeDoubleArray(errorBound);
      out.writeLong(startNanos);
      out.writeLong(memberNanos);
      out.writeLong(memberCpuNanos);
      payloadBytes = position(out) - start;
    }

    @Override
    public void readData(ObjectDataInput in) throws IOException {
      int start = position(in);
      states = in.readFloatArray();
      counters = in.readLongArray();
      rho = in.readDoubleArray();
      errorBound = in.readDoubleArray();
      startNanos = in.readLong();
      memberNanos = in.readLong();
      memberCpuNanos = in.readLong();
      payloadBytes = position(in) - start;
    }
  }
}
