package hflash.engine;

import hflash.memory.HadamardRotation;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.memory.PagePool;
import hflash.tiles.TileKernels;
import hflash.tiles.TileKernelsProvider;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntConsumer;

/**
 * One decode step of B sequences of a {@link PagePool} in one call: {@code q} and {@code out} are
 * (B, numHeads, headDim), sequence b attends to its own {@code length(layer)} keys.
 *
 * <p><b>Exact mode: a cascade</b> (FlashInfer's cascade attention, Hydragen). The sequences' page
 * tables are compared: a page that several sequences of the batch hold (with the same stored keys)
 * is read once and attended by all their query rows together, {@code (m * g) x keys} on the
 * prefill micro-kernels ({@link CascadeLane}); each page only one sequence holds is attended by its
 * {@code g} rows on the decode kernels. Every page gives each of its sequences a partial
 * online-softmax state; the partials merge exactly ({@link AttentionState#merge}'s rule), so the
 * output equals per-sequence decode up to float32 rounding (the merge points differ; the tests hold
 * it within {@code 1e-5} relative, measured about 1e-7). B sequences sharing a P-key prefix read
 * that prefix once instead of B times per step.
 *
 * <p><b>Other modes</b> (and exact with sinks + window) run one {@link DecodeAttention} per
 * sequence (single-threaded instances kept per sequence), the sequences spread over the threads.
 *
 * <p><b>Threads.</b> {@link Scheduler#SERIAL} runs everything on the caller; {@link Scheduler#SPLITK}
 * cuts the cascade's work units (page x KV head, in page-table order) into {@code threads}
 * contiguous runs of about equal multiply-adds, each thread keeping its own partial state per
 * sequence, merged in thread order at the end: the same bits for the same batch, pool contents and
 * thread count. {@link Scheduler#PIPELINE} (at least 2 threads) cuts them into {@code threads / 2}
 * runs, each run by a pipeline of two threads: unit 1 scores a tile for all the unit's rows and
 * folds the scores into the running max and sum, unit 2 rescales the accumulators and adds
 * {@code P . V} and merges the rows into the sequences' states ({@link CascadeHandoff}); one
 * pipeline gives the serial cascade's bits.
 *
 * <p>Every sequence is {@link hflash.memory.internal.KvCacheInternals#pin pinned} for the call: closing one from another thread
 * frees none of its pages until the call ends. One call at a time per instance.
 */
public final class BatchedDecode implements AutoCloseable {

  private final PagePool pool;
  private final KvCacheLayout layout;
  private final int numHeads;
  private final int d;
  private final int kvHeads;
  private final int threads;
  private final float scale;
  private final TileKernels kernels;
  private final Scheduler scheduler;
  private final WorkerPool workers; // null when threads == 1
  private final CascadeLane[] lanes; // pipeline: lane 2p is unit 1 (K side) of pipeline p, lane 2p + 1 its unit 2
  private final CascadeHandoff[] handoffs; // (pipelines); empty unless PIPELINE
  private final AtomicBoolean busy = new AtomicBoolean();
  private final DecodeAttention.CancelFlag cancel = new DecodeAttention.CancelFlag();
  // other modes: one instance per sequence (KvCache keeps identity equality); concurrent: cancel() reads it
  private final Map<KvCache, DecodeAttention> single = new java.util.concurrent.ConcurrentHashMap<>();
  private final BatchReport report = new BatchReport();
  private final IntConsumer laneTask = this::runLane;
  private final IntConsumer pipeTask = this::runPipe;
  private volatile boolean closed;

  // the current call, read by the lanes (published by the pool's hand-over)
  private KvCache[] seqs;
  private float[] qs; // (B, numHeads, d) scaled, rotated
  private int layer;
  private List<Unit> units;
  private int[] laneFrom; // (lanes + 1) unit ranges
  private float[] q;
  private float[] out;
  private AttentionConfig config;
  private int laneCount; // work runs: lanes, or pipelines (each two lanes)
  private int[] lengths = new int[0]; // (B) keys of each sequence, read once at the start of the call
  private java.lang.foreign.MemorySegment k; // the pool's K and V, read once at the start of the call
  private java.lang.foreign.MemorySegment v;

