package hflash.engine;

import hflash.engine.pass.Encodings;
import hflash.engine.pass.TilePlan;
import hflash.engine.pass.Tiles;
import hflash.memory.KvCacheLayout;
import hflash.memory.TileSummaries;
import hflash.memory.ValueSummaries;
import hflash.tiles.NativeKernels;
import hflash.tiles.TileKernels;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * One worker of a decode call: its online-softmax state, its score scratch, its counters, and the
 * tile reads every mode is built from ({@link Tiles}). It knows nothing about modes: the call's
 * strategy ({@link Strategies}) drives it. Never shared between threads; {@link DecodeAttention}
 * sums the counters and merges the states.
 */
final class TileLoop implements Tiles {

  private final TileKernels kernels;
  private final KvCacheLayout layout;
  private final Call call; // the running call's inputs, shared read-only by all workers
  private final int d;
  private final int g;
  private final int tileTokens;
  private final int tilesPerCall; // coarse kernel: tiles per decodeTiles call
  private final long[] runOffsets; // (tilesPerCall): byte offsets of the tiles of one coarse call
  private final int[] runCounts; // (tilesPerCall): their keys
  private final float[] runScratch; // (g * tileTokens + g * d): decodeTiles' scores and tile accumulator
  final AttentionState state; // (numHeads)
  private final float[] own; // (g, tileTokens): this worker's score scratch
  final float[] tileAcc; // (g, d): p.V of the current tile before it joins the running sum
  private float[] s; // scores, then weights, of the current tile: own, or a pipeline slot
  Handoff handoff; // pipeline unit 1: where tiles go for their p.V; null: accumulate here
  private final boolean[] opened; // (maxTiles) bounded modes: tiles read in this pass
  final Strategies strategies; // this worker's mode strategies (their scratch), created lazily

  // counters of the current call
  long rescales;
  long guardFirings;
  long keysScored;
  long tilesRead;
  long kvBytes;
  long summaryBytes;
  long sampleBytes;
  long fmas; // multiply-adds, as AttentionReport#fmas counts them

  TileLoop(TileKernels kernels, KvCacheLayout layout, int numHeads, int group, Call call) {
    this.kernels = kernels;
    this.layout = layout;
    this.call = call;
    this.d = layout.headDim();
    this.g = group;
    this.tileTokens = layout.tileTokens();
    this.state = new AttentionState(numHeads, d);
    this.own = new float[Math.multiplyExact(group, tileTokens)];
    this.tileAcc = new float[Math.multiplyExact(group, layout.headDim())];
    this.s = own;
    this.tilesPerCall = Math.max(1, NativeKernels.MAX_KEYS_PER_CALL / tileTokens);
    this.runOffsets = new long[tilesPerCall];
    this.runCounts = new int[tilesPerCall];
    this.runScratch = new float[Math.multiplyExact(group, tileTokens + layout.headDim())];
    this.opened = new boolean[(int) (layout.paddedCapacity() / tileTokens)];
    this.strategies = new Strategies(kernels, layout, numHeads, group);
  }

  void resetCounters() {
    rescales = guardFirings = keysScored = tilesRead = kvBytes = summaryBytes = sampleBytes = fmas = 0;
  }

  // ----------------------------------------------------------------------- the call's inputs

  @Override
  public TileKernels kernels() {
    return kernels;
  }

  @Override
  public KvCacheLayout layout() {
    return layout;
  }

  @Override
  public int group() {
    return g;
  }

  @Override
  public int layer() {
    return call.layer();
  }

  @Override
  public int keys() {
    return call.keys();
  }

  @Override
  public TilePlan plan() {
    return call.plan;
  }

  @Override
  public float[] queries() {
    return call.qs;
  }

  @Override
  public double queryNorm(int h) {
    return call.qNorm[h];
  }

  @Override
  public MemorySegment keySegment() {
    return call.k();
  }

  @Override
  public long tileOffset(int kh, int t) {
    return call.tileOffset(kh, t);
  }

  @Override
  public float key(int kh, int pos, int c) {
    return call.key(kh, pos, c);
  }

  @Override
  public MemorySegment valueSegment() {
    return call.v();
  }

  @Override
  public MemorySegment sampleSegment() {
    return call.samples();
  }

  @Override
  public long sampleBlockOffset(int kh, int phase, int block) {
    return call.sampleBlockOffset(kh, phase, block);
  }

