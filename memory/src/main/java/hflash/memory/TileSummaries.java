package hflash.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Per-tile summaries of the stored keys and values, kept current by {@link KvCache} on every append
 * and truncate: what the hierarchical modes use to bound the scores of a tile without reading it.
 *
 * <p>One record of {@link #recordFloats(int) 3d + 3} little-endian f32 per (layer, kvHead, tile):
 *
 * <pre>
 *   [0, d)      lo[c]      min over the tile's stored keys of k[c]
 *   [d, 2d)     hi[c]      max over the tile's stored keys of k[c]
 *   [2d, 3d)    centroid   mean of the stored keys            (complete tiles only)
 *   3d          radius     max_j ||k_j - centroid||, rounded up (complete tiles only)
 *   3d + 1      vmax       max_j ||v_j||, rounded up            (complete tiles only)
 *   3d + 3      cnorm      ||centroid||, rounded up             (complete tiles only)
 * </pre>
 *
 * All values are over the keys and values as stored (after the dtype's rounding), so the bounds
 * hold for what the kernels actually score. lo/hi are maintained per append in O(d); centroid,
 * radius and vmax are computed once, when a tile's last position is appended (the tile becomes
 * complete). The last, incomplete tile of a layer has lo/hi only: the engine always reads it.
 * Memory: {@code (3d + 3) * 4} bytes per tile per KV head, e.g. 24 bytes per key and KV head for
 * d = 128, T = 64 (4.7 % of an f16 K+V row), plus 1/16 of that for the block level.
 */
public final class TileSummaries {

  private static final ValueLayout.OfFloat F32 =
      ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  /** Tiles per block: the second level of the summary tree. */
  public static final int BLOCK_TILES = 16;

  private final KvCacheLayout layout;
  private final MemorySegment data; // (layers, kvHeads, tiles, 3d + 3) f32, then (layers, kvHeads, blocks, 3d + 3)
  private final int tiles; // tiles per (layer, kvHead)
  private final int blocks; // complete-able blocks per (layer, kvHead): tiles / BLOCK_TILES
  private final long blockBase; // byte offset of the block records
  private final long recordBytes;
  private final double[] centroid; // (d) scratch of complete(): appends are not concurrent

  TileSummaries(KvCacheLayout layout, Arena arena) {
    this.layout = layout;
    this.tiles = (int) (layout.paddedCapacity() / layout.tileTokens());
    this.recordBytes = (long) recordFloats(layout.headDim()) * Float.BYTES;
    this.centroid = new double[layout.headDim()];
    this.blocks = tiles / BLOCK_TILES;
    long heads = (long) layout.layers() * layout.kvHeads();
    this.blockBase = Math.multiplyExact(heads * tiles, recordBytes);
    this.data = arena.allocate(Math.addExact(blockBase, Math.multiplyExact(heads * blocks, recordBytes)), 64);
  }

  /** Floats in one record: {@code 3d + 3}. */
  public static int recordFloats(int headDim) {
    return 3 * headDim + 3;
  }

  /** The whole summary segment (read-only view handed out by {@link KvCache#summaries()}). */
  MemorySegment data() {
    return data;
  }

  /** Byte offset of the record of (layer, kvHead, tile). */
  public long offset(int layer, int kvHead, int tile) {
    return (((long) layer * layout.kvHeads() + kvHead) * tiles + tile) * recordBytes;
  }

  /**
   * Byte offset of the record of block {@code block} = tiles {@code [16 block, 16 block + 16)} of
   * (layer, kvHead): valid once all 16 tiles are complete. lo/hi are the tiles' min/max, the
   * centroid their mean, the radius {@code max_t (||c_t - c_B|| + r_t)} (so the block's ball
   * holds every tile's ball), vmax the tiles' max.
   */
  public long blockOffset(int layer, int kvHead, int block) {
    return blockBase + (((long) layer * layout.kvHeads() + kvHead) * blocks + block) * recordBytes;
  }

  /** Bytes of one record. */
  public long recordBytes() {
    return recordBytes;
  }

  /** Bytes reserved for all summaries. */
  public long bytesReserved() {
    return data.byteSize();
  }

  // ------------------------------------------------------------------ maintenance (KvCache)

  /** Folds stored position {@code pos} of (layer, kvHead) into its tile's lo/hi. */
  void addKey(MemorySegment keys, int layer, int kvHead, int pos) {
    int d = layout.headDim();
    int t = pos / layout.tileTokens();
    boolean first = pos % layout.tileTokens() == 0;
    long rec = offset(layer, kvHead, t);
    DType dt = layout.dtype();
    for (int c = 0; c < d; c++) {
      float x = dt.read(keys, layout.keyOffset(layer, kvHead, pos, c));
      long lo = rec + (long) c * Float.BYTES;
      long hi = rec + (long) (d + c) * Float.BYTES;
      if (first) {
        data.set(F32, lo, x);
        data.set(F32, hi, x);
      } else {
        data.set(F32, lo, Math.min(data.get(F32, lo), x));
        data.set(F32, hi, Math.max(data.get(F32, hi), x));
      }
    }
  }

  /** Computes centroid, radius and vmax of a tile whose T positions are all stored. */
  void complete(MemorySegment keys, MemorySegment values, int layer, int kvHead, int tile) {
    int d = layout.headDim();
    int tt = layout.tileTokens();
    DType dt = layout.dtype();
    long rec = offset(layer, kvHead, tile);
    java.util.Arrays.fill(centroid, 0);
    for (int j = 0; j < tt; j++) {
      int pos = tile * tt + j;
      for (int c = 0; c < d; c++) {
        centroid[c] += dt.read(keys, layout.keyOffset(layer, kvHead, pos, c));
      }
    }
    for (int c = 0; c < d; c++) {
      centroid[c] /= tt;
      data.set(F32, rec + (long) (2 * d + c) * Float.BYTES, (float) centroid[c]);
    }
    double radius = 0, vmax = 0;
    for (int j = 0; j < tt; j++) {
      int pos = tile * tt + j;
      double r2 = 0, v2 = 0;
      for (int c = 0; c < d; c++) {
        // distance to the centroid as stored (rounded to f32), so the bound holds for it
        double e = dt.read(keys, layout.keyOffset(layer, kvHead, pos, c))
            - data.get(F32, rec + (long) (2 * d + c) * Float.BYTES);
        r2 += e * e;
        double v = dt.read(values, layout.valueOffset(layer, kvHead, pos, c));
        v2 += v * v;
      }
      radius = Math.max(radius, Math.sqrt(r2));
      vmax = Math.max(vmax, Math.sqrt(v2));
    }
    // round up with a margin for the double arithmetic: the bounds must never be too small
    data.set(F32, rec + (long) (3 * d) * Float.BYTES, Math.nextUp((float) (radius * (1 + 1e-9))));
    data.set(F32, rec + (long) (3 * d + 1) * Float.BYTES, Math.nextUp((float) (vmax * (1 + 1e-9))));
    storeCentroidNorm(rec, d);
    if (tile % BLOCK_TILES == BLOCK_TILES - 1 && tile / BLOCK_TILES < blocks) {
      completeBlock(layer, kvHead, tile / BLOCK_TILES);
    }
  }

  /** Block record from its 16 complete tile records. */
  private void completeBlock(int layer, int kvHead, int block) {
    int d = layout.headDim();
    long rec = blockOffset(layer, kvHead, block);
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
      data.set(F32, rec + (long) c * Float.BYTES, lo);
      data.set(F32, rec + (long) (d + c) * Float.BYTES, hi);
      data.set(F32, rec + (long) (2 * d + c) * Float.BYTES, (float) centroid[c]);
    }
    double radius = 0;
    for (int t = t0; t < t0 + BLOCK_TILES; t++) {
      double dist2 = 0;
      for (int c = 0; c < d; c++) {
        double e = centroid(layer, kvHead, t, c) - (double) data.get(F32, rec + (long) (2 * d + c) * Float.BYTES);
        dist2 += e * e;
      }
      radius = Math.max(radius, Math.sqrt(dist2) + radius(layer, kvHead, t));
      vmax = Math.max(vmax, vmax(layer, kvHead, t));
    }
    data.set(F32, rec + (long) (3 * d) * Float.BYTES, Math.nextUp((float) (radius * (1 + 1e-9))));
    data.set(F32, rec + (long) (3 * d + 1) * Float.BYTES, vmax);
    storeCentroidNorm(rec, d);
  }

  /** ||centroid|| of the record at rec, as stored (rounded up). */
  private void storeCentroidNorm(long rec, int d) {
    double sq = 0;
    for (int c = 0; c < d; c++) {
      double x = data.get(F32, rec + (long) (2 * d + c) * Float.BYTES);
      sq += x * x;
    }
    data.set(F32, rec + (long) (3 * d + 2) * Float.BYTES, Math.nextUp((float) (Math.sqrt(sq) * (1 + 1e-9))));
  }

  /** ||centroid|| of a complete tile (block when {@code block}), rounded up. */
  public float centroidNorm(int layer, int kvHead, int index, boolean block) {
    long rec = block ? blockOffset(layer, kvHead, index) : offset(layer, kvHead, index);
    return data.get(F32, rec + (long) (3 * layout.headDim() + 2) * Float.BYTES);
  }

  /** Recomputes lo/hi of the tile holding positions [tileStart, length) after a truncate. */
  void rebuildOpenTile(MemorySegment keys, int layer, int kvHead, int length) {
    int tt = layout.tileTokens();
    if (length % tt == 0) {
      return; // no open tile: every tile below length is complete and unchanged
    }
    for (int pos = length / tt * tt; pos < length; pos++) {
      addKey(keys, layer, kvHead, pos);
    }
  }

  // ----------------------------------------------------------------------------- readers

  /** lo[c] of (layer, kvHead, tile). */
  public float lo(int layer, int kvHead, int tile, int c) {
    return data.get(F32, offset(layer, kvHead, tile) + (long) c * Float.BYTES);
  }

  /** hi[c] of (layer, kvHead, tile). */
  public float hi(int layer, int kvHead, int tile, int c) {
    return data.get(F32, offset(layer, kvHead, tile) + (long) (layout.headDim() + c) * Float.BYTES);
  }

  /** centroid[c] of a complete tile. */
  public float centroid(int layer, int kvHead, int tile, int c) {
    return data.get(F32, offset(layer, kvHead, tile) + (long) (2 * layout.headDim() + c) * Float.BYTES);
  }

  /** Radius of a complete tile around its centroid (rounded up). */
  public float radius(int layer, int kvHead, int tile) {
    return data.get(F32, offset(layer, kvHead, tile) + (long) (3 * layout.headDim()) * Float.BYTES);
  }

  /** Radius of a complete block (rounded up). */
  public float blockRadius(int layer, int kvHead, int block) {
    return data.get(F32, blockOffset(layer, kvHead, block) + (long) (3 * layout.headDim()) * Float.BYTES);
  }

  /** Largest value norm of a complete block. */
  public float blockVmax(int layer, int kvHead, int block) {
    return data.get(F32, blockOffset(layer, kvHead, block) + (long) (3 * layout.headDim() + 1) * Float.BYTES);
  }

  /** Largest value norm of a complete tile (rounded up). */
  public float vmax(int layer, int kvHead, int tile) {
    return data.get(F32, offset(layer, kvHead, tile) + (long) (3 * layout.headDim() + 1) * Float.BYTES);
  }
}
