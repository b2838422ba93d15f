package hflash.engine;

import hflash.engine.pass.TilePlan;
import hflash.memory.KvCacheLayout;
import hflash.tiles.TileKernels;
import java.util.function.IntConsumer;

/**
 * The schedulers: how one decode call is spread over the worker threads. The call's
 * {@link TilePlan} says how many chunks of work there are and which KV heads and tiles each
 * visits; here chunk c runs on worker c (split-K and serial), or on the two units of pipeline c
 * (worker 2c scores and plans, worker 2c + 1 accumulates p.V through a {@link Handoff}). The
 * partial states are merged in chunk order and the counters summed, so a call's bits depend only
 * on its input, mode, thread count and scheduler.
 */
final class Workers {

  private final KvCacheLayout layout;
  private final TileKernels kernels;
  private final int kvHeads;
  private final int group;
  private final int threads;
  private final Scheduler scheduler;
  private final Call call;
  private final TileLoop[] workers; // one per thread; worker i runs chunk i
  private final Handoff[] handoffs; // (threads / 2) pipeline hand-offs; empty unless PIPELINE
  private final WorkerPool pool; // null when threads == 1
  private final IntConsumer chunkTask = this::runChunk;
  private int workChunks; // chunks of work of the current call (pipelines count once)

  Workers(TileKernels kernels, KvCacheLayout layout, int numHeads, int group, int threads, Scheduler scheduler,
      Call call, WorkerPool pool, DecodeAttention.CancelFlag cancel) {
    this.kernels = kernels;
    this.layout = layout;
    this.kvHeads = layout.kvHeads();
    this.group = group;
    this.threads = threads;
    this.scheduler = scheduler;
    this.call = call;
    this.pool = pool;
    this.workers = new TileLoop[threads];
    for (int i = 0; i < threads; i++) {
      workers[i] = new TileLoop(kernels, layout, numHeads, group, call);
    }
    this.handoffs = new Handoff[scheduler == Scheduler.PIPELINE ? threads / 2 : 0];
    for (int i = 0; i < handoffs.length; i++) {
      handoffs[i] = new Handoff(group, layout.tileTokens(), cancel);
    }
  }

  /** The merged state of the last call. */
  AttentionState state() {
    return workers[0].state;
  }

  /** What actually failed in a pipeline, not the other unit's abort. */
  RuntimeException originalFailure(Handoff.Aborted e) {
    for (Handoff h : handoffs) {
      if (h.failure != null && !(h.failure instanceof Handoff.Aborted)) {
        sneakyThrow(h.failure);
      }
    }
    return e;
  }

  /** Runs one validated call (q already scaled into the call) and sums its counters into the report. */
  void run(int layer, int keys, AttentionConfig config) {
    TilePlan plan = call.plan;
    AttentionReport report = call.report;
    int lanes = scheduler == Scheduler.SERIAL ? 1
        : scheduler == Scheduler.PIPELINE ? handoffs.length : threads;
    plan.plan(keys, config.modeConfig(), config.sinkWindow(), lanes);
    int chunks = plan.chunks();
    workChunks = chunks;
    if (scheduler == Scheduler.PIPELINE) {
      chunks *= 2; // unit 1 of pipeline p runs as worker 2p, its unit 2 as worker 2p + 1
      for (int p = 0; p < workChunks; p++) {
        handoffs[p].reset();
      }
    }
    report.reset();
    call.begin(layer, keys, config.modeConfig());
    try {
      if (pool == null || chunks == 1) {
        runChunk(0);
      } else {
        pool.run(chunkTask, chunks);
      }
    } finally {
      call.end();
    }
    int stride = scheduler == Scheduler.PIPELINE ? 2 : 1;
    for (int i = 0; i < chunks; i++) {
      TileLoop w = workers[i];
      if (i > 0 && i % stride == 0) { // unit 2 workers hold no state of their own
        workers[0].state.merge(w.state);
      }
      report.rescales += w.rescales;
      report.guardFirings += w.guardFirings;
      report.keysScored += w.keysScored;
      report.tilesRead += w.tilesRead;
      report.kvBytesRead += w.kvBytes;
      report.summaryBytesRead += w.summaryBytes;
      report.sampleBytesRead += w.sampleBytes;
      report.fmas += w.fmas;
    }
    report.keysInContext = (long) keys * kvHeads;
  }

  /** Worker {@code c} of the current call: a chunk, or one unit of a pipeline. */
  private void runChunk(int c) {
    TileLoop w = workers[c];
    w.state.reset();
    w.resetCounters();
    w.handoff = null;
    if (scheduler != Scheduler.PIPELINE) {
      work(w, c);
      return;
    }
    Handoff h = handoffs[c / 2];
    try {
      if (c % 2 == 0) {
        w.handoff = h;
        work(w, c / 2);
        h.finish();
      } else {
        h.consume(call, kernels, layout, group, workers[c - 1].state, w);
      }
    } catch (Throwable t) {
      if (h.failure == null) {
        h.failure = t;
      }
      throw t;
    } finally {
      w.handoff = null;
    }
  }

  /** Chunk {@code c} of the plan: its KV heads and tile range, run by the call's mode strategy. */
  private void work(TileLoop w, int c) {
    TilePlan plan = call.plan;
    ModeConfig mode = call.mode();
    int from = plan.from(c), to = plan.to(c);
    for (int kh = plan.firstKvHead(c); kh < kvHeads; kh += plan.kvHeadStep()) {
      w.strategies.run(mode, w, kh, from, to);
    }
  }

  @SuppressWarnings("unchecked")
  private static <T extends Throwable> void sneakyThrow(Throwable t) throws T {
    throw (T) t;
  }
}