  @Override
  public TileSummaries summaries() {
    return call.summaries();
  }

  @Override
  public MemorySegment summarySegment() {
    return call.summarySegment();
  }

  @Override
  public ValueSummaries valueSummaries() {
    return call.valueSummaries();
  }

  @Override
  public void checkCancelled() {
    call.cancel.check();
  }

  // ------------------------------------------------------------------------------ tile reads

  @Override
  public int score(int kh, int t) {
    call.cancel.check();
    if (handoff != null) {
      s = handoff.freeWeights(); // waits while both slots are in flight (back-pressure)
    }
    return scoreInto(kh, t, s);
  }

  @Override
  public float[] weights() {
    return s;
  }

  /**
   * The online-softmax update of a scored tile, then its p.V: here (serial, split-K) or handed
   * to the pipeline's unit 2 with the rescale factors it must apply first.
   */
  @Override
  public void absorbAndAccumulate(int kh, int t, int count) {
    float[] alphas = handoff == null ? null : handoff.freeAlphas();
    countExps(count);
    rescales += state.absorbScores(kernels, kh * g, g, s, tileTokens, count, alphas);
    accumulateOrPublish(kh, t, count);
  }

  @Override
  public void absorbWithReference(int kh, int t, int count, float guard, float[] trueMax) {
    float[] alphas = handoff == null ? null : handoff.freeAlphas();
    countExps(count);
    guardFirings += state.absorbScoresWithReference(kernels, kh * g, g, s, tileTokens, count, guard,
        trueMax, alphas);
    accumulateOrPublish(kh, t, count);
  }

  private void accumulateOrPublish(int kh, int t, int count) {
    if (handoff == null) {
      accumulateTile(kh, t, count);
    } else {
      handoff.publish(kh, t, count);
    }
  }

  @Override
  public void drain() {
    if (handoff != null) {
      handoff.drain();
    }
  }

  /** Scores of tile t (its K) for the group into dst (g, tileTokens); counts keys and bytes. */
  private int scoreInto(int kh, int t, float[] dst) {
    int count = Math.min(tileTokens, call.keys() - t * tileTokens);
    long off = call.tileOffset(kh, t);
    kernels.scores(call.qs, kh * g * d, g, d, call.k(), off, Encodings.of(layout.dtype()), count, dst, tileTokens);
    keysScored += count;
    kvBytes += (long) count * layout.rowBytes();
    fmas += (long) count * g * d;
    return count;
  }

  @Override
  public void countExps(int count) {
    fmas += (long) count * g * AttentionReport.EXP_FMAS;
  }

  @Override
  public void countFmas(long n) {
    fmas += n;
  }

  @Override
  public void countSummaryBytes(long bytes) {
    summaryBytes += bytes;
  }

  @Override
  public void countSampleBytes(long bytes) {
    sampleBytes += bytes;
  }

  private void accumulateTile(int kh, int t, int count) {
    accumulateTile(kernels, layout, call, kh, t, count, s, g, tileAcc, state.acc);
    kvBytes += (long) count * layout.rowBytes();
    fmas += (long) count * g * d;
    tilesRead++;
  }

  @Override
  public void accumulateInto(int kh, int t, int count, float[] w, float[] acc) {
    kernels.accumulate(w, tileTokens, g, d, call.v(), call.tileOffset(kh, t), Encodings.of(layout.dtype()), count,
        tileTokens, acc, 0);
    kvBytes += (long) count * layout.rowBytes();
    fmas += (long) count * g * d;
    tilesRead++;
  }

  /**
   * p.V of one tile for KV head kh's group, summed into a zeroed per-tile buffer first and then
   * added to {@code acc}: the running sum then adds one partial per tile instead of one term per
   * key, which keeps its float rounding at about sqrt(tiles) + sqrt(T) ulps instead of sqrt(n)
   * (W1, 131k keys: relative error 6.2e-6 with one term per key, 1.6e-6 with one partial per
   * tile). Shared with the pipeline's unit 2 so both give the same bits.
   *
   * @param tileAcc (g, d) scratch
   */
  static void accumulateTile(TileKernels kernels, KvCacheLayout layout, Call call, int kh, int t,
      int count, float[] weights, int g, float[] tileAcc, float[] acc) {
    int d = layout.headDim();
    int n = g * d;
    Arrays.fill(tileAcc, 0, n, 0f);
    kernels.accumulate(weights, layout.tileTokens(), g, d, call.v(), call.tileOffset(kh, t),
        Encodings.of(layout.dtype()), count, layout.tileTokens(), tileAcc, 0);
    int base = kh * g * d;
    for (int i = 0; i < n; i++) { // element-wise: C2 vectorizes it, same bits in every tier
      acc[base + i] += tileAcc[i];
    }
  }