  private BatchedDecode(PagePool pool, int numHeads, int threads, float scale, Scheduler scheduler,
      TileKernels kernels) {
    this.pool = Objects.requireNonNull(pool, "pool");
    this.layout = pool.layout();
    this.kvHeads = layout.kvHeads();
    this.d = layout.headDim();
    if (numHeads <= 0 || numHeads % kvHeads != 0) {
      throw new IllegalArgumentException("numHeads must be a positive multiple of numKvHeads: " + numHeads + " % "
          + kvHeads);
    }
    if (threads < 1 || threads > 1024) {
      throw new IllegalArgumentException("threads out of range [1, 1024]: " + threads);
    }
    if (!Float.isFinite(scale) || scale <= 0f) {
      throw new IllegalArgumentException("scale must be finite and positive: " + scale);
    }
    if (Objects.requireNonNull(scheduler, "scheduler") == Scheduler.PIPELINE && threads < 2) {
      throw new IllegalArgumentException("the pipeline scheduler needs at least 2 threads: " + threads);
    }
    this.numHeads = numHeads;
    this.threads = threads;
    this.scale = scale;
    this.scheduler = scheduler;
    this.kernels = Objects.requireNonNull(kernels, "kernels");
    int n = scheduler == Scheduler.SERIAL ? 1 : scheduler == Scheduler.PIPELINE ? threads / 2 * 2 : threads;
    this.lanes = new CascadeLane[n];
    for (int i = 0; i < n; i++) {
      lanes[i] = new CascadeLane(kernels, layout, numHeads);
    }
    this.handoffs = new CascadeHandoff[scheduler == Scheduler.PIPELINE ? n / 2 : 0];
    for (int i = 0; i < handoffs.length; i++) {
      handoffs[i] = new CascadeHandoff(lanes[0].maxRows(), lanes[0].scoreStride(), cancel);
    }
    this.workers = n > 1 ? new WorkerPool(n, "hflash-batch") : null;
  }

  /** Split-K over {@code threads} threads, scale {@code 1/sqrt(headDim)}, this JVM's kernels. */
  public static BatchedDecode create(PagePool pool, int numHeads, int threads) {
    return create(pool, numHeads, threads, (float) (1.0 / Math.sqrt(pool.layout().headDim())), Scheduler.SPLITK);
  }

  /** With the given scale and scheduler (serial or splitk). */
  public static BatchedDecode create(PagePool pool, int numHeads, int threads, float scale, Scheduler scheduler) {
    return new BatchedDecode(pool, numHeads, threads, scale, scheduler, TileKernelsProvider.get());
  }

  /** With explicit kernels (tests, benchmarks). */
  public static BatchedDecode create(PagePool pool, int numHeads, int threads, float scale, Scheduler scheduler,
      TileKernels kernels) {
    return new BatchedDecode(pool, numHeads, threads, scale, scheduler, kernels);
  }

  /** What the last call read and did; overwritten by every call. */
  public BatchReport report() {
    return report;
  }

  public int threads() {
    return threads;
  }

  public Scheduler scheduler() {
    return scheduler;
  }

