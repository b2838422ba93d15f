package hflash.engine;

import hflash.engine.pass.TilePlan;
import hflash.memory.HadamardRotation;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.tiles.TileKernels;
import hflash.tiles.TileKernelsProvider;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Decode attention over a {@link KvCache}: one new query token per head attends to the cached keys
 * and values of one layer.
 *
 * <pre>
 * s_j = scale * (q_h . k_j)     out_h = sum_j softmax(s)_j v_j      (scale defaults to 1/sqrt(d))
 * </pre>
 *
 * Query head {@code h} reads KV head {@code h / g} with {@code g = numHeads / kvHeads} (GQA); the
 * {@code g} heads of a group are scored and accumulated together so each K and V tile is read once
 * per group. The exact mode is an online softmax over tiles of {@code tileTokens} keys (see
 * {@link AttentionState}); the other modes ({@link AttentionConfig}: sampled, certified,
 * budgeted, and exact with sinks + window) are described in docs/HIERARCHICAL.md. With
 * {@code threads > 1} the {@link Scheduler} spreads a call: split-K (one contiguous, tile-aligned
 * key range per thread in exact mode, KV heads otherwise, partial states merged in a fixed order)
 * or the two-unit pipeline. The same input, mode, thread count and scheduler always give the same
 * output bits, also across JIT warm-up.
 *
 * <p>Validation happens here, once per call: shapes, ranges, finite queries, an open cache. The
 * kernels below trust their inputs. An exact decode call allocates nothing; {@link #cancel()}
 * and the timeout overload end a running call with a
 * {@link java.util.concurrent.CancellationException}.
 *
 * <p>Ownership and threading: the caller owns the cache and must keep it open while this object is
 * used; {@link #close()} stops the worker threads and does not close the cache. One call at a time
 * per instance (a concurrent second call fails with {@link IllegalStateException}); use one
 * instance per thread that decodes. Appending to a layer while it is being decoded is not allowed.
 */
public final class DecodeAttention implements AutoCloseable {

  /** A split-K chunk gets at least this many keys; shorter contexts use fewer threads. */
  public static final int SPLIT_MIN_KEYS = TilePlan.SPLIT_MIN_KEYS;

  /** Query positions per block of an exact {@link #prefill} (each K/V tile is read once per block). */
  public static final int PREFILL_BLOCK_ROWS = TiledPrefill.BLOCK_ROWS;

  private final KvCache cache;
  private final KvCacheLayout layout;
  private final int numHeads;
  private final int kvHeads;
  private final int headDim;
  private final int group;
  private final int tileTokens;
  private final float scale;
  private final int threads;
  private final TileKernels kernels;
  private final Workers workers; // the worker threads' state and the schedulers
  private final Call call; // the current call, read by the workers
  private final WorkerPool pool; // null when threads == 1
  private final AttentionReport report;
  private final AttentionReport prefillTotals; // sums over the rows of a prefill call
  private final float[] prefillQ; // (numHeads, headDim) one row of a prefill call
  private final float[] prefillOut; // (numHeads, headDim)
  private final AtomicBoolean busy = new AtomicBoolean();
  private final Scheduler scheduler;
  private final CancelFlag cancel = new CancelFlag();
  private final TiledPrefill tiledPrefill; // exact prefill: query blocks x K/V tiles

  private DecodeAttention(KvCache cache, int numHeads, int threads, float scale, TileKernels kernels,
      Scheduler scheduler) {
    this.cache = Objects.requireNonNull(cache, "cache");
    cache.ensureOpen();
    this.layout = cache.layout();
    this.kvHeads = layout.kvHeads();
    this.headDim = layout.headDim();
    this.tileTokens = layout.tileTokens();
    if (numHeads <= 0) {
      throw new IllegalArgumentException("numHeads must be positive: " + numHeads);
    }
    if (numHeads % kvHeads != 0) {
      throw new IllegalArgumentException("numHeads must be a multiple of numKvHeads: "
          + numHeads + " % " + kvHeads + " != 0");
    }
    if (threads < 1 || threads > 1024) {
      throw new IllegalArgumentException("threads out of range [1, 1024]: " + threads);
    }
    if (!Float.isFinite(scale) || scale <= 0f) {
      throw new IllegalArgumentException("scale must be finite and positive: " + scale);
    }
    this.numHeads = numHeads;
    this.group = numHeads / kvHeads;
    this.threads = threads;
    this.scale = scale;
    this.kernels = Objects.requireNonNull(kernels, "kernels");
    this.report = new AttentionReport(numHeads);
    this.prefillTotals = new AttentionReport(numHeads);
    this.prefillQ = new float[numHeads * headDim];
    this.prefillOut = new float[numHeads * headDim];
    this.scheduler = Objects.requireNonNull(scheduler, "scheduler");
    if (scheduler == Scheduler.PIPELINE && threads < 2) {
      throw new IllegalArgumentException("the pipeline scheduler needs at least 2 threads: " + threads);
    }
    this.call = new Call(cache, numHeads, headDim, new TilePlan(tileTokens, kvHeads, layout.rowBytes()), report,
        cancel);
    this.pool = threads > 1 ? new WorkerPool(threads, "hflash-decode") : null;
    this.workers = new Workers(kernels, layout, numHeads, group, threads, scheduler, call, pool, cancel);
    this.tiledPrefill = new TiledPrefill(kernels, layout, numHeads, threads, pool);
  }

  /** Single-threaded exact attention with scale {@code 1/sqrt(headDim)}. */
  public static DecodeAttention create(KvCache cache, int numHeads) {
    return create(cache, numHeads, 1);
  }

  /** Exact attention on {@code threads} threads with scale {@code 1/sqrt(headDim)}. */
  public static DecodeAttention create(KvCache cache, int numHeads, int threads) {
    return create(cache, numHeads, threads, (float) (1.0 / Math.sqrt(cache.layout().headDim())));
  }

  /** Exact attention on {@code threads} threads with the given softmax scale. */
  public static DecodeAttention create(KvCache cache, int numHeads, int threads, float scale) {
    return new DecodeAttention(cache, numHeads, threads, scale, TileKernelsProvider.get(),
        Scheduler.SPLITK);
  }

  /** Attention on {@code threads} threads spread by {@code scheduler}, with the given scale. */
  public static DecodeAttention create(KvCache cache, int numHeads, int threads, float scale,
      Scheduler scheduler) {
    return new DecodeAttention(cache, numHeads, threads, scale, TileKernelsProvider.get(), scheduler);
  }

  /** As {@link #create(KvCache, int, int, float)} with explicit kernels (tests, benchmarks). */
  public static DecodeAttention create(KvCache cache, int numHeads, int threads, float scale,
      TileKernels kernels) {
    return new DecodeAttention(cache, numHeads, threads, scale, kernels, Scheduler.SPLITK);
  }

  /** Attention with explicit kernels and scheduler (tests that pin one kernel path, benchmarks). */
  public static DecodeAttention create(KvCache cache, int numHeads, int threads, float scale,
      TileKernels kernels, Scheduler scheduler) {
    return new DecodeAttention(cache, numHeads, threads, scale, kernels, scheduler);
  }

  /** The scheduler of this instance. */
  public Scheduler scheduler() {
    return scheduler;
  }

  /**
   * Cancels the call running now, from any thread: it ends soon (at its next tile) with a
   * {@link java.util.concurrent.CancellationException}; no worker is left running or blocked and
   * the cache is untouched (a decode never writes it). A call that starts later is not affected.
   */
  public void cancel() {
    cancel.cancelled = true;
  }

  /**
   * {@link #decode(int, float[], float[], int, AttentionConfig)} that gives up after
   * {@code timeout}, with a {@link java.util.concurrent.CancellationException} naming it.
   */
  public void decode(int layer, float[] q, float[] out, int keys, AttentionConfig config,
      java.time.Duration timeout) {
    long nanos = timeout.toNanos();
    if (nanos <= 0) {
      throw new IllegalArgumentException("timeout must be positive: " + timeout);
    }
    cancel.deadline = System.nanoTime() + nanos;
    cancel.timeout = timeout;
    try {
      decode(layer, q, out, keys, config);
    } finally {
      cancel.deadline = 0;
    }
  }

  public int numHeads() {
    return numHeads;
  }

  public int threads() {
    return threads;
  }

  public float scale() {
    return scale;
  }

  /** The kernels in use (e.g. {@code vector-512} or {@code scalar}). */
  public TileKernels kernels() {
    return kernels;
  }

  /** Counters of the last call; the same object is overwritten by every call. */
  public AttentionReport report() {
    return report;
  }

  /** Exact attention to every stored position of {@code layer}. */
  public void decode(int layer, float[] q, float[] out) {
    Objects.checkIndex(layer, layout.layers());
    decode(layer, q, out, cache.length(layer), AttentionConfig.exact());
  }

  /** Exact attention to the first {@code keys} positions of {@code layer}. */
  public void decode(int layer, float[] q, float[] out, int keys) {
    decode(layer, q, out, keys, AttentionConfig.exact());
  }

  /** Attention to every stored position of {@code layer} in the given mode. */
  public void decode(int layer, float[] q, float[] out, AttentionConfig config) {
    Objects.checkIndex(layer, layout.layers());
    decode(layer, q, out, cache.length(layer), config);
  }

  /**
   * Attends to the first {@code keys} positions of {@code layer} (a causal step at position
   * {@code keys - 1}) in the mode of {@code config}. {@code q} and {@code out} are (numHeads,
   * headDim) row-major; with {@code keys == 0} the output is zeros. {@link #report()} then holds
   * what the call read and, for the approximate modes, the error bound per head.
   *
   * @throws IllegalArgumentException wrong lengths, or a non-finite query value
   * @throws IndexOutOfBoundsException layer or keys out of range
   * @throws IllegalStateException closed cache or instance, or a concurrent call
   */
  public void decode(int layer, float[] q, float[] out, int keys, AttentionConfig config) {
    checkArguments(layer, q, out, keys);
    execute(layer, q, out, null, keys, config);
  }

  /**
   * {@link #decode(int, float[], float[], int, AttentionConfig)} that leaves the unnormalised
   * online-softmax state {@code (m, l, acc)} in {@code into} instead of writing the output, so a
   * caller can merge it with states over other keys ({@link AttentionState#merge}), e.g. shards
   * held by other machines. {@code into.finish(out, 0)} gives the bits {@code decode} writes.
   */
  public void decodeState(int layer, float[] q, int keys, AttentionConfig config,
      AttentionState into) {
    Objects.requireNonNull(into, "into");
    if (into.heads() != numHeads || into.headDim() != headDim) {
      throw new IllegalArgumentException("state shape differs from (numHeads, headDim): ("
          + into.heads() + ", " + into.headDim() + ") != (" + numHeads + ", " + headDim + ")");
    }
    checkArguments(layer, q, prefillOut, keys); // no output array: any of the right length passes
    execute(layer, q, null, into, keys, config);
  }

  /** One validated call: writes {@code out}, or copies the state into {@code into}. */
  private void execute(int layer, float[] q, float[] out, AttentionState into, int keys,
      AttentionConfig config) {
    Objects.requireNonNull(config, "config");
    acquire();
    boolean pinned = false;
    try {
      hflash.memory.internal.KvCacheInternals.pin(cache); // a close from another thread frees nothing until the call ends
      pinned = true;
      scaleQuery(q);
      workers.run(layer, keys, config);
      if (into != null) {
        into.copyFrom(workers.state()); // rotated space when the cache rotates: the caller merges, then unrotates
      } else {
        workers.state().finish(out, 0);
        unrotate(out);
      }
    } catch (Handoff.Aborted e) {
      throw workers.originalFailure(e);
    } catch (IllegalStateException e) {
      throw closedCacheOr(e);
    } finally {
      if (pinned) {
        hflash.memory.internal.KvCacheInternals.unpin(cache);
      }
      busy.set(false);
    }
  }

  /**
   * Causal prefill: query rows {@code i < count} of {@code q} are positions
   * {@code firstPosition + i}; row i attends to keys {@code [0, firstPosition + i]} (its own
   * prefix, which the cache must already hold: append the block's K/V first, e.g. with the
   * batched {@link KvCache#append(int, int, float[], float[])}). One call per layer for a
   * prompt. {@link #report()} then holds the sums over the rows (per-head bounds: their maxima).
   *
   * <p>Exact mode (without sinks + window) is tiled over queries as well as keys
   * ({@link TiledPrefill}): blocks of {@value TiledPrefill#BLOCK_ROWS} rows share each K/V tile,
   * the causal mask costs only on the diagonal tiles, threads take whole blocks (longest prefix
   * first), and the output has the bits of one single-threaded decode call per row, for every
   * thread count. The other modes run one decode call per row, so each row keeps its mode's
   * per-row guarantee (certified's epsilon, budgeted's tile budget, sampled's guard) and reads
   * its own prefix: a block of c rows reads about c times the prefix.
   *
   * @param q (count, numHeads, headDim) row-major
   * @param out (count, numHeads, headDim) row-major
   */
  public void prefill(int layer, float[] q, float[] out, int firstPosition, int count,
      AttentionConfig config) {
    Objects.checkIndex(layer, layout.layers());
    Objects.requireNonNull(q, "q");
    Objects.requireNonNull(out, "out");
    Objects.requireNonNull(config, "config");
    int row = numHeads * headDim;
    if (count < 0 || firstPosition < 0) {
      throw new IllegalArgumentException("count and firstPosition must be >= 0: " + count + ", "
          + firstPosition);
    }
    if ((long) q.length != (long) count * row || (long) out.length != (long) count * row) {
      throw new IllegalArgumentException("q and out length must be count*numHeads*headDim: "
          + q.length + ", " + out.length + " != " + (long) count * row);
    }
    int length = cache.length(layer);
    if ((long) firstPosition + count > length) {
      throw new IndexOutOfBoundsException("prefill rows past the cache: " + firstPosition + "+"
          + count + " > " + length + " (layer=" + layer + ")");
    }
    if (config.modeConfig() instanceof ModeConfig.Exact && !config.windowed()) {
      prefillTiled(layer, q, out, firstPosition, count);
      return;
    }
    prefillTotals.reset();
    for (int i = 0; i < count; i++) {
      System.arraycopy(q, i * row, prefillQ, 0, row);
      decode(layer, prefillQ, prefillOut, firstPosition + i + 1, config);
      System.arraycopy(prefillOut, 0, out, i * row, row);
      report.addTo(prefillTotals);
    }
    report.copyFrom(prefillTotals);
  }

  /** The exact tiled prefill: validated arguments; the same checks and errors as decode. */
  private void prefillTiled(int layer, float[] q, float[] out, int firstPosition, int count) {
    if (closed) {
      throw new IllegalStateException("DecodeAttention is closed: " + this);
    }
    cache.ensureOpen();
    for (int i = 0; i < q.length; i++) { // before any work: a bad row leaves out untouched
      if (!Float.isFinite(q[i])) {
        throw new IllegalArgumentException("non-finite value at q[" + i + "]=" + q[i]);
      }
    }
    acquire();
    try {
      report.reset();
      hflash.memory.internal.KvCacheInternals.pin(cache); // a close from another thread frees nothing until the call ends
      try {
        tiledPrefill.run(layer, q, out, firstPosition, count, scale, cache.rotation(), cache, cancel, report);
      } finally {
        hflash.memory.internal.KvCacheInternals.unpin(cache);
      }
    } catch (IllegalStateException e) {
      throw closedCacheOr(e);
    } finally {
      busy.set(false);
    }
  }

  /** Marks a call as running (one at a time per instance) and clears an old cancellation. */
  private void acquire() {
    if (!busy.compareAndSet(false, true)) {
      throw new IllegalStateException("concurrent decode calls on one DecodeAttention: " + this);
    }
    cancel.cancelled = false;
  }

  /** A lifecycle failure while the cache was closed under the call, named as such; else {@code e}. */
  private IllegalStateException closedCacheOr(IllegalStateException e) {
    return cache.isClosed() ? new IllegalStateException("KvCache is closed: " + cache, e) : e;
  }

  /**
   * The oracle the certified mode is measured against: the same traversal and stopping rule as
   * {@code certified(epsilon)}, but each tile's bound is its true max score (the best any
   * tile-level bound can do). Returns the tiles it opens, summed over KV heads; {@link #report()}
   * then describes that traversal. For evaluation only: it scores every key to find the maxima.
   */
  public long oracleTiles(int layer, float[] q, int keys, double epsilon) {
    float[] out = new float[numHeads * headDim];
    decode(layer, q, out, keys, AttentionConfig.of(new ModeConfig.CertifiedOracle(epsilon)));
    return report.tilesRead;
  }

  private void checkArguments(int layer, float[] q, float[] out, int keys) {
    if (closed) {
      throw new IllegalStateException("DecodeAttention is closed: " + this);
    }
    cache.ensureOpen();
    Objects.checkIndex(layer, layout.layers());
    Objects.requireNonNull(q, "q");
    Objects.requireNonNull(out, "out");
    int expected = numHeads * headDim;
    if (q.length != expected) {
      throw new IllegalArgumentException("q length differs from numHeads*headDim: "
          + q.length + "!=" + expected);
    }
    if (out.length != expected) {
      throw new IllegalArgumentException("out length differs from numHeads*headDim: "
          + out.length + "!=" + expected);
    }
    int length = cache.length(layer);
    if (keys < 0 || keys > length) {
      throw new IndexOutOfBoundsException("keys out of range [0, " + length + "]: " + keys
          + " (layer=" + layer + ")");
    }
  }

  /** A rotated cache holds R v: the output sum_j p_j R v_j comes back to the caller's basis as R^T out. */
  private void unrotate(float[] out) {
    HadamardRotation rotation = cache.rotation();
    if (rotation != null) {
      for (int h = 0; h < numHeads; h++) {
        rotation.rotateBack(out, h * headDim);
      }
    }
  }

  /** Copies q * scale into the call, rejecting non-finite values; per-head norms too. */
  private void scaleQuery(float[] q) {
    float[] qs = call.qs;
    for (int i = 0; i < q.length; i++) {
      float x = q[i];
      if (!Float.isFinite(x)) {
        throw new IllegalArgumentException("non-finite value at q[" + i + "]=" + x);
      }
      qs[i] = x * scale;
    }
    HadamardRotation rotation = cache.rotation();
    if (rotation != null) { // the cache holds R k: score R q (orthonormal R keeps every q . k)
      for (int h = 0; h < numHeads; h++) {
        rotation.rotate(qs, h * headDim);
      }
    }
    for (int h = 0; h < numHeads; h++) {
      double sq = 0;
      for (int c = h * headDim; c < (h + 1) * headDim; c++) {
        sq += (double) qs[c] * qs[c];
      }
      call.qNorm[h] = Math.sqrt(sq);
    }
  }

  /** Cancellation and deadline of the running call, checked once per tile. */
  static final class CancelFlag {
    volatile boolean cancelled;
    volatile long deadline; // System.nanoTime() deadline, 0 = none
    volatile java.time.Duration timeout;

    void check() {
      if (cancelled) {
        throw new java.util.concurrent.CancellationException("decode cancelled");
      }
      long d = deadline;
      if (d != 0 && System.nanoTime() - d > 0) {
        throw new java.util.concurrent.CancellationException("decode timed out after " + timeout);
      }
    }
  }

  private volatile boolean closed;

  /** Stops the worker threads. Idempotent. Does not close the cache. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    if (pool != null) {
      pool.close();
    }
  }

  @Override
  public String toString() {
    return "DecodeAttention[numHeads=" + numHeads + ", kvHeads=" + kvHeads + ", headDim=" + headDim
        + ", threads=" + threads + ", kernels=" + kernels.name() + "]";
  }

}
