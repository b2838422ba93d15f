package hflash.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Value-side summaries: for each complete tile and each complete block of
 * {@link TileSummaries#BLOCK_TILES} tiles of every (layer, kvHead), a ball holding every stored
 * value row of the node. Kept current by {@link KvCache} (computed once, when a tile completes); the
 * certified mode's output bound prices a skipped node at its mass times the distance from the
 * output to this ball, instead of its mass times the largest value norm (docs/HIERARCHICAL.md).
 *
 * <p>One record per node, little-endian f32, {@link #recordBytes} = {@code 4d + 4}:
 *
 * <pre>
 *   centroid[d]   mean of the stored value rows (as stored, after the dtype's rounding)
 *   radius        max_j ||v_j - centroid||, measured from the centroid as stored, rounded up
 * </pre>
 *
 * A block's centroid is the mean of its tiles' centroids and its radius
 * {@code max_t (||c_t - c_B|| + r_t)}, rounded up, so the block's ball holds every tile's ball. Two
 * regions: tile records, then block records, each ordered (layer, kvHead, index): in a flat cache's
 * own segment, or, for a sequence of a {@link PagePool}, in each page's slot for the page's tiles
 * and the blocks whose last tile is in it (as {@link TileSummaries}). A separate class
 * from {@link TileSummaries} (key bounds): the two are read by different stages.
 */
public final class ValueSummaries {

  private static final ValueLayout.OfFloat F32 =
      ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  private static final int BLOCK_TILES = TileSummaries.BLOCK_TILES;

  private final KvCacheLayout layout;
  private final MemorySegment data; // a flat cache's own segment (tile records, then block records), or the pool's
  private final int blocks; // complete-able blocks per (layer, kvHead) of the capacity
  private final long recordBytes;
  private final double[] centroid; // (d) scratch: appends are not concurrent within a layer's head
  private final SummarySlots slots; // where the records are: one slot (flat) or one per pool page
  private final long blockBase; // inside a slot

  /** A flat cache's records, in their own segment from {@code arena}. */
  ValueSummaries(KvCacheLayout layout, Arena arena) {
    this(layout, SummarySlots.flat((int) (layout.paddedCapacity() / layout.tileTokens())), null, arena);
  }

  /** A sequence's records: page {@code p}'s slot at {@code p * pageStride + partBase} of {@code pool}. */
  ValueSummaries(KvCacheLayout layout, MemorySegment pool, PageTable pages, long pageStride, long partBase,
      int tilesPerPage) {
    this(layout, SummarySlots.paged(pages, pageStride, partBase, tilesPerPage), pool, null);
  }

  private ValueSummaries(KvCacheLayout layout, SummarySlots slots, MemorySegment pool, Arena arena) {
    this.layout = layout;
    this.blocks = (int) (layout.paddedCapacity() / layout.tileTokens()) / BLOCK_TILES;
    this.recordBytes = recordBytes(layout.headDim());
    this.slots = slots;
    long heads = (long) layout.layers() * layout.kvHeads();
    this.blockBase = Math.multiplyExact(heads * slots.tiles, recordBytes);
    long slot = Math.addExact(blockBase, Math.multiplyExact(heads * slots.blocks, recordBytes));
    this.data = slots.paged() ? pool : arena.allocate(slot, 64);
    this.centroid = new double[layout.headDim()];
  }

  /** Bytes of one pool page's value records: its tiles and blocks, every layer and KV head. */
  static long slotBytes(KvCacheLayout layout, int tilesPerPage) {
    long heads = (long) layout.layers() * layout.kvHeads();
    return Math.multiplyExact(heads * (tilesPerPage + SummarySlots.blocksPerPage(tilesPerPage)),
        recordBytes(layout.headDim()));
  }

  /** Bytes of one record: f32 centroid and radius, {@code 4d + 4}. */
  public static long recordBytes(int headDim) {
    return (long) headDim * Float.BYTES + Float.BYTES;
  }

  /** Bytes of one record. */
  public long recordBytes() {
    return recordBytes;
  }

  /** Bytes reserved for all records: a flat cache's segment; 0 for a sequence (its records are in the pool's pages). */
  public long bytesReserved() {
    return slots.paged() ? 0 : data.byteSize();
  }

  private long index(int layer, int kvHead, int i, int perHead) {
    return ((long) layer * layout.kvHeads() + kvHead) * perHead + i;
  }

  /** Byte offset of the record of (layer, kvHead, tile). */
  public long tileOffset(int layer, int kvHead, int tile) {
    return slots.tileSlot(tile) + index(layer, kvHead, slots.tileIndex(tile), slots.tiles) * recordBytes;
  }

  /** Byte offset of the record of block {@code block} (tiles {@code [16 block, 16 block + 16)}). */
  public long blockOffset(int layer, int kvHead, int block) {
    return slots.blockSlot(block) + blockBase
        + index(layer, kvHead, slots.blockIndex(block), slots.blocks) * recordBytes;
  }

  /** Element c of the value centroid of the record at {@code offset}. */
  public float centroid(long offset, int c) {
    return data.get(F32, offset + (long) c * Float.BYTES);
  }

  /** Copies the value centroid of the record at {@code offset} into {@code dst[at, at + d)}. */
  public void centroid(long offset, float[] dst, int at) {
    MemorySegment.copy(data, F32, offset, dst, at, layout.headDim());
  }

  /** Radius of the record at {@code offset} (rounded up). */
  public float radius(long offset) {
    return data.get(F32, offset + (long) layout.headDim() * Float.BYTES);
  }

  /** Computes the record of a tile whose T positions are all stored (and its block's when it is the last). */
  void complete(Placement cache, int layer, int kvHead, int tile) {
    int d = layout.headDim();
    int tt = layout.tileTokens();
    long rec = tileOffset(layer, kvHead, tile);
    java.util.Arrays.fill(centroid, 0);
    for (int j = 0; j < tt; j++) {
      int pos = tile * tt + j;
      for (int c = 0; c < d; c++) {
        centroid[c] += cache.storedValue(layer, kvHead, pos, c);
      }
    }
    for (int c = 0; c < d; c++) {
      data.set(F32, rec + (long) c * Float.BYTES, (float) (centroid[c] / tt));
    }
    double radius = 0;
    for (int j = 0; j < tt; j++) {
      int pos = tile * tt + j;
      double r2 = 0;
      for (int c = 0; c < d; c++) {
        // from the centroid as stored (rounded to f32), so the ball holds for it
        double e = cache.storedValue(layer, kvHead, pos, c) - centroid(rec, c);
        r2 += e * e;
      }
      radius = Math.max(radius, Math.sqrt(r2));
    }
    data.set(F32, rec + (long) d * Float.BYTES, Math.nextUp((float) (radius * (1 + 1e-9))));
    if (tile % BLOCK_TILES == BLOCK_TILES - 1
        && tile / BLOCK_TILES < blocks) {
      completeBlock(layer, kvHead, tile / BLOCK_TILES);
    }
  }

  private void completeBlock(int layer, int kvHead, int block) {
    int d = layout.headDim();
    long rec = blockOffset(layer, kvHead, block);
    int t0 = block * BLOCK_TILES;
    java.util.Arrays.fill(centroid, 0);
    for (int t = t0; t < t0 + BLOCK_TILES; t++) {
      long tr = tileOffset(layer, kvHead, t);
      for (int c = 0; c < d; c++) {
        centroid[c] += centroid(tr, c) / (double) BLOCK_TILES;
      }
    }
    for (int c = 0; c < d; c++) {
      data.set(F32, rec + (long) c * Float.BYTES, (float) centroid[c]);
    }
    double radius = 0;
    for (int t = t0; t < t0 + TileSummaries.BLOCK_TILES; t++) {
      long tr = tileOffset(layer, kvHead, t);
      double dist2 = 0;
      for (int c = 0; c < d; c++) {
        double e = (double) centroid(tr, c) - centroid(rec, c);
        dist2 += e * e;
      }
      radius = Math.max(radius, Math.sqrt(dist2) + radius(tr));
    }
    data.set(F32, rec + (long) d * Float.BYTES, Math.nextUp((float) (radius * (1 + 1e-9))));
  }
}