  /**
   * Attends query row b of {@code q} to every stored key of {@code layer} of {@code sequences[b]},
   * in the mode of {@code config}, into row b of {@code out}.
   *
   * @param sequences (B) sequences of this instance's pool, B &ge; 1 (a sequence may appear twice)
   * @param q (B, numHeads, headDim) row-major
   * @param out (B, numHeads, headDim) row-major
   * @throws IllegalArgumentException wrong lengths, a non-finite query value, a sequence of another pool
   * @throws IllegalStateException a closed sequence or instance, or a concurrent call
   */
  public void decode(int layer, KvCache[] sequences, float[] q, float[] out, AttentionConfig config) {
    Objects.requireNonNull(config, "config");
    validate(layer, sequences, q, out);
    if (!busy.compareAndSet(false, true)) {
      throw new IllegalStateException("concurrent calls on one BatchedDecode: " + this);
    }
    cancel.cancelled = false;
    int pinned = 0;
    try {
      for (KvCache s : sequences) {
        hflash.memory.internal.KvCacheInternals.pin(s);
        pinned++;
      }
      this.seqs = sequences;
      this.layer = layer;
      this.q = q;
      this.out = out;
      this.config = config;
      report.reset(sequences.length, numHeads);
      if (config.mode() == AttentionMode.EXACT && !config.windowed()) {
        cascade();
      } else {
        perSequence();
      }
    } finally {
      for (int i = 0; i < pinned; i++) {
        hflash.memory.internal.KvCacheInternals.unpin(sequences[i]);
      }
      this.seqs = null;
      this.q = this.out = this.qs = null;
      this.units = null;
      this.k = this.v = null;
      busy.set(false);
    }
  }

  private void validate(int layer, KvCache[] sequences, float[] q, float[] out) {
    if (closed) {
      throw new IllegalStateException("BatchedDecode is closed: " + this);
    }
    Objects.requireNonNull(sequences, "sequences");
    Objects.requireNonNull(q, "q");
    Objects.requireNonNull(out, "out");
    Objects.checkIndex(layer, layout.layers());
    if (sequences.length == 0) {
      throw new IllegalArgumentException("sequences must not be empty");
    }
    for (int b = 0; b < sequences.length; b++) {
      KvCache s = Objects.requireNonNull(sequences[b], "sequences[" + b + "]");
      if (s.pool() != pool) {
        throw new IllegalArgumentException("sequences[" + b + "] is not a sequence of this pool: " + s);
      }
    }
    long expected = (long) sequences.length * numHeads * d;
    if (q.length != expected || out.length != expected) {
      throw new IllegalArgumentException("q and out length must be B*numHeads*headDim: " + q.length + ", "
          + out.length + " != " + expected);
    }
    for (int i = 0; i < q.length; i++) {
      if (!Float.isFinite(q[i])) {
        throw new IllegalArgumentException("non-finite value at q[" + i + "]=" + q[i]);
      }
    }
  }

  // ----------------------------------------------------------------------------- cascade

  /** A page (table entry {@code entry}, first {@code keys} keys) and the sequences reading it. */
  private record Unit(int entry, int keys, int[] members, int count, KvCache owner, long cost) {}

  private void cascade() {
    int batch = seqs.length;
    int pt = pool.pageTokens();
    Map<Long, int[]> index = new HashMap<>(); // (page id, keys) -> {unit}
    List<int[]> memberLists = new ArrayList<>();
    List<int[]> heads = new ArrayList<>(); // per unit: entry, keys, count
    List<KvCache> owners = new ArrayList<>();
    long separateBytes = 0;
    if (lengths.length < batch) {
      lengths = new int[batch];
    }
    k = seqs[0].keys();
    v = seqs[0].values();
    for (int b = 0; b < batch; b++) {
      int n = seqs[b].length(layer);
      lengths[b] = n;
      int[] ids = seqs[b].pageIds();
      separateBytes += 2L * n * kvHeads * layout.rowBytes();
      for (int e = 0; e * pt < n; e++) {
        int keys = Math.min(pt, n - e * pt);
        long key = ((long) ids[e] << 32) | keys;
        int[] u = index.get(key);
        if (u == null) {
          u = new int[] {memberLists.size()};
          index.put(key, u);
          memberLists.add(new int[batch]);
          heads.add(new int[] {e, keys, 0});
          owners.add(seqs[b]);
        }
        int[] h = heads.get(u[0]);
        memberLists.get(u[0])[h[2]++] = b;
      }
    }
    List<Unit> list = new ArrayList<>(heads.size());
    int shared = 0;
    for (int i = 0; i < heads.size(); i++) {
      int[] h = heads.get(i);
      shared += h[2] > 1 ? 1 : 0;
      // multiply-adds of the unit, plus its bytes priced as a few multiply-adds each: a private
      // page is bandwidth-bound, so its weight is not its arithmetic alone
      list.add(new Unit(h[0], h[1], memberLists.get(i), h[2], owners.get(i), (long) h[1] * (h[2] + 2)));
    }
    units = list;
    scaleQueries(batch);
    boolean piped = handoffs.length > 0;
    laneCount = piped ? handoffs.length : lanes.length;
    splitUnits();
    for (CascadeLane lane : lanes) {
      lane.reset(batch);
    }
    if (piped) {
      for (CascadeHandoff h : handoffs) {
        h.reset();
      }
      try {
        workers.run(pipeTask, lanes.length);
      } catch (CascadeHandoff.Aborted e) { // rethrow what actually failed, not the other unit's abort
        for (CascadeHandoff h : handoffs) {
          if (h.failure != null && !(h.failure instanceof CascadeHandoff.Aborted)) {
            sneakyThrow(h.failure);
          }
        }
        throw e;
      }
    } else if (workers == null || laneCount == 1) {
      runLane(0);
    } else {
      workers.run(laneTask, laneCount);
    }
    finishCascade(batch, shared, separateBytes);
  }

