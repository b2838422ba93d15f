package hflash.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Per-tile summaries of the stored keys and values, kept current by {@link KvCache} on every append
 * and truncate: what the hierarchical modes use to bound the scores of a tile without reading it.
 *
 * <p>Each (layer, kvHead, tile) and each block of {@link #BLOCK_TILES} tiles has two records,
 * little-endian, in two separate regions of one segment:
 *
 * <pre>
 *   box  ({@link #boxBytes}):   lo[d], hi[d] in the cache dtype: min/max over the stored keys of k[c]
 *   ball ({@link #ballBytes}):  centroid[d] f32   mean of the stored keys              (complete tiles only)
 *                               radius f32        max_j ||k_j - centroid||, rounded up (complete tiles only)
 *                               vmax f32          max_j ||v_j||, rounded up            (complete tiles only)
 *                               cnorm f32         ||centroid||, rounded up             (complete tiles only)
 * </pre>
 *
 * Regions: tile boxes, block boxes, tile balls, block balls, each ordered (layer, kvHead, index),
 * so the balls of one KV head's blocks (or of one block's tiles) are one dense run: the budgeted
 * mode, which bounds with balls only, streams them instead of picking a third out of every record
 * (the summaries are mostly out of cache when a call starts). lo and hi are stored in the cache's
 * dtype: they are stored key elements, so a 16-bit cache holds them exactly in 16 bits. The
 * centroid is a mean, kept in f32, and the radius is measured from the centroid as stored, so the
 * ball holds. All values are over the keys and values as stored (after the dtype's rounding), so
 * the bounds hold for what the kernels actually score. lo/hi are maintained per append in O(d);
 * centroid, radius and vmax are computed once, when a tile's last position is appended (the tile
 * becomes complete). The last, incomplete tile of a layer has lo/hi only: the engine always reads
 * it.
 *
 * <p>Where: a flat cache keeps all records in one segment of its own, reserved for its capacity. A
 * sequence of a {@link PagePool} keeps them in its pages: each page's slot holds the four regions
 * above for the page's tiles and for the blocks whose last tile is in the page, and the offsets go
 * through the page table, so forks share them and copy-on-write copies them with the page. A run
 * of consecutive records then ends with its page ({@link #ballRun}).
 *
 * <p>Memory: {@code 2d * bytes(dtype) + 4d + 12} bytes per tile per KV head, e.g. 8.1 bytes per
 * key and KV head for an f16 cache at d = 128, T = 128 (1.6 % of an f16 K+V row), plus 1/16 of
 * that for the block level.
 */
public final class TileSummaries {

  private static final ValueLayout.OfFloat F32 =
      ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  /** Tiles per block: the second level of the summary tree. */
  public static final int BLOCK_TILES = 16;

  private final KvCacheLayout layout;
  private final MemorySegment data; // a flat cache's own segment, or the pool's summary segment
  private final DType dtype; // of lo/hi: the cache's (f32 for the block dtypes)
  private final int blocks; // complete-able blocks per (layer, kvHead): tiles of the capacity / BLOCK_TILES
  private final long boxBytes;
  private final long ballBytes;
  private final long tailAt; // byte offset of radius, vmax, cnorm inside a ball record
  private final double[] centroid; // (d) scratch of complete(): appends are not concurrent
  private final SummarySlots slots; // where the records are: one slot (flat) or one per pool page
  private final long blockBoxBase; // byte offsets, inside a slot, of the regions after the tile boxes
  private final long tileBallBase;
  private final long blockBallBase;

  /** A flat cache's summaries, in their own segment from {@code arena}. */
  TileSummaries(KvCacheLayout layout, Arena arena) {
    this(layout, SummarySlots.flat((int) (layout.paddedCapacity() / layout.tileTokens())), null, arena);
  }

  /**
   * A sequence's summaries: in {@code pool}, the slot of page {@code p} (for {@code pages}' entries)
   * starts at {@code p * pageStride + partBase} and holds {@link #slotBytes} bytes.
   */
  TileSummaries(KvCacheLayout layout, MemorySegment pool, PageTable pages, long pageStride, long partBase,
      int tilesPerPage) {
    this(layout, SummarySlots.paged(pages, pageStride, partBase, tilesPerPage), pool, null);
  }

  private TileSummaries(KvCacheLayout layout, SummarySlots slots, MemorySegment pool, Arena arena) {
    this.layout = layout;
    this.dtype = layout.dtype().summaryDType();
    this.boxBytes = boxBytes(layout.headDim(), dtype);
    this.ballBytes = ballBytes(layout.headDim());
    this.tailAt = (long) layout.headDim() * Float.BYTES;
    this.centroid = new double[layout.headDim()];
    this.blocks = (int) (layout.paddedCapacity() / layout.tileTokens()) / BLOCK_TILES;
    this.slots = slots;
    long heads = (long) layout.layers() * layout.kvHeads();
    this.blockBoxBase = Math.multiplyExact(heads * slots.tiles, boxBytes);
    this.tileBallBase = Math.addExact(blockBoxBase, Math.multiplyExact(heads * slots.blocks, boxBytes));
    this.blockBallBase = Math.addExact(tileBallBase, Math.multiplyExact(heads * slots.tiles, ballBytes));
    long slot = Math.addExact(blockBallBase, Math.multiplyExact(heads * slots.blocks, ballBytes));
    this.data = slots.paged() ? pool : arena.allocate(slot, 64);
  }

  /** Bytes of one pool page's key summaries: box and ball records of its tiles and blocks, every layer and KV head. */
  static long slotBytes(KvCacheLayout layout, int tilesPerPage) {
    long heads = (long) layout.layers() * layout.kvHeads();
    return Math.multiplyExact(heads * (tilesPerPage + SummarySlots.blocksPerPage(tilesPerPage)),
        recordBytes(layout.headDim(), layout.dtype()));
  }

  /** Bytes of both records of one node: {@code 2d * bytes(dtype) + 4d + 12}. */
  public static long recordBytes(int headDim, DType dtype) {
    return boxBytes(headDim, dtype) + ballBytes(headDim);
  }

  /**
   * Bytes of a box record: lo and hi in the cache dtype's {@link DType#summaryDType summary dtype}
   * (the cache dtype, f32 for q8_0/q4_0), {@code 2d * bytes}.
   */
  public static long boxBytes(int headDim, DType dtype) {
    return 2L * headDim * dtype.summaryDType().bytes();
  }

  /** Bytes of a ball record: f32 centroid, radius, vmax, ||centroid||, {@code 4d + 12}. */
  public static long ballBytes(int headDim) {
    return (long) headDim * Float.BYTES + 3L * Float.BYTES;
  }

  /** The segment every offset indexes: the cache's own, or the pool's for a sequence (engine reads a view of it). */
  MemorySegment data() {
    return data;
  }

  private long index(int layer, int kvHead, int i, int perHead) {
    return ((long) layer * layout.kvHeads() + kvHead) * perHead + i;
  }

  /**
   * How many of the {@code count} tiles (blocks when {@code block}) from {@code index} on have their
   * ball records one after the other, {@link #ballBytes()} apart, as a run from the first's offset:
   * all of them for a flat cache; for a sequence those in the same page.
   */
  public int ballRun(int index, int count, boolean block) {
    if (!slots.paged() || count <= 1) {
      return count;
    }
    if (!block) {
      return Math.min(count, slots.tiles - index % slots.tiles);
    }
    int page = slots.blockPage(index);
    int run = 1;
    while (run < count && slots.blockPage(index + run) == page) {
      run++;
    }
    return run;
  }

  /** Byte offset of the box record (lo, hi) of (layer, kvHead, tile). */
  public long boxOffset(int layer, int kvHead, int tile) {
    return slots.tileSlot(tile) + index(layer, kvHead, slots.tileIndex(tile), slots.tiles) * boxBytes;
  }

  /** Byte offset of the ball record (centroid, radius, vmax, ||c||) of (layer, kvHead, tile). */
  public long ballOffset(int layer, int kvHead, int tile) {
    return slots.tileSlot(tile) + tileBallBase + index(layer, kvHead, slots.tileIndex(tile), slots.tiles) * ballBytes;
  }

  /**
   * Byte offset of the box record of block {@code block} = tiles {@code [16 block, 16 block + 16)}
   * of (layer, kvHead): valid once all 16 tiles are complete. lo/hi are the tiles' min/max; in the
   * block's ball record the centroid is their centroids' mean, the radius
   * {@code max_t (||c_t - c_B|| + r_t)} (so the block's ball holds every tile's ball), vmax the
   * tiles' max.
   */
  public long blockBoxOffset(int layer, int kvHead, int block) {
    return slots.blockSlot(block) + blockBoxBase
        + index(layer, kvHead, slots.blockIndex(block), slots.blocks) * boxBytes;
  }

  /** Byte offset of the ball record of block {@code block} of (layer, kvHead). */
  public long blockBallOffset(int layer, int kvHead, int block) {
    return slots.blockSlot(block) + blockBallBase
        + index(layer, kvHead, slots.blockIndex(block), slots.blocks) * ballBytes;
  }

  /** Bytes of one box record. */
  public long boxBytes() {
    return boxBytes;
  }

  /** Bytes of one ball record (also the stride between consecutive ball records). */
  public long ballBytes() {
    return ballBytes;
  }

  /** Bytes of both records of one node. */
  public long recordBytes() {
    return boxBytes + ballBytes;
  }

  /** Bytes reserved for all summaries: a flat cache's segment; 0 for a sequence (they are in the pool's pages). */
  public long bytesReserved() {
    return slots.paged() ? 0 : data.byteSize();
  }

  // ------------------------------------------------------------------ maintenance (KvCache)

  /** Folds stored position {@code pos} of (layer, kvHead) into its tile's lo/hi. */
  void addKey(Placement cache, int layer, int kvHead, int pos) {
    int d = layout.headDim();
    int t = pos / layout.tileTokens();
    boolean first = pos % layout.tileTokens() == 0;
    long rec = boxOffset(layer, kvHead, t);
    DType dt = dtype;
    int b = dt.bytes();
    for (int c = 0; c < d; c++) {
      // a stored element of the dtype (or a dequantized one, exact in f32): lo/hi hold it exactly
      float x = cache.storedKey(layer, kvHead, pos, c);
      long lo = rec + (long) c * b;
      long hi = rec + (long) (d + c) * b;
      if (first) {
        dt.write(data, lo, x);
        dt.write(data, hi, x);
      } else {
        dt.write(data, lo, Math.min(dt.read(data, lo), x));
        dt.write(data, hi, Math.max(dt.read(data, hi), x));
      }
    }
  }

  /** Computes centroid, radius and vmax of a tile whose T positions are all stored. */
  void complete(Placement cache, int layer, int kvHead, int tile) {
    int d = layout.headDim();
    int tt = layout.tileTokens();
    long rec = ballOffset(layer, kvHead, tile);
    java.util.Arrays.fill(centroid, 0);
    for (int j = 0; j < tt; j++) {
      int pos = tile * tt + j;
      for (int c = 0; c < d; c++) {
        centroid[c] += cache.storedKey(layer, kvHead, pos, c);
      }
    }
    for (int c = 0; c < d; c++) {
      centroid[c] /= tt;
      data.set(F32, rec + (long) c * Float.BYTES, (float) centroid[c]);
    }
    double radius = 0, vmax = 0;
    for (int j = 0; j < tt; j++) {
      int pos = tile * tt + j;
      double r2 = 0, v2 = 0;
      for (int c = 0; c < d; c++) {
        // distance to the centroid as stored (rounded to f32), so the bound holds for it
        double e = cache.storedKey(layer, kvHead, pos, c)
            - data.get(F32, rec + (long) c * Float.BYTES);
        r2 += e * e;
        double v = cache.storedValue(layer, kvHead, pos, c);
        v2 += v * v;
      }
      radius = Math.max(radius, Math.sqrt(r2));
      vmax = Math.max(vmax, Math.sqrt(v2));
    }
    // round up with a margin for the double arithmetic: the bounds must never be too small
    data.set(F32, rec + tailAt, Math.nextUp((float) (radius * (1 + 1e-9))));
    data.set(F32, rec + tailAt + Float.BYTES, Math.nextUp((float) (vmax * (1 + 1e-9))));
    storeCentroidNorm(rec, d);
    if (tile % BLOCK_TILES == BLOCK_TILES - 1 && tile / BLOCK_TILES < blocks) {
      completeBlock(layer, kvHead, tile / BLOCK_TILES);
    }
  }

  /** Block record from its 16 complete tile records. */
  private void completeBlock(int layer, int kvHead, int block) {
    int d = layout.headDim();
    long box = blockBoxOffset(layer, kvHead, block);
    long rec = blockBallOffset(layer, kvHead, block);
    int t0 = block * BLOCK_TILES;
    java.util.Arrays.fill(centroid, 0);
    float vmax = 0;
    for (int c = 0; c < d; c++) {
      float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
      for (int t = t0; t < t0 + BLOCK_TILES; t++) {
        lo = Math.min(lo, lo(layer, kvHead, t, c));
        hi = Math.max(hi, hi(layer, kvHead, t, c));
        centroid[c] += centroid(layer, kvHead, t, c) / (double) BLOCK_TILES;
      }
      dtype.write(data, box + (long) c * dtype.bytes(), lo); // min/max of stored values: exact
      dtype.write(data, box + (long) (d + c) * dtype.bytes(), hi);
      data.set(F32, rec + (long) c * Float.BYTES, (float) centroid[c]);
    }
    double radius = 0;
    for (int t = t0; t < t0 + BLOCK_TILES; t++) {
      double dist2 = 0;
      for (int c = 0; c < d; c++) {
        double e = centroid(layer, kvHead, t, c) - (double) data.get(F32, rec + (long) c * Float.BYTES);
        dist2 += e * e;
      }
      radius = Math.max(radius, Math.sqrt(dist2) + radius(layer, kvHead, t));
      vmax = Math.max(vmax, vmax(layer, kvHead, t));
    }
    data.set(F32, rec + tailAt, Math.nextUp((float) (radius * (1 + 1e-9))));
    data.set(F32, rec + tailAt + Float.BYTES, vmax);
    storeCentroidNorm(rec, d);
  }

  /** ||centroid|| of the record at rec, as stored (rounded up). */
  private void storeCentroidNorm(long rec, int d) {
    double sq = 0;
    for (int c = 0; c < d; c++) {
      double x = data.get(F32, rec + (long) c * Float.BYTES);
      sq += x * x;
    }
    data.set(F32, rec + tailAt + 2L * Float.BYTES, Math.nextUp((float) (Math.sqrt(sq) * (1 + 1e-9))));
  }

  /** ||centroid|| of a complete tile (block when {@code block}), rounded up. */
  public float centroidNorm(int layer, int kvHead, int index, boolean block) {
    long rec = block ? blockBallOffset(layer, kvHead, index) : ballOffset(layer, kvHead, index);
    return data.get(F32, rec + tailAt + 2L * Float.BYTES);
  }

  /** Recomputes lo/hi of the tile holding positions [tileStart, length) after a truncate. */
  void rebuildOpenTile(Placement cache, int layer, int kvHead, int length) {
    int tt = layout.tileTokens();
    if (length % tt == 0) {
      return; // no open tile: every tile below length is complete and unchanged
    }
    for (int pos = length / tt * tt; pos < length; pos++) {
      addKey(cache, layer, kvHead, pos);
    }
  }

  // ----------------------------------------------------------------------------- readers

  /** lo[c] of (layer, kvHead, tile). */
  public float lo(int layer, int kvHead, int tile, int c) {
    return dtype.read(data, boxOffset(layer, kvHead, tile) + (long) c * dtype.bytes());
  }

  /** hi[c] of (layer, kvHead, tile). */
  public float hi(int layer, int kvHead, int tile, int c) {
    return dtype.read(data, boxOffset(layer, kvHead, tile) + (long) (layout.headDim() + c) * dtype.bytes());
  }

  /** centroid[c] of a complete tile. */
  public float centroid(int layer, int kvHead, int tile, int c) {
    return data.get(F32, ballOffset(layer, kvHead, tile) + (long) c * Float.BYTES);
  }

  /** Radius of a complete tile around its centroid (rounded up). */
  public float radius(int layer, int kvHead, int tile) {
    return data.get(F32, ballOffset(layer, kvHead, tile) + tailAt);
  }

  /** Radius of a complete block (rounded up). */
  public float blockRadius(int layer, int kvHead, int block) {
    return data.get(F32, blockBallOffset(layer, kvHead, block) + tailAt);
  }

  /** Largest value norm of a complete block. */
  public float blockVmax(int layer, int kvHead, int block) {
    return data.get(F32, blockBallOffset(layer, kvHead, block) + tailAt + Float.BYTES);
  }

  /** Largest value norm of a complete tile (rounded up). */
  public float vmax(int layer, int kvHead, int tile) {
    return data.get(F32, ballOffset(layer, kvHead, tile) + tailAt + Float.BYTES);
  }
}
