package hflash.engine;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.memory.TileLayout;
import hflash.memory.TileSummaries;
import hflash.memory.ValueSummaries;
import hflash.tiles.TileKernels;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * One worker's tile loops, one method per mode, over one KV head's GQA group. Holds the worker's
 * scratch (never shared between threads) and its counters; {@link DecodeAttention} sets the call
 * fields, runs the loops on the workers and sums the counters.
 */
final class TileLoop {

  private final TileKernels kernels;
  private final KvCacheLayout layout;
  private final int d;
  private final int g;
  private final int tileTokens;
  private final int maxTiles;
  final AttentionState state; // (numHeads)
  private final float[] own; // (g, tileTokens): this worker's score scratch
  final float[] tileAcc; // (g, d): p.V of the current tile before it joins the running sum
  private float[] s; // scores, then weights, of the current tile: own, or a pipeline slot
  Handoff handoff; // pipeline unit 1: where tiles go for their p.V; null: accumulate here
  final boolean[] opened; // (maxTiles) bounded modes: tiles read in this pass
  private final BoundedPass bounded;
  private EstimatedPass estimatedPass; // created on the first estimated call: its scratch is large
  double estimatedTarget; // the estimated call's maxError
  final float[] trueMax; // (numHeads) sampled mode: the true max of each head
  private final float[] estimate; // (numHeads) sampled mode: the estimate before the margin
  private final int[] argmax; // (numHeads) sampled mode: key of the best sample

  // counters of the current call
  long rescales;
  long guardFirings;
  long keysScored;
  long tilesRead;
  long kvBytes;
  long summaryBytes;
  long sampleBytes;
  long fmas; // multiply-adds, as AttentionReport#fmas counts them

  TileLoop(TileKernels kernels, KvCacheLayout layout, int numHeads, int group) {
    this.kernels = kernels;
    this.layout = layout;
    this.d = layout.headDim();
    this.g = group;
    this.tileTokens = layout.tileTokens();
    this.maxTiles = (int) (layout.paddedCapacity() / tileTokens);
    this.state = new AttentionState(numHeads, d);
    this.own = new float[Math.multiplyExact(group, tileTokens)];
    this.tileAcc = new float[Math.multiplyExact(group, layout.headDim())];
    this.s = own;
    this.opened = new boolean[maxTiles];
    this.bounded = new BoundedPass(this, kernels, layout, group);
    this.trueMax = new float[numHeads];
    this.estimate = new float[numHeads];
    this.argmax = new int[numHeads];
  }

  void resetCounters() {
    rescales = guardFirings = keysScored = tilesRead = kvBytes = summaryBytes = sampleBytes = fmas = 0;
  }

  // -------------------------------------------------------------------------------- exact

  /** Online softmax over tiles [from, to) of KV head kh's group. */
  void exact(Call call, int kh, int from, int to) {
    for (int t = from; t < to; t++) {
      int count = scoreTile(call, kh, t);
      absorbAndAccumulate(call, kh, t, count, false);
    }
  }

  /**
   * The online-softmax update of a scored tile, then its p.V: here (serial, split-K) or handed
   * to the pipeline's unit 2 with the rescale factors it must apply first.
   */
  private void absorbAndAccumulate(Call call, int kh, int t, int count, boolean reference) {
    int h0 = kh * g;
    float[] alphas = handoff == null ? null : handoff.freeAlphas();
    countExps(count);
    if (reference) {
      guardFirings += state.absorbScoresWithReference(kernels, h0, g, s, tileTokens, count,
          call.config.guard(), trueMax, alphas);
    } else {
      rescales += state.absorbScores(kernels, h0, g, s, tileTokens, count, alphas);
    }
    if (handoff == null) {
      accumulateTile(call, kh, t, count);
    } else {
      handoff.publish(kh, t, count);
    }
  }

  /** Waits until every handed-off tile has been accumulated (no-op without a pipeline). */
  void drain() {
    if (handoff != null) {
      handoff.drain();
    }
  }