  /** Contiguous runs of (unit, KV head) work items of about equal cost, one per lane. */
  private void splitUnits() {
    long total = 0;
    for (Unit u : units) {
      total += u.cost() * kvHeads;
    }
    int items = units.size() * kvHeads;
    laneFrom = new int[laneCount + 1];
    long acc = 0;
    int lane = 1;
    for (int i = 0; i < items && lane < laneCount; i++) {
      acc += units.get(i / kvHeads).cost();
      while (lane < laneCount && acc * laneCount >= total * lane) {
        laneFrom[lane++] = i + 1;
      }
    }
    while (lane <= laneCount) {
      laneFrom[lane++] = items;
    }
  }

  /** Lane c of a pipelined call: unit 1 (even c) runs pipeline c / 2's work run, unit 2 consumes it. */
  private void runPipe(int c) {
    CascadeHandoff h = handoffs[c / 2];
    try {
      if (c % 2 == 0) {
        lanes[c].handoff = h;
        runLane(c / 2, lanes[c]);
        h.finish();
      } else {
        lanes[c].consume(h, v);
      }
    } catch (Throwable t) {
      if (h.failure == null) {
        h.failure = t;
      }
      throw t;
    } finally {
      lanes[c].handoff = null;
    }
  }

  private void runLane(int c) {
    runLane(c, lanes[c]);
  }

  /** Work run c (its unit x KV head items) on {@code lane}. */
  private void runLane(int c, CascadeLane lane) {
    for (int i = laneFrom[c]; i < laneFrom[c + 1]; i++) {
      Unit u = units.get(i / kvHeads);
      int tilesPerPage = pool.pageTokens() / layout.tileTokens();
      lane.unit(u.owner(), k, v, layer, i % kvHeads, u.entry() * tilesPerPage, u.keys(), u.members(), u.count(),
          qs, cancel);
    }
  }

  private void scaleQueries(int batch) {
    qs = new float[batch * numHeads * d];
    HadamardRotation rotation = seqs[0].rotation();
    for (int i = 0; i < qs.length; i++) {
      qs[i] = q[i] * scale;
    }
    if (rotation != null) { // the pages hold R k: score R q, as decode does
      for (int r = 0; r < batch * numHeads; r++) {
        rotation.rotate(qs, r * d);
      }
    }
  }

