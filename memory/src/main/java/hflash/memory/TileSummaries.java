package hflash.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Per-tile summaries of the stored keys and values, kept current by {@link KvCache} on every append
 * and truncate: what the hierarchical modes use to bound the scores of a tile without reading it.
 *
 * <p>One record of {@link #recordBytes(int, DType)} bytes per (layer, kvHead, tile), little-endian:
 *
 * <pre>
 *   lo[d]      cache dtype  min over the tile's stored keys of k[c]
 *   hi[d]      cache dtype  max over the tile's stored keys of k[c]
 *   centroid   d x f32      mean of the stored keys                (complete tiles only)
 *   radius     f32          max_j ||k_j - centroid||, rounded up   (complete tiles only)
 *   vmax       f32          max_j ||v_j||, rounded up              (complete tiles only)
 *   cnorm      f32          ||centroid||, rounded up               (complete tiles only)
 * </pre>
 *
 * lo and hi are stored in the cache's dtype: they are stored key elements, so a 16-bit cache holds
 * them exactly in 16 bits (a third less summary memory than f32 records, nothing lost). The centroid
 * is a mean, kept in f32, and the radius is measured from the centroid as stored, so the ball holds.
 * All values are over the keys and values as stored (after the dtype's rounding), so the bounds
 * hold for what the kernels actually score. lo/hi are maintained per append in O(d); centroid,
 * radius and vmax are computed once, when a tile's last position is appended (the tile becomes
 * complete). The last, incomplete tile of a layer has lo/hi only: the engine always reads it.
 * Memory: {@code 2d * bytes(dtype) + 4d + 12} bytes per tile per KV head, e.g. 8.1 bytes per key
 * and KV head for an f16 cache at d = 128, T = 128 (1.6 % of an f16 K+V row), plus 1/16 of that
 * for the block level.
 */
public final class TileSummaries {

  private static final ValueLayout.OfFloat F32 =
      ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  /** Tiles per block: the second level of the summary tree. */
  public static final int BLOCK_TILES = 16;

  private final KvCacheLayout layout;
  private final MemorySegment data; // (layers, kvHeads, tiles) records, then (layers, kvHeads, blocks) records
  private final DType dtype; // of lo/hi: the cache's
  private final int tiles; // tiles per (layer, kvHead)
  private final int blocks; // complete-able blocks per (layer, kvHead): tiles / BLOCK_TILES
  private final long blockBase; // byte offset of the block records
  private final long recordBytes;
  private final long centroidAt; // byte offset of the centroid inside a record
  private final long tailAt; // byte offset of radius, vmax, cnorm inside a record
  private final double[] centroid; // (d) scratch of complete(): appends are not concurrent

  TileSummaries(KvCacheLayout layout, Arena arena) {
    this.layout = layout;
    this.dtype = layout.dtype();
    this.tiles = (int) (layout.paddedCapacity() / layout.tileTokens());
    this.recordBytes = recordBytes(layout.headDim(), dtype);
    this.centroidAt = centroidOffset(layout.headDim(), dtype);
    this.tailAt = centroidAt + (long) layout.headDim() * Float.BYTES;
    this.centroid = new double[layout.headDim()];
    this.blocks = tiles / BLOCK_TILES;
    long heads = (long) layout.layers() * layout.kvHeads();
    this.blockBase = Math.multiplyExact(heads * tiles, recordBytes);
    this.data = arena.allocate(Math.addExact(blockBase, Math.multiplyExact(heads * blocks, recordBytes)), 64);
  }

  /** Bytes in one record: {@code 2d * bytes(dtype) + 4d + 12}. */
  public static long recordBytes(int headDim, DType dtype) {
    return centroidOffset(headDim, dtype) + (long) headDim * Float.BYTES + 3L * Float.BYTES;
  }

  /** Byte offset of the f32 centroid inside a record: after lo and hi, {@code 2d * bytes(dtype)}. */
  public static long centroidOffset(int headDim, DType dtype) {
    return 2L * headDim * dtype.bytes();
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

  /** Byte offset of the centroid inside a record (see {@link #centroidOffset(int, DType)}). */
  public long centroidOffset() {
    return centroidAt;
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
    int b = dt.bytes();
    for (int c = 0; c < d; c++) {
      // a stored element of the dtype: lo/hi in the same dtype hold it exactly
      float x = dt.read(keys, layout.keyOffset(layer, kvHead, pos, c));
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
      data.set(F32, rec + centroidAt + (long) c * Float.BYTES, (float) centroid[c]);
    }
    double radius = 0, vmax = 0;
    for (int j = 0; j < tt; j++) {
      int pos = tile * tt + j;
      double r2 = 0, v2 = 0;
      for (int c = 0; c < d; c++) {
        // distance to the centroid as stored (rounded to f32), so the bound holds for it
        double e = dt.read(keys, layout.keyOffset(layer, kvHead, pos, c))
            - data.get(F32, rec + centroidAt + (long) c * Float.BYTES);
        r2 += e * e;
        double v = dt.read(values, layout.valueOffset(layer, kvHead, pos, c));
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
      dtype.write(data, rec + (long) c * dtype.bytes(), lo); // min/max of stored values: exact
      dtype.write(data, rec + (long) (d + c) * dtype.bytes(), hi);
      data.set(F32, rec + centroidAt + (long) c * Float.BYTES, (float) centroid[c]);
    }
    double radius = 0;
    for (int t = t0; t < t0 + BLOCK_TILES; t++) {
      double dist2 = 0;
      for (int c = 0; c < d; c++) {
        double e = centroid(layer, kvHead, t, c) - (double) data.get(F32, rec + centroidAt + (long) c * Float.BYTES);
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
      double x = data.get(F32, rec + centroidAt + (long) c * Float.BYTES);
      sq += x * x;
    }
    data.set(F32, rec + tailAt + 2L * Float.BYTES, Math.nextUp((float) (Math.sqrt(sq) * (1 + 1e-9))));
  }

  /** ||centroid|| of a complete tile (block when {@code block}), rounded up. */
  public float centroidNorm(int layer, int kvHead, int index, boolean block) {
    long rec = block ? blockOffset(layer, kvHead, index) : offset(layer, kvHead, index);
    return data.get(F32, rec + tailAt + 2L * Float.BYTES);
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
    return dtype.read(data, offset(layer, kvHead, tile) + (long) c * dtype.bytes());
  }

  /** hi[c] of (layer, kvHead, tile). */
  public float hi(int layer, int kvHead, int tile, int c) {
    return dtype.read(data, offset(layer, kvHead, tile) + (long) (layout.headDim() + c) * dtype.bytes());
  }

  /** centroid[c] of a complete tile. */
  public float centroid(int layer, int kvHead, int tile, int c) {
    return data.get(F32, offset(layer, kvHead, tile) + centroidAt + (long) c * Float.BYTES);
  }

  /** Radius of a complete tile around its centroid (rounded up). */
  public float radius(int layer, int kvHead, int tile) {
    return data.get(F32, offset(layer, kvHead, tile) + tailAt);
  }

  /** Radius of a complete block (rounded up). */
  public float blockRadius(int layer, int kvHead, int block) {
    return data.get(F32, blockOffset(layer, kvHead, block) + tailAt);
  }

  /** Largest value norm of a complete block. */
  public float blockVmax(int layer, int kvHead, int block) {
    return data.get(F32, blockOffset(layer, kvHead, block) + tailAt + Float.BYTES);
  }

  /** Largest value norm of a complete tile (rounded up). */
  public float vmax(int layer, int kvHead, int tile) {
    return data.get(F32, offset(layer, kvHead, tile) + tailAt + Float.BYTES);
  }
}