  /**
   * Exact mode restricted to the sinks [0, sinks) and the window [windowStart, keys): virtual
   * tiles [from, to) of the list "sink tiles, then window tiles"; keys of a read tile outside both
   * ranges get score -inf (weight 0). Every read tile holds at least one attended key.
   */
  void exactWindowed(Call call, int kh, int from, int to) {
    int h0 = kh * g;
    for (int vt = from; vt < to; vt++) {
      int t = call.windowTile(vt);
      int count = scoreTile(call, kh, t);
      int first = t * tileTokens;
      for (int j = 0; j < count; j++) {
        int key = first + j;
        if (key >= call.sinks && key < call.windowStart) {
          for (int i = 0; i < g; i++) {
            s[i * tileTokens + j] = Float.NEGATIVE_INFINITY;
          }
        }
      }
      absorbAndAccumulate(call, kh, t, count, false);
    }
  }

  /** Scores of tile t for the group into {@link #s}; returns the keys of the tile in the call. */
  private int scoreTile(Call call, int kh, int t) {
    call.cancel.check();
    if (handoff != null) {
      s = handoff.freeWeights(); // waits while both slots are in flight (back-pressure)
    }
    return scoreInto(call, kh, t, s);
  }

  /** Scores of tile t (its K) for the group into dst (g, tileTokens); counts keys and bytes. */
  private int scoreInto(Call call, int kh, int t, float[] dst) {
    int count = Math.min(tileTokens, call.keys - t * tileTokens);
    long off = call.cache.tileOffset(call.layer, kh, t);
    kernels.scores(call.qs, kh * g * d, g, d, call.k, off, Encodings.of(layout.dtype()), count, dst, tileTokens);
    keysScored += count;
    kvBytes += (long) count * layout.rowBytes();
    fmas += (long) count * g * d;
    return count;
  }

  /** Counts the multiply-adds of exponentiating {@code count} weights for each head of the group. */
  void countExps(int count) {
    fmas += (long) count * g * AttentionReport.EXP_FMAS;
  }

  private void accumulateTile(Call call, int kh, int t, int count) {
    accumulateTile(kernels, layout, call, kh, t, count, s, g, tileAcc, state.acc);
    kvBytes += (long) count * layout.rowBytes();
    fmas += (long) count * g * d;
    tilesRead++;
  }

  /**
   * p.V of one tile for KV head kh's group, summed into a zeroed per-tile buffer first and then
   * added to {@code acc}: the running sum then adds one partial per tile instead of one term per
   * key, which keeps its float rounding at about sqrt(tiles) + sqrt(T) ulps instead of sqrt(n)
   * (W1, 131k keys: relative error 6.2e-6 -> see docs/BENCHMARKS.md). Shared with the pipeline's
   * unit 2 so both give the same bits.
   *
   * @param tileAcc (g, d) scratch
   */
  static void accumulateTile(TileKernels kernels, KvCacheLayout layout, Call call, int kh, int t,
      int count, float[] weights, int g, float[] tileAcc, float[] acc) {
    int d = layout.headDim();
    int n = g * d;
    Arrays.fill(tileAcc, 0, n, 0f);
    kernels.accumulate(weights, layout.tileTokens(), g, d, call.v, call.cache.tileOffset(call.layer, kh, t),
        Encodings.of(layout.dtype()), count, layout.tileTokens(), tileAcc, 0);
    int base = kh * g * d;
    for (int i = 0; i < n; i++) { // element-wise: C2 vectorizes it, same bits in every tier
      acc[base + i] += tileAcc[i];
    }
  }

  // ------------------------------------------------------------------------------ sampled

  /** The note's estimator, then one pass with the fixed reference and the guard. */
  void sampled(Call call, int kh) {
    int h0 = kh * g;
    int keys = call.keys;
    state.reset(h0, g);
    if (keys == 0) {
      return;
    }
    AttentionConfig cfg = call.config;
    estimateBySamples(call, kh, cfg.delta());
    refine(call, kh, cfg.radius());
    for (int i = 0; i < g; i++) {
      state.setReference(h0 + i, estimate[h0 + i] + cfg.margin());
      trueMax[h0 + i] = Float.NEGATIVE_INFINITY;
    }
    int tiles = (keys + tileTokens - 1) / tileTokens;
    for (int t = 0; t < tiles; t++) {
      int count = scoreTile(call, kh, t);
      absorbAndAccumulate(call, kh, t, count, true);
    }
    for (int i = 0; i < g; i++) {
      call.report.miss[h0 + i] = trueMax[h0 + i] - estimate[h0 + i];
    }
  }

