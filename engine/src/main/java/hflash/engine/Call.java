package hflash.engine;

import hflash.engine.pass.TilePlan;
import hflash.memory.KvCache;
import hflash.memory.TileSummaries;
import hflash.memory.ValueSummaries;
import hflash.memory.internal.KvCacheInternals;
import java.lang.foreign.MemorySegment;

/**
 * The inputs of the running decode call, shared read-only by its workers. The buffers and the plan
 * live as long as the {@link DecodeAttention}; {@link #begin} sets the per-call fields in one place
 * (after the plan) and {@link #end} clears them, so no segment of a call outlives it.
 */
final class Call {

  final float[] qs; // (numHeads, d): q * scale
  final double[] qNorm; // (numHeads): ||q_h * scale||
  final TilePlan plan;
  final AttentionReport report;
  final DecodeAttention.CancelFlag cancel;
  private final KvCache cache;

  // the running call; null / 0 between calls
  private ModeConfig mode;
  private int layer;
  private int keys;
  private MemorySegment k;
  private MemorySegment v;
  private MemorySegment samples; // sampled mode
  private MemorySegment summarySegment; // bounded and estimated modes
  private TileSummaries summaries;
  private ValueSummaries valueSummaries;

  Call(KvCache cache, int numHeads, int headDim, TilePlan plan, AttentionReport report,
      DecodeAttention.CancelFlag cancel) {
    this.cache = cache;
    this.qs = new float[numHeads * headDim];
    this.qNorm = new double[numHeads];
    this.plan = plan;
    this.report = report;
    this.cancel = cancel;
  }

  /** Starts a call over keys [0, keys) of {@code layer} in {@code mode}; the plan is already made. */
  void begin(int layer, int keys, ModeConfig mode) {
    this.mode = mode;
    this.layer = layer;
    this.keys = keys;
    this.k = cache.keys();
    this.v = cache.values();
    switch (mode) {
      case ModeConfig.Exact e -> { }
      case ModeConfig.Sampled s -> samples = KvCacheInternals.samples(cache);
      default -> { // the bounded and estimated modes read the summaries
        summaries = KvCacheInternals.tileSummaries(cache);
        summarySegment = KvCacheInternals.summaries(cache);
        valueSummaries = KvCacheInternals.valueSummaries(cache);
      }
    }
  }

  /** Ends the call: drops its segments. */
  void end() {
    mode = null;
    k = v = samples = summarySegment = null;
    summaries = null;
    valueSummaries = null;
  }

  ModeConfig mode() {
    return mode;
  }

  int layer() {
    return layer;
  }

  int keys() {
    return keys;
  }

  MemorySegment k() {
    return k;
  }

  MemorySegment v() {
    return v;
  }

  MemorySegment samples() {
    return samples;
  }

  MemorySegment summarySegment() {
    return summarySegment;
  }

  TileSummaries summaries() {
    return summaries;
  }

  ValueSummaries valueSummaries() {
    return valueSummaries;
  }

  /** Byte offset of tile t of KV head kh of this call's layer, through the cache's page table. */
  long tileOffset(int kh, int t) {
    return KvCacheInternals.tileOffset(cache, layer, kh, t);
  }

  float key(int kh, int pos, int c) {
    return cache.key(layer, kh, pos, c);
  }

  long sampleBlockOffset(int kh, int phase, int block) {
    return KvCacheInternals.sampleBlockOffset(cache, layer, kh, phase, block);
  }
}
