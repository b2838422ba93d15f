package hflash.engine.pass;

import hflash.memory.KvCacheLayout;
import hflash.memory.TileSummaries;
import hflash.memory.ValueSummaries;
import hflash.tiles.TileKernels;
import java.lang.foreign.MemorySegment;

/**
 * The narrow view a {@link ModeStrategy} has of one worker during one decode call: the call's
 * inputs, the worker's tile reads (which count keys, bytes and FMAs and hand p.V to a pipeline's
 * second unit when there is one), the group's online-softmax state and the report's per-head
 * bounds. Implemented by the engine's tile loop; a strategy never sees threads, the scheduler or
 * the cache object.
 *
 * <p>Score buffers are (g, tileTokens) row-major: head {@code i} of the group at
 * {@code i * tileTokens}. Heads are global indices {@code h = kh * g + i}.
 */
public interface Tiles {

  // ----------------------------------------------------------------------- the call's inputs

  TileKernels kernels();

  KvCacheLayout layout();

  /** Query heads per KV head (GQA group size). */
  int group();

  int layer();

  /** Keys of the call: positions [0, keys) are attended. */
  int keys();

  /** The call's tile plan (window mapping, budget). */
  TilePlan plan();

  /** (numHeads, d): q * scale, rotated when the cache rotates. */
  float[] queries();

  /** ||q_h * scale||. */
  double queryNorm(int h);

  MemorySegment keySegment();

  /** Byte offset of tile t of KV head kh in the key and value segments (a sequence's page or a flat cache). */
  long tileOffset(int kh, int t);

  /** Key element c of position pos of KV head kh as stored; a slow path for strides the sample store cannot serve. */
  float key(int kh, int pos, int c);

  MemorySegment valueSegment();

  /** The key-sample store (sampled mode). */
  MemorySegment sampleSegment();

  /** Byte offset of K-sample block {@code block} of {@code phase} for KV head kh. */
  long sampleBlockOffset(int kh, int phase, int block);

  /** Key summaries (bounded and estimated modes). */
  TileSummaries summaries();

  /** The segment {@link #summaries()} index into. */
  MemorySegment summarySegment();

  /** Value summaries (output-error targets, estimated mode). */
  ValueSummaries valueSummaries();

  /** Throws {@link java.util.concurrent.CancellationException} when the call was cancelled or timed out. */
  void checkCancelled();

  // ------------------------------------------------------------------------------ tile reads

  /**
   * Scores of tile t (its K) for KV head kh's group into {@link #weights()} (a pipeline slot or the
   * worker's own buffer; may wait for a free slot); returns the tile's keys in the call.
   */
  int score(int kh, int t);

  /** The buffer {@link #score} wrote: scores, then weights once absorbed. */
  float[] weights();

  /**
   * The online-softmax update of the tile {@link #score} left in {@link #weights()}, then its p.V
   * (here, or handed to the pipeline's second unit).
   */
  void absorbAndAccumulate(int kh, int t, int count);

  /**
   * As {@link #absorbAndAccumulate} against each head's fixed reference (sampled mode): a tile
   * whose max beats it by more than {@code guard} rescales; tracks each head's true max in
   * {@code trueMax} (numHeads) and counts guard firings.
   */
  void absorbWithReference(int kh, int t, int count, float guard, float[] trueMax);

  /**
   * Whether {@link #decodeRun} runs one coarse kernel call per run of tiles (the native decode
   * kernel, on a worker without a pipeline hand-off); false: it scores and absorbs tile by tile.
   */
  boolean coarse();

  /**
   * Exact online softmax over the plan's virtual tiles [from, to) of KV head kh, none of whose
   * keys is masked: per tile, what {@link #score} then {@link #absorbAndAccumulate} do, but as one
   * kernel call ({@link TileKernels#decodeTiles}) per run of tiles with each tile's own byte
   * offset, so a paged sequence's tiles need not be adjacent. Counts what the per-tile path counts
   * and checks cancellation between calls.
   */
  void decodeRun(int kh, int from, int to);

  /** Reads tile t exactly into the state (score, absorb, p.V) and marks it opened; returns 1. */
  int open(int kh, int t);

  /**
   * Scores of tile t (its K only) into the worker's own buffer ({@link #ownScores()}), never a
   * pipeline slot; returns the tile's keys in the call.
   */
  int scoreOnly(int kh, int t);

  /** The worker's own (g, tileTokens) score buffer. */
  float[] ownScores();

  /**
   * Opens tile t from weights already computed ({@code exp(s - tileMax)} per head, rows of
   * {@code src} from {@code srcOff}), with each head's tile max and weight sum at
   * {@code statsOff}: the state update and p.V (reads V only). Marks the tile opened.
   */
  void openWeighted(int kh, int t, int count, float[] src, int srcOff, float[] maxes, double[] sums,
      int statsOff);

  /**
   * p.V of weights {@code w} (g, tileTokens) over tile t's V into {@code acc} (g, d), which must be
   * zeroed; counts the V bytes, the FMAs and the tile. Not part of the state.
   */
  void accumulateInto(int kh, int t, int count, float[] w, float[] acc);

  /** Waits until every handed-off tile has been accumulated (no-op without a pipeline). */
  void drain();

  /** (maxTiles): tiles read (or deliberately skipped) in this KV head's pass. */
  boolean[] opened();

  // ------------------------------------------------------------------------------- counters

  /** Counts the exp work of {@code count} weights for each head of the group. */
  void countExps(int count);

  void countFmas(long fmas);

  void countSummaryBytes(long bytes);

  void countSampleBytes(long bytes);

  // ---------------------------------------------------------------------- the group's state

  /** Resets heads [kh * g, kh * g + g) of the state. */
  void resetGroup(int kh);

  /** Running max m_h. */
  float max(int h);

  /** Running sum l_h. */
  float sum(int h);

  /** (numHeads, d): the running accumulators acc_h, read and written in place. */
  float[] accumulators();

  /** Sets m_h and l_h (a strategy that combines its own estimate into the state). */
  void setMaxAndSum(int h, float m, float l);

  /** Fixes head h's softmax reference (sampled mode). */
  void setReference(int h, float reference);

  /** ||acc_h / l_h||. */
  double outputNorm(int h);

  // -------------------------------------------------------------------------------- report

  /** Head h's unread-mass share and error bound. */
  void reportBound(int h, double rho, double errorBound);

  /** Head h's estimate miss (sampled mode: true max minus the estimate). */
  void reportMiss(int h, double miss);
}