  /**
   * Stage 1: score every delta-th key; estimate[h] = best sample, argmax[h] = its key. Uses the
   * worker's own scratch: {@link #s} may be a pipeline slot that unit 2 is still reading.
   */
  private void estimateBySamples(Call call, int kh, int delta) {
    int h0 = kh * g;
    Arrays.fill(estimate, h0, h0 + g, Float.NEGATIVE_INFINITY);
    int keys = call.keys;
    if (delta % KvCache.SAMPLE_STRIDE == 0) {
      // the store holds every 8th key in two phases (keys = 0 and = 8 mod 16) of 32-sample K
      // blocks: score whole blocks with the tile kernel (no horizontal sums) and keep store samples
      // i with i % step == 0; an even step never needs phase 1 (half the bytes at delta = 16)
      int step = delta / KvCache.SAMPLE_STRIDE;
      int stored = (keys + KvCache.SAMPLE_STRIDE - 1) / KvCache.SAMPLE_STRIDE; // samples below keys
      int phases = step % KvCache.SAMPLE_PHASES == 0 ? 1 : KvCache.SAMPLE_PHASES;
      int blockSize = TileLayout.KEY_BLOCK;
      for (int phase = 0; phase < phases; phase++) {
        int inPhase = (stored - phase + KvCache.SAMPLE_PHASES - 1) / KvCache.SAMPLE_PHASES;
        for (int b = 0; b * blockSize < inPhase; b++) {
          int count = Math.min(blockSize, inPhase - b * blockSize);
          kernels.scores(call.qs, h0 * d, g, d, call.samples, call.sampleBlockOffset(kh, phase, b),
              Encodings.of(layout.dtype()), count, own, tileTokens);
          sampleBytes += (long) count * layout.rowBytes();
          fmas += (long) count * g * d;
          for (int j = 0; j < count; j++) {
            int sample = (b * blockSize + j) * KvCache.SAMPLE_PHASES + phase;
            if (sample % step == 0) {
              takeSample(h0, j, sample * KvCache.SAMPLE_STRIDE);
            }
          }
        }
      }
    } else { // strides the sample store cannot serve: read the sampled keys from the cache
      for (int j = 0; j < keys; j += delta) {
        for (int i = 0; i < g; i++) {
          float dot = 0f;
          for (int c = 0; c < d; c++) {
            dot = Math.fma(call.qs[(h0 + i) * d + c], call.cache.key(call.layer, kh, j, c), dot);
          }
          own[i * tileTokens] = dot;
        }
        takeSample(h0, 0, j);
        sampleBytes += layout.rowBytes();
        fmas += (long) g * d;
      }
    }
  }

  /**
   * Folds the score of column j of {@link #own} (key {@code key}) into each head's estimate; ties go
   * to the lower key, whatever order the samples come in.
   */
  private void takeSample(int h0, int j, int key) {
    for (int i = 0; i < g; i++) {
      float x = own[i * tileTokens + j];
      if (x > estimate[h0 + i] || (x == estimate[h0 + i] && key < argmax[h0 + i])) {
        estimate[h0 + i] = x;
        argmax[h0 + i] = key;
      }
    }
  }

  /**
   * Stage 2: exact scores within +-radius of each head's best sample raise its estimate. Each tile
   * that any head's window touches is scored once for the whole group (a tile's scores cover every
   * head), so overlapping windows do not read a tile twice.
   */
  private void refine(Call call, int kh, int radius) {
    int h0 = kh * g;
    int first = Integer.MAX_VALUE, last = -1;
    for (int i = 0; i < g; i++) {
      first = Math.min(first, Math.max(0, argmax[h0 + i] - radius) / tileTokens);
      last = Math.max(last, Math.min(call.keys - 1, argmax[h0 + i] + radius) / tileTokens);
    }
    for (int t = first; t <= last; t++) {
      int tileLo = t * tileTokens, tileHi = tileLo + tileTokens - 1;
      boolean touched = false;
      for (int i = 0; i < g && !touched; i++) {
        touched = argmax[h0 + i] - radius <= tileHi && argmax[h0 + i] + radius >= tileLo;
      }
      if (!touched) {
        continue; // between two heads' windows
      }
      int count = scoreTile(call, kh, t);
      for (int i = 0; i < g; i++) {
        int from = Math.max(argmax[h0 + i] - radius - tileLo, 0);
        int to = Math.min(argmax[h0 + i] + radius - tileLo + 1, count);
        for (int j = from; j < to; j++) {
          estimate[h0 + i] = Math.max(estimate[h0 + i], s[i * tileTokens + j]);
        }
      }
    }
  }

