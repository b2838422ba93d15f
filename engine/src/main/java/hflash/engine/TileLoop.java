package hflash.engine;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.memory.TileSummaries;
import hflash.tiles.TileKernels;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * One worker's tile loops, one method per mode, over one KV head's GQA group. Holds the worker's
 * scratch (never shared between threads) and its counters; {@link DecodeAttention} sets the call
 * fields, runs the loops on the workers and sums the counters.
 */
final class TileLoop {

  /** Relative rounding slack of a float32 score or bound over d terms: (d + 2) u, u = 2^-24. */
  private static final double U = 0x1p-24;

  private final TileKernels kernels;
  private final KvCacheLayout layout;
  private final int d;
  private final int g;
  private final int tileTokens;
  private final int maxTiles;
  final AttentionState state; // (numHeads)
  private final float[] s; // (g, tileTokens): scores, then weights, of the current tile
  private final float[] ub; // (g, maxTiles): certified upper bound of each tile's scores
  private final long[] order; // (maxTiles): tiles sorted by priority, packed (priority, tile)
  private final double[] suffix; // (g, maxTiles + 1): unopened mass at the reference, in order
  private final float[] vmaxSuffix; // (maxTiles + 1): largest value norm of the unopened tiles
  private final boolean[] opened; // (maxTiles)
  private final float[] nb = new float[3];
  final float[] trueMax; // (numHeads) sampled mode: the true max of each head
  private final float[] estimate; // (numHeads) sampled mode: the estimate before the margin
  private final int[] argmax; // (numHeads) sampled mode: key of the best sample
  private final float[] ref; // (numHeads) bounded modes: largest bound of the unopened tiles

  // counters of the current call
  long rescales;
  long guardFirings;
  long keysScored;
  long tilesRead;
  long kvBytes;
  long summaryBytes;
  long sampleBytes;

  TileLoop(TileKernels kernels, KvCacheLayout layout, int numHeads, int group) {
    this.kernels = kernels;
    this.layout = layout;
    this.d = layout.headDim();
    this.g = group;
    this.tileTokens = layout.tileTokens();
    this.maxTiles = (int) (layout.paddedCapacity() / tileTokens);
    this.state = new AttentionState(numHeads, d);
    this.s = new float[Math.multiplyExact(group, tileTokens)];
    this.ub = new float[Math.multiplyExact(group, maxTiles)];
    this.order = new long[maxTiles];
    this.suffix = new double[Math.multiplyExact(group, maxTiles + 1)];
    this.vmaxSuffix = new float[maxTiles + 1];
    this.opened = new boolean[maxTiles];
    this.trueMax = new float[numHeads];
    this.estimate = new float[numHeads];
    this.argmax = new int[numHeads];
    this.ref = new float[numHeads];
  }

  void resetCounters() {
    rescales = guardFirings = keysScored = tilesRead = kvBytes = summaryBytes = sampleBytes = 0;
  }

  // -------------------------------------------------------------------------------- exact

  /** Online softmax over tiles [from, to) of KV head kh's group. */
  void exact(Call call, int kh, int from, int to) {
    int h0 = kh * g;
    for (int t = from; t < to; t++) {
      int count = scoreTile(call, kh, t);
      rescales += state.absorbScores(kernels, h0, g, s, tileTokens, count);
      accumulateTile(call, kh, t, count);
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
      rescales += state.absorbScores(kernels, h0, g, s, tileTokens, count);
      accumulateTile(call, kh, t, count);
    }
  }

  /** Scores of tile t for the group into {@link #s}; returns the keys of the tile in the call. */
  private int scoreTile(Call call, int kh, int t) {
    int count = Math.min(tileTokens, call.keys - t * tileTokens);
    long off = layout.tileOffset(call.layer, kh, t);
    kernels.scores(call.qs, kh * g * d, g, d, call.k, off, layout.dtype(), count, s, tileTokens);
    keysScored += count;
    kvBytes += (long) count * layout.rowBytes();
    return count;
  }