  private void finishCascade(int batch, int shared, long separateBytes) {
    HadamardRotation rotation = seqs[0].rotation();
    // a pipeline's states are on its unit 2 (odd lanes), its counters on unit 1 (even lanes)
    int first = handoffs.length > 0 ? 1 : 0;
    int stride = handoffs.length > 0 ? 2 : 1;
    int used = handoffs.length > 0 ? lanes.length : laneCount;
    for (int b = 0; b < batch; b++) {
      AttentionState st = lanes[first].states[b];
      AttentionReport r = report.perSequence[b];
      for (int c = 0; c < used; c++) {
        CascadeLane lane = lanes[c];
        if (c > first && (c - first) % stride == 0) {
          st.merge(lane.states[b]);
        }
        r.keysScored += lane.keysScored[b];
        r.tilesRead += lane.tiles[b];
        r.fmas += lane.fmas[b];
        r.kvBytesRead += Math.round(lane.bytesShare[b]);
      }
      r.keysInContext = (long) lengths[b] * kvHeads;
      st.finish(out, b * numHeads * d);
      if (rotation != null) {
        for (int h = 0; h < numHeads; h++) {
          rotation.rotateBack(out, (b * numHeads + h) * d);
        }
      }
    }
    for (CascadeLane lane : lanes) {
      report.kvBytesRead += lane.kvBytes;
      report.rescales += lane.rescales;
    }
    for (AttentionReport r : report.perSequence) {
      report.fmas += r.fmas;
      report.keysScored += r.keysScored;
    }
    report.pagesShared = shared;
    report.pagesRead = units.size();
    report.separateKvBytes = separateBytes;
    report.cascade = true;
  }

  // ------------------------------------------------------------------------ other modes

  private void perSequence() {
    for (Iterator<Map.Entry<KvCache, DecodeAttention>> it = single.entrySet().iterator(); it.hasNext(); ) {
      Map.Entry<KvCache, DecodeAttention> e = it.next();
      if (e.getKey().isClosed()) { // a closed sequence's instance goes with it
        e.getValue().close();
        it.remove();
      }
    }
    for (KvCache s : seqs) {
      single.computeIfAbsent(s, c -> DecodeAttention.create(c, numHeads, 1, scale, kernels));
    }
    laneCount = Math.min(lanes.length, seqs.length);
    if (workers == null || laneCount == 1) {
      perSequenceLane(0);
    } else {
      workers.run(this::perSequenceLane, laneCount);
    }
    for (int b = 0; b < seqs.length; b++) {
      AttentionReport r = report.perSequence[b];
      report.kvBytesRead += r.kvBytesRead + r.summaryBytesRead + r.sampleBytesRead;
      report.separateKvBytes += r.kvBytesRead + r.summaryBytesRead + r.sampleBytesRead;
      report.fmas += r.fmas;
      report.keysScored += r.keysScored;
    }
  }

  /** Lane c: sequences c, c + lanes, ... one decode call each (a sequence appearing twice runs twice). */
  private void perSequenceLane(int c) {
    int row = numHeads * d;
    float[] qRow = new float[row];
    float[] outRow = new float[row];
    for (int b = c; b < seqs.length; b += laneCount) {
      DecodeAttention a = single.get(seqs[b]);
      System.arraycopy(q, b * row, qRow, 0, row);
      synchronized (a) { // the same sequence twice in a batch may land on two lanes
        a.decode(layer, qRow, outRow, seqs[b].length(layer), config);
        report.perSequence[b].copyFrom(a.report());
      }
      System.arraycopy(outRow, 0, out, b * row, row);
    }
  }

  /** Cancels the running call from any thread (the cascade stops at its next tile). */
  public void cancel() {
    cancel.cancelled = true;
    for (DecodeAttention a : single.values()) {
      a.cancel();
    }
  }

  /** Stops the threads and the per-sequence instances. Idempotent. Closes no sequence. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    if (workers != null) {
      workers.close();
    }
    for (DecodeAttention a : single.values()) {
      a.close();
    }
    single.clear();
  }

  @SuppressWarnings("unchecked")
  private static <T extends Throwable> void sneakyThrow(Throwable t) throws T {
    throw (T) t;
  }

  @Override
  public String toString() {
    return "BatchedDecode[numHeads=" + numHeads + ", kvHeads=" + kvHeads + ", headDim=" + d + ", threads="
        + threads + ", scheduler=" + scheduler.id() + ", kernels=" + kernels.name() + "]";
  }
}