  // ------------------------------------------------------------------- certified / budgeted

  /** Certified (budget &lt; 0) or budgeted pass over KV head kh's group: see {@link BoundedPass}. */
  void bounded(Call call, int kh, int budget) {
    state.reset(kh * g, g);
    if (call.keys == 0) {
      return;
    }
    bounded.run(call, kh, budget);
  }

  /** Estimated pass over KV head kh's group: see {@link EstimatedPass}. */
  void estimated(Call call, int kh) {
    state.reset(kh * g, g);
    if (call.keys == 0) {
      return;
    }
    if (estimatedPass == null) {
      estimatedPass = new EstimatedPass(this, kernels, layout, g);
    }
    estimatedTarget = call.config.maxError();
    estimatedPass.run(call, kh);
  }

  /** The worker's own score scratch (never a pipeline slot), for the oracle's tile maxima. */
  float[] scratchScores() {
    return own;
  }

  /** Reads tile t exactly into the state; returns 1. */
  int open(Call call, int kh, int t) {
    int count = scoreTile(call, kh, t);
    absorbAndAccumulate(call, kh, t, count, false);
    opened[t] = true;
    return 1;
  }

  /**
   * Scores of tile t (its K only) for the group into the worker's own scratch
   * ({@link #lastScores}, (g, tileTokens)); returns the keys of the tile in the call. The
   * certified K-scan turns them into weights and keeps them for {@link #openWeighted}.
   */
  int scoreOnly(Call call, int kh, int t) {
    call.cancel.check();
    return scoreInto(call, kh, t, own);
  }

  /** The worker's own score scratch, as {@link #scoreOnly} left it. */
  float[] lastScores() {
    return own;
  }

  /**
   * Opens tile t from the weights the K-scan just computed ({@code exp(s - tileMax)} per head, see
   * {@link AttentionState#absorbWeights}): the state update and p.V (reads V only).
   */
  void openWeighted(Call call, int kh, int t, int count, float[] src, int srcOff, float[] maxes,
      double[] sums, int statsOff) {
    call.cancel.check();
    if (handoff != null) {
      s = handoff.freeWeights();
    }
    if (src != s) {
      System.arraycopy(src, srcOff, s, 0, g * tileTokens);
    }
    int h0 = kh * g;
    float[] alphas = handoff == null ? null : handoff.freeAlphas();
    rescales += state.absorbWeights(kernels, h0, g, s, tileTokens, count, maxes, sums, statsOff, alphas);
    if (handoff == null) {
      accumulateTile(call, kh, t, count);
    } else {
      handoff.publish(kh, t, count);
    }
    opened[t] = true;
  }

  /** The per-call inputs shared by all workers. */
  static final class Call {
    float[] qs; // (numHeads, d): q * scale
    double[] qNorm; // (numHeads): ||q_h * scale||
    MemorySegment k;
    MemorySegment v;
    MemorySegment samples;
    MemorySegment summarySegment;
    TileSummaries summaries;
    ValueSummaries valueSummaries; // certified with an output-error target
    KvCache cache;
    int layer;
    int keys;
    boolean oracle; // bounded modes: use true tile maxima instead of summaries
    int sinks; // windowed exact: keys [0, sinks) and [windowStart, keys) are attended
    int windowStart;
    int sinkTiles; // tiles holding sinks: [0, sinkTiles)
    int windowFirstTile; // tiles holding the window: [windowFirstTile, tiles)
    AttentionConfig config;
    AttentionReport report;
    DecodeAttention.CancelFlag cancel;

    /** Number of tiles a windowed call reads. */
    int windowTiles() {
      int tiles = (keys + layoutTileTokens - 1) / layoutTileTokens;
      return Math.min(sinkTiles, windowFirstTile) + (tiles - windowFirstTile);
    }

    /** Tile of virtual index vt in the list "sink tiles, then window tiles" (no tile twice). */
    int windowTile(int vt) {
      int head = Math.min(sinkTiles, windowFirstTile);
      return vt < head ? vt : windowFirstTile + (vt - head);
    }

    int layoutTileTokens;

    long sampleBlockOffset(int kh, int phase, int block) {
      return cache.sampleBlockOffset(layer, kh, phase, block);
    }
  }
}
