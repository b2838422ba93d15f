package hflash.engine;

import hflash.engine.pass.Encodings;
import hflash.memory.HadamardRotation;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.tiles.PrefillKernels;
import hflash.tiles.TileKernels;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntConsumer;

/**
 * Exact causal prefill tiled over queries as well as keys (the loop order of FlashAttention-2,
 * Dao arXiv:2307.08691): a block of {@link #BLOCK_ROWS} query positions times the {@code g} query
 * heads of one KV head's group is one work item; the item sweeps the K/V tiles of its prefix once,
 * so every K and V tile leaves memory once per block instead of once per query row.
 *
 * <pre>
 * item (block b, KV head kh): rows r in [b*Bq, min((b+1)*Bq, count)), positions p_r = first + r
 *   qb (Bq*g, d)    the rows' queries times the scale (and rotated, on a rotating cache),
 *                   row (r, i) = query head kh*g + i of row r
 *   for tiles t below the block's first position's tile ("full" tiles: no key masked):
 *     S = qb . K_t^T                  (Bq*g, T), K_t widened to f32 once, the prefill score kernel
 *     per row: m, l, acc online-softmax update (AttentionState), S -> weights
 *     acc += P . V_t                  V_t widened once, the prefill p.V kernel's per-tile partial
 *   for the diagonal tiles (1 or 2: those holding keys past the block's first position):
 *     the same, but row r takes only keys &lt;= p_r: its max and exp run over its first n_r keys
 *     and its weights past n_r are set to 0 (a row with n_r = 0 skips the tile's softmax step)
 *   out rows = acc / l (rotated back, on a rotating cache)
 * </pre>
 *
 * The mask costs only on the diagonal tiles. The kernels are {@link PrefillKernels} (register
 * blocks of rows x vectors over a tile widened once per block), or the decode kernels for block
 * dtypes and with {@code -Dhflash.prefillKernels=decode}. Per row and tile the arithmetic is the
 * decode path's, operation for operation (same scores, same max and exp over the same n_r keys,
 * p.V in key order with exact zeros for masked keys), so a prefill gives the bits of one
 * single-threaded decode call per row, on either set of kernels.
 *
 * <p>Threads take items from a shared counter, the blocks with the longest prefix first (causal
 * work is triangular: the last block has the most keys, so handing out the largest items first
 * leaves small ones to fill the gaps, longest-processing-time-first). An item is computed by one
 * thread from start to end, so the output bits do not depend on which thread took it, nor on the
 * thread count. Only when there are fewer items than threads (a short prompt, few KV heads) and
 * the prefix is long, each item's tiles are split into contiguous chunks, one per thread, whose
 * partial states merge in chunk order as in decode's split-K: the same bits for the same thread
 * count, float32 rounding of the single-thread result otherwise. Scratch is per thread, sized
 * once by the shape; a call allocates nothing.
 *
 * <p>Working set of an item, W1 (g = 4, d = 128, T = 128 keys per tile): the query block, the
 * scores and the accumulators are 128 KiB each (256 rows), the tile widened to f32 64 KiB for K
 * and 64 KiB for V ({@link PrefillKernels}): about 512 KiB, inside a 1-2 MiB L2. The score kernel
 * sweeps one 64-key chunk of the widened K (32 KiB) for all 256 rows before the next one, and the
 * p.V kernel one 64-channel chunk of V, so the innermost loops read L1. Why 64 rows and not 32:
 * each K/V tile then leaves memory once per 64 positions, which halved the time spent streaming
 * it in (11-15 % off the time per (row, key) pair at N = 4096 on Zen 5); 128 rows gained a few
 * percent more on a 1 MiB L2 but would leave no room on smaller ones.
 */
final class TiledPrefill {

  /** Query positions per block (times the group's heads: rows of the score block). */
  static final int BLOCK_ROWS = 64;