  private void accumulateTile(Call call, int kh, int t, int count) {
    long off = layout.tileOffset(call.layer, kh, t);
    kernels.accumulate(s, tileTokens, g, d, call.v, off, layout.dtype(), count, tileTokens,
        state.acc, kh * g * d);
    kvBytes += (long) count * layout.rowBytes();
    tilesRead++;
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
      guardFirings += state.absorbScoresWithReference(kernels, h0, g, s, tileTokens, count,
          cfg.guard(), trueMax);
      accumulateTile(call, kh, t, count);
    }
    for (int i = 0; i < g; i++) {
      call.report.miss[h0 + i] = trueMax[h0 + i] - estimate[h0 + i];
    }
  }

  /** Stage 1: score every delta-th key; estimate[h] = best sample, argmax[h] = its key. */
  private void estimateBySamples(Call call, int kh, int delta) {
    int h0 = kh * g;
    Arrays.fill(estimate, h0, h0 + g, Float.NEGATIVE_INFINITY);
    int keys = call.keys;
    if (delta % KvCache.SAMPLE_STRIDE == 0) {
      int step = delta / KvCache.SAMPLE_STRIDE;
      long rowBytes = (long) d * Float.BYTES;
      int samples = (keys + delta - 1) / delta;
      for (int first = 0; first < samples; first += tileTokens) {
        int count = Math.min(tileTokens, samples - first);
        long off = call.sampleOffset(kh, first * step);
        kernels.rowScores(call.qs, h0 * d, g, d, call.samples, off, step * rowBytes, count, s,
            tileTokens);
        sampleBytes += count * rowBytes;
        takeSampleMax(h0, count, first * delta, delta);
      }
    } else { // strides the sample store cannot serve: read the sampled keys from the cache
      for (int j = 0; j < keys; j += delta) {
        for (int i = 0; i < g; i++) {
          float dot = 0f;
          for (int c = 0; c < d; c++) {
            dot = Math.fma(call.qs[(h0 + i) * d + c], layout.dtype().read(call.k,
                layout.keyOffset(call.layer, kh, j, c)), dot);
          }
          s[i * tileTokens] = dot;
        }
        takeSampleMax(h0, 1, j, delta);
        sampleBytes += layout.rowBytes();
      }
    }
  }

  private void takeSampleMax(int h0, int count, int firstKey, int delta) {
    for (int i = 0; i < g; i++) {
      for (int j = 0; j < count; j++) {
        float x = s[i * tileTokens + j];
        if (x > estimate[h0 + i]) {
          estimate[h0 + i] = x;
          argmax[h0 + i] = firstKey + j * delta;
        }
      }
    }
  }

  /** Stage 2: exact scores within +-radius of each head's best sample raise its estimate. */
  private void refine(Call call, int kh, int radius) {
    int h0 = kh * g;
    for (int i = 0; i < g; i++) {
      int lo = Math.max(0, argmax[h0 + i] - radius);
      int hi = Math.min(call.keys - 1, argmax[h0 + i] + radius);
      for (int t = lo / tileTokens; t <= hi / tileTokens; t++) {
        int count = scoreTile(call, kh, t); // scores all heads of the group; head i is read below
        int from = Math.max(lo - t * tileTokens, 0);
        int to = Math.min(hi - t * tileTokens + 1, count);
        for (int j = from; j < to; j++) {
          estimate[h0 + i] = Math.max(estimate[h0 + i], s[i * tileTokens + j]);
        }
      }
    }
  }

  // ------------------------------------------------------------------- certified / budgeted

  /**
   * Certified (budget &lt; 0) or budgeted (budget = tiles to open) pass over KV head kh's group:
   * bound every complete tile from its summary, open the first, the last and the incomplete tile,
   * then the others best-first until the unopened mass bound E_h &lt;= epsilon * l_h for every
   * head (certified) or the budget is spent (budgeted).
   */
  void bounded(Call call, int kh, int budget) {
    int h0 = kh * g;
    int keys = call.keys;
    state.reset(h0, g);
    if (keys == 0) {
      return;
    }
    int full = keys / tileTokens; // complete tiles: their summaries are valid
    int tiles = (keys + tileTokens - 1) / tileTokens;
    Arrays.fill(opened, 0, tiles, false);
    boundTiles(call, kh, full);
    int used = 0;
    used += open(call, kh, 0);
    if (full > 1) {
      used += open(call, kh, full - 1);
    }
    if (tiles > full) {
      used += open(call, kh, full);
    }
    int n = prepareOrder(call, kh, full);
    int k = 0;
    for (; k < n; k++) {
      boolean stop = budget >= 0 ? used >= budget
          : unopenedWithinEpsilon(h0, k, call.config.epsilon());
      if (stop) {
        break;
      }
      used += open(call, kh, (int) order[k]);
    }
    for (int i = 0; i < g; i++) {
      int h = h0 + i;
      double e = unopenedMass(i, k, h);
      double l = state.l[h];
      double rho = e == 0 ? 0 : Double.isInfinite(e) ? 1 : e / (l + e);
      call.report.rho[h] = rho;
      call.report.errorBound[h] = rho == 0 ? 0 : rho * (vmaxSuffix[k] + state.outputNorm(h));
    }
  }

  /** Upper bounds of tiles [0, full) for every head of the group. */
  private void boundTiles(Call call, int kh, int full) {
    int h0 = kh * g;
    if (call.oracle) { // perfect knowledge: each tile's true max (scored here, not counted as read)
      for (int t = 0; t < full; t++) {
        long off = layout.tileOffset(call.layer, kh, t);
        kernels.scores(call.qs, h0 * d, g, d, call.k, off, layout.dtype(), tileTokens, s, tileTokens);
        for (int i = 0; i < g; i++) {
          ub[i * maxTiles + t] = kernels.max(s, i * tileTokens, tileTokens);
        }
      }
      return;
    }
    TileSummaries sum = call.summaries;
    for (int t = 0; t < full; t++) {
      long rec = sum.offset(call.layer, kh, t);
      float radius = sum.radius(call.layer, kh, t);
      for (int i = 0; i < g; i++) {
        kernels.nodeBounds(call.qs, (h0 + i) * d, d, call.summarySegment, rec, nb, 0);
        double ball = nb[2] + call.qNorm[h0 + i] * (double) radius * (1 + 1e-6);
        double slack = 3 * (d + 2) * U * nb[1];
        ub[i * maxTiles + t] = (float) (Math.min(nb[0], ball) + slack) + Math.ulp(nb[1]);
      }
    }
    summaryBytes += full * (long) TileSummaries.recordFloats(d) * Float.BYTES;
  }

  /**
   * Sorts the complete, unopened tiles by priority (best bound over the group's heads, relative
   * to each head's running max) and builds the suffix sums of their mass bounds. Returns their
   * count.
   */
  private int prepareOrder(Call call, int kh, int full) {
    int h0 = kh * g;
    int n = 0;
    for (int t = 0; t < full; t++) {
      if (opened[t]) {
        continue;
      }
      float priority = Float.NEGATIVE_INFINITY;
      for (int i = 0; i < g; i++) {
        priority = Math.max(priority, ub[i * maxTiles + t] - state.m[h0 + i]);
      }
      // descending priority: sort ascending on the negated, order-preserving int bits
      order[n++] = ((long) sortableBits(-priority) << 32) | t;
    }
    Arrays.sort(order, 0, n);
    for (int k = 0; k < n; k++) {
      order[k] = order[k] & 0xffffffffL;
    }
    for (int i = 0; i < g; i++) {
      // suffix sums relative to R = the largest bound, so every term is <= tileTokens; a term
      // is clamped at exp(-700) rather than allowed to underflow, so E is never underestimated
      int base = i * (maxTiles + 1);
      float r = Float.NEGATIVE_INFINITY;
      for (int k = 0; k < n; k++) {
        r = Math.max(r, ub[i * maxTiles + (int) order[k]]);
      }
      ref[h0 + i] = r;
      double acc = 0;
      suffix[base + n] = 0;
      for (int k = n - 1; k >= 0; k--) {
        double x = (double) ub[i * maxTiles + (int) order[k]] - r;
        acc += tileTokens * Math.exp(Math.max(x, -700));
        suffix[base + k] = acc;
      }
    }
    vmaxSuffix[n] = 0;
    for (int k = n - 1; k >= 0; k--) {
      vmaxSuffix[k] = Math.max(vmaxSuffix[k + 1], call.summaries.vmax(call.layer, kh, (int) order[k]));
    }
    return n;
  }

  /**
   * E_h: bound on the mass exp(s - m_h) summed over the keys of the unopened tiles order[k..n),
   * relative to head h's current max. +inf when it does not fit a double (never NaN).
   */
  private double unopenedMass(int i, int k, int h) {
    double sfx = suffix[i * (maxTiles + 1) + k];
    if (sfx == 0) {
      return 0;
    }
    return sfx * Math.exp((double) ref[h] - state.m[h]);
  }

  private boolean unopenedWithinEpsilon(int h0, int k, double epsilon) {
    for (int i = 0; i < g; i++) {
      if (!(unopenedMass(i, k, h0 + i) <= epsilon * state.l[h0 + i])) {
        return false;
      }
    }
    return true;
  }

  /** Reads tile t exactly into the state; returns 1. */
  private int open(Call call, int kh, int t) {
    int count = scoreTile(call, kh, t);
    rescales += state.absorbScores(kernels, kh * g, g, s, tileTokens, count);
    accumulateTile(call, kh, t, count);
    opened[t] = true;
    return 1;
  }

  /** Maps a float to an int whose signed order is the float's order. */
  private static int sortableBits(float f) {
    int bits = Float.floatToIntBits(f);
    return bits >= 0 ? bits : bits ^ 0x7fffffff;
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

    long sampleOffset(int kh, int row) {
      return cache.sampleOffset(layer, kh, row);
    }
  }
}