  @Override
  public boolean coarse() {
    return handoff == null && kernels.nativeVariant() != null;
  }

  @Override
  public void decodeRun(int kh, int from, int to) {
    if (!coarse()) {
      for (int vt = from; vt < to; vt++) {
        int t = call.plan.tile(vt);
        absorbAndAccumulate(kh, t, score(kh, t));
      }
      return;
    }
    for (int vt = from; vt < to; vt += tilesPerCall) {
      int n = Math.min(tilesPerCall, to - vt);
      for (int i = 0; i < n; i++) {
        int t = call.plan.tile(vt + i);
        runOffsets[i] = call.tileOffset(kh, t);
        runCounts[i] = Math.min(tileTokens, call.keys() - t * tileTokens);
      }
      coarseCall(kh, n);
    }
  }

  /** One coarse kernel call over the first n entries of runOffsets/runCounts; counts as the per-tile path does. */
  private void coarseCall(int kh, int n) {
    call.cancel.check();
    int h0 = kh * g;
    rescales += kernels.decodeTiles(call.qs, h0 * d, g, d, call.k(), call.v(), Encodings.of(layout.dtype()),
        tileTokens, runOffsets, runCounts, n, state.m, state.l, h0, state.acc, h0 * d, runScratch);
    long keys = 0;
    for (int i = 0; i < n; i++) {
      keys += runCounts[i];
    }
    keysScored += keys;
    kvBytes += 2 * keys * layout.rowBytes();
    fmas += keys * g * (2L * d + AttentionReport.EXP_FMAS);
    tilesRead += n;
  }

  @Override
  public int open(int kh, int t) {
    if (coarse()) { // the bounded and estimated modes' opened tiles: one coarse call each
      runOffsets[0] = call.tileOffset(kh, t);
      runCounts[0] = Math.min(tileTokens, call.keys() - t * tileTokens);
      coarseCall(kh, 1);
      opened[t] = true;
      return 1;
    }
    int count = score(kh, t);
    absorbAndAccumulate(kh, t, count);
    opened[t] = true;
    return 1;
  }

  @Override
  public int scoreOnly(int kh, int t) {
    call.cancel.check();
    return scoreInto(kh, t, own);
  }

  @Override
  public float[] ownScores() {
    return own;
  }

  @Override
  public void openWeighted(int kh, int t, int count, float[] src, int srcOff, float[] maxes,
      double[] sums, int statsOff) {
    call.cancel.check();
    if (handoff != null) {
      s = handoff.freeWeights();
    }
    if (src != s) {
      System.arraycopy(src, srcOff, s, 0, g * tileTokens);
    }
    float[] alphas = handoff == null ? null : handoff.freeAlphas();
    rescales += state.absorbWeights(kernels, kh * g, g, s, tileTokens, count, maxes, sums, statsOff, alphas);
    accumulateOrPublish(kh, t, count);
    opened[t] = true;
  }

  @Override
  public boolean[] opened() {
    return opened;
  }

  // ---------------------------------------------------------------------- the group's state

  @Override
  public void resetGroup(int kh) {
    state.reset(kh * g, g);
  }

  @Override
  public float max(int h) {
    return state.m[h];
  }

  @Override
  public float sum(int h) {
    return state.l[h];
  }

  @Override
  public float[] accumulators() {
    return state.acc;
  }

  @Override
  public void setMaxAndSum(int h, float m, float l) {
    state.m[h] = m;
    state.l[h] = l;
  }

  @Override
  public void setReference(int h, float reference) {
    state.setReference(h, reference);
  }

  @Override
  public double outputNorm(int h) {
    return state.outputNorm(h);
  }

  // -------------------------------------------------------------------------------- report

  @Override
  public void reportBound(int h, double rho, double errorBound) {
    call.report.rho[h] = rho;
    call.report.errorBound[h] = errorBound;
  }

  @Override
  public void reportMiss(int h, double miss) {
    call.report.miss[h] = miss;
  }
}