  private final TileKernels kernels;
  private final PrefillKernels prefill; // blocks x tiles; null: the decode kernels (block dtypes, or A/B)
  private final KvCacheLayout layout;
  private final int numHeads;
  private final int kvHeads;
  private final int d;
  private final int g;
  private final int tileTokens;
  private final int sStride; // score row stride: tileTokens rounded up to whole 64-key chunks
  private final int threads;
  private final WorkerPool pool; // the decode instance's pool, null when threads == 1
  private final Worker[] workers; // (threads), created on the first call
  private final AtomicInteger nextItem = new AtomicInteger();
  private final IntConsumer task = this::runWorker;

  // the current call, read by the workers (published by the pool's hand-over)
  private float[] q; // (count, numHeads, d)
  private float[] out; // (count, numHeads, d)
  private float scale;
  private HadamardRotation rotation; // the cache's, or null: q rows rotated in, outputs rotated back
  private int layer;
  private int first;
  private int count;
  private int blocks;
  private int splits; // chunks of tiles per item (split-K); 1 unless there are fewer items than threads
  private MemorySegment k;
  private MemorySegment v;
  private KvCache cache; // where the tiles are (a sequence's pages, or a flat cache)
  private DecodeAttention.CancelFlag cancel;

  TiledPrefill(TileKernels kernels, KvCacheLayout layout, int numHeads, int threads, WorkerPool pool) {
    this.kernels = kernels;
    this.prefill = PrefillKernels.select(kernels, Encodings.of(layout.dtype()));
    this.layout = layout;
    this.numHeads = numHeads;
    this.kvHeads = layout.kvHeads();
    this.d = layout.headDim();
    this.g = numHeads / kvHeads;
    this.tileTokens = layout.tileTokens();
    this.sStride = PrefillKernels.roundUp(tileTokens);
    this.threads = threads;
    this.pool = pool;
    this.workers = new Worker[threads];
  }

  /**
   * Rows {@code [0, count)} of {@code q} at positions {@code first + i}, attending causally to the
   * cache's keys {@code [0, first + i]}; arguments already validated. Sums the counters into
   * {@code report} (reset by the caller).
   */
  void run(int layer, float[] q, float[] out, int first, int count, float scale, HadamardRotation rotation,
      KvCache cache, DecodeAttention.CancelFlag cancel, AttentionReport report) {
    this.layer = layer;
    this.cache = cache;
    this.rotation = rotation;
    this.q = q;
    this.out = out;
    this.first = first;
    this.count = count;
    this.scale = scale;
    this.k = cache.keys();
    this.v = cache.values();
    this.cancel = cancel;
    this.blocks = (count + BLOCK_ROWS - 1) / BLOCK_ROWS;
    int items = blocks * kvHeads;
    // a short prompt over a long prefix with fewer items than threads: split each item's tiles too,
    // when every chunk keeps at least SPLIT_MIN_KEYS keys (as decode's split-K)
    int smallest = first + Math.min(count, BLOCK_ROWS); // keys of block 0, the smallest item
    splits = items == 0 || items >= threads ? 1 : Math.max(1, Math.min(threads / items,
        Math.min(smallest / DecodeAttention.SPLIT_MIN_KEYS, (smallest + tileTokens - 1) / tileTokens)));
    int lanes = splits > 1 ? items * splits : Math.min(threads, items);
    for (int i = 0; i < lanes; i++) {
      if (workers[i] == null) {
        workers[i] = new Worker();
      }
      workers[i].resetCounters();
    }
    nextItem.set(0);
    try {
      if (pool == null || lanes <= 1) {
        runWorker(0);
      } else {
        pool.run(task, lanes);
      }
      if (splits > 1) {
        mergeSplits(items);
      }
    } finally {
      this.q = this.out = null;
      this.k = this.v = null;
      this.cache = null;
    }
    for (int i = 0; i < lanes; i++) {
      Worker w = workers[i];
      report.keysScored += w.keysScored;
      report.tilesRead += w.tilesRead;
      report.kvBytesRead += w.kvBytes;
      report.rescales += w.rescales;
      report.fmas += w.fmas;
    }
    // key rows the rows attend to, per KV head, as the row-by-row path counts them
    report.keysInContext = ((long) count * first + (long) count * (count + 1) / 2) * kvHeads;
  }

  private void runWorker(int index) {
    Worker w = workers[index];
    if (splits > 1) { // fewer items than threads: worker index runs chunk index % splits of one item
      int item = index / splits;
      w.item(blocks - 1 - item / kvHeads, item % kvHeads, index % splits, splits);
      return;
    }
    int items = blocks * kvHeads;
    for (int i = nextItem.getAndIncrement(); i < items; i = nextItem.getAndIncrement()) {
      int block = blocks - 1 - i / kvHeads; // longest prefixes first
      w.item(block, i % kvHeads, 0, 1);
    }
  }

  /**
   * Split-K over the tiles of each item: merges the chunks' partial states in chunk order (the
   * rule of decode's split-K, {@link AttentionState#merge}) and finishes the rows.
   */
  private void mergeSplits(int items) {
    for (int item = 0; item < items; item++) {
      Worker first = workers[item * splits];
      for (int c = 1; c < splits; c++) {
        first.state.merge(workers[item * splits + c].state);
      }
      int block = blocks - 1 - item / kvHeads;
      first.finish(block * BLOCK_ROWS, Math.min(BLOCK_ROWS, count - block * BLOCK_ROWS), item % kvHeads);
    }
  }

  /** One thread's scratch and counters. */
  private final class Worker {
    private final int maxRows = BLOCK_ROWS * g;
    private final float[] qb = new float[maxRows * d]; // (Bq*g, d): scaled queries of the block
    private final float[] s = new float[maxRows * sStride]; // (Bq*g, sStride): scores, then weights
    // decode kernels: (Bq*g, d) p.V of the current tile; prefill kernels: the tile widened to f32
    private final float[] tileAcc = new float[prefill == null ? maxRows * d : 0];
    private final float[] kf = new float[prefill == null ? 0 : PrefillKernels.keyScratch(tileTokens, d)];
    private final float[] vf = new float[prefill == null ? 0 : PrefillKernels.valueScratch(tileTokens, d)];
    private final float[] rowMax = new float[maxRows]; // each row's max over the current tile
    private final float[] rowSums = new float[maxRows]; // each row's sum of weights over the current tile
    private final AttentionState state = new AttentionState(maxRows, d); // (Bq*g) rows
    long keysScored;
    long tilesRead;
    long kvBytes;
    long rescales;
    long fmas;

    void resetCounters() {
      keysScored = tilesRead = kvBytes = rescales = fmas = 0;
    }

    /**
     * Block {@code b} of the call for KV head {@code kh}'s group, over its tiles' chunk
     * {@code chunk} of {@code chunks} (contiguous tile ranges); with one chunk the rows are
     * finished into {@code out}, else the state holds the chunk's partial for {@link #mergeSplits}.
     */
    void item(int b, int kh, int chunk, int chunks) {
      int r0 = b * BLOCK_ROWS;
      int rows = Math.min(BLOCK_ROWS, count - r0);
      int hb = rows * g;
      int rowFloats = numHeads * d;
      for (int r = 0; r < rows; r++) { // gather (rows, g, d) from (count, numHeads, d), scaled
        int src = (r0 + r) * rowFloats + kh * g * d;
        int dst = r * g * d;
        for (int c = 0; c < g * d; c++) {
          qb[dst + c] = q[src + c] * scale;
        }
        if (rotation != null) { // the cache holds R k: score R q, as decode does
          for (int i = 0; i < g; i++) {
            rotation.rotate(qb, dst + i * d);
          }
        }
      }
      state.reset(0, hb);
      int pFirst = first + r0;
      int pLast = pFirst + rows - 1;
      int fullTiles = (pFirst + 1) / tileTokens; // tiles whose every key is <= pFirst
      int tiles = pLast / tileTokens + 1;
      int from = (int) ((long) chunk * tiles / chunks), to = (int) ((long) (chunk + 1) * tiles / chunks);
      for (int t = from; t < to; t++) {
        cancel.check();
        int keys = Math.min(tileTokens, pLast + 1 - t * tileTokens);
        long off = hflash.memory.internal.KvCacheInternals.tileOffset(cache, layer, kh, t);
        if (prefill != null) { // K widened once for the block's hb rows
          prefill.widenKeys(k, off, Encodings.of(layout.dtype()), d, keys, kf);
          prefill.scores(qb, 0, hb, d, kf, keys, s, sStride, rowMax); // the row maxima of unmasked tiles
        } else {
          kernels.scores(qb, 0, hb, d, k, off, Encodings.of(layout.dtype()), keys, s, sStride);
        }
        if (t < fullTiles && prefill != null) { // the cascade's absorb: same operations per row, same bits
          rescales += state.absorbRows(kernels, prefill, hb, s, sStride, keys, rowMax, rowSums, null);
        } else if (t < fullTiles) {
          for (int h = 0; h < hb; h++) {
            absorb(h, keys, keys);
          }
        } else {
          for (int r = 0; r < rows; r++) {
            int n = Math.max(0, Math.min(keys, pFirst + r + 1 - t * tileTokens));
            for (int i = 0; i < g; i++) {
              absorb(r * g + i, n, keys);
            }
          }
        }
        if (prefill != null) { // the per-tile partial from zero, added once: TileLoop's bits
          prefill.widenValues(v, off, Encodings.of(layout.dtype()), d, keys, tileTokens, vf);
          prefill.accumulate(s, sStride, hb, d, vf, tileTokens, keys, state.acc, 0);
        } else {
          Arrays.fill(tileAcc, 0, hb * d, 0f);
          kernels.accumulate(s, sStride, hb, d, v, off, Encodings.of(layout.dtype()), keys, tileTokens, tileAcc, 0);
          float[] acc = state.acc;
          for (int x = 0; x < hb * d; x++) { // element-wise, as TileLoop.accumulateTile: same bits
            acc[x] += tileAcc[x];
          }
        }
        keysScored += keys;
        tilesRead++;
        kvBytes += 2L * keys * layout.rowBytes();
        fmas += (long) keys * hb * (2L * d + AttentionReport.EXP_FMAS);
      }
      if (chunks == 1) {
        finish(r0, rows, kh);
      }
    }

    /**
     * Row h's online-softmax step over its first {@code n} keys of a tile of {@code keys}: the
     * decode path's {@link AttentionState#absorbScores} for one head; keys [n, keys) get weight 0.
     */
    private void absorb(int h, int n, int keys) {
      int off = h * sStride;
      if (n > 0) {
        float tileMax = kernels.max(s, off, n);
        rescales += state.raiseMax(kernels, h, 0, tileMax, null);
        state.l[h] += kernels.expSum(s, off, n, state.m[h]);
      }
      if (n < keys) {
        Arrays.fill(s, off + n, off + keys, 0f);
      }
    }

    /** acc / l of each row into its place in out (every row saw key 0, so l &gt; 0). */
    void finish(int r0, int rows, int kh) {
      for (int r = 0; r < rows; r++) {
        for (int i = 0; i < g; i++) {
          int h = r * g + i;
          float inv = 1f / state.l[h];
          int dst = (r0 + r) * numHeads * d + (kh * g + i) * d;
          for (int c = 0; c < d; c++) {
            out[dst + c] = state.acc[h * d + c] * inv;
          }
          if (rotation != null) { // sum_j p_j R v_j back to the caller's basis, as decode does
            rotation.rotateBack(out, dst);
          }
        }
      }
    }
  }
}
