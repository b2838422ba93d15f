package hflash.cluster;

import hflash.memory.DType;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Top-level summary of each shard: per (shard, layer, kvHead) the box {@code [lo, hi]} of the
 * stored (dtype-rounded) keys and the largest stored value-row norm. The coordinator widens it
 * from the rows it appends; a new coordinator ({@link DistributedKvCache#attach}) rebuilds it from
 * the rows the members hold ({@link ShardTasks.Summary}, the same arithmetic on the same stored
 * values, so both give the same bounds). A box over all of a shard's rows bounds every prefix of
 * them, so truncation keeps it valid (the appending coordinator's boxes may then be wider than a
 * rebuilt one). Certified decode uses it to leave out members whose whole mass cannot matter;
 * budgeted to split its budget. A shard whose summary is unknown (no copy answered) bounds as
 * +inf: never skipped. Not thread-safe: used under the cache's lock.
 */
final class ShardSummaries {

  private final KvCacheLayout layout;
  private final List<float[]> boxes = new ArrayList<>(); // per shard: (layers, kvHeads, 2 * headDim) lo then hi
  private final List<float[]> valueNorms = new ArrayList<>(); // per shard: (layers, kvHeads)
  private final List<Boolean> known = new ArrayList<>();

  ShardSummaries(KvCacheLayout layout, int shards) {
    this.layout = layout;
    ensureShards(shards);
  }

  /** Floats of one shard's packed summary: (layers, kvHeads, lo[d], hi[d], norm). */
  static int packedFloats(KvCacheLayout layout) {
    return layout.layers() * layout.kvHeads() * (2 * layout.headDim() + 1);
  }

  /** Adds empty (known, holding nothing) summaries up to {@code shards} shards. */
  void ensureShards(int shards) {
    int cells = layout.layers() * layout.kvHeads();
    while (boxes.size() < shards) {
      float[] box = new float[Math.multiplyExact(cells, 2 * layout.headDim())];
      for (int cell = 0; cell < cells; cell++) {
        int base = cell * 2 * layout.headDim();
        Arrays.fill(box, base, base + layout.headDim(), Float.POSITIVE_INFINITY);
        Arrays.fill(box, base + layout.headDim(), base + 2 * layout.headDim(), Float.NEGATIVE_INFINITY);
      }
      boxes.add(box);
      valueNorms.add(new float[cells]);
      known.add(true);
    }
  }

  int shards() {
    return boxes.size();
  }

  /** Whether every shard's summary is known. */
  boolean complete() {
    return !known.contains(false);
  }

  /** Marks shard {@code s}'s summary unknown (no copy could give it). */
  void unknown(int s) {
    known.set(s, false);
  }

  /** Sets shard {@code s}'s summary from a member's packed one ({@link #pack}). */
  void set(int s, float[] packed) {
    int cells = layout.layers() * layout.kvHeads(), d = layout.headDim();
    if (packed.length != packedFloats(layout)) {
      throw new IllegalArgumentException("summary length differs: " + packed.length + "!="
          + packedFloats(layout));
    }
    for (int cell = 0; cell < cells; cell++) {
      System.arraycopy(packed, cell * (2 * d + 1), boxes.get(s), cell * 2 * d, 2 * d);
      valueNorms.get(s)[cell] = packed[cell * (2 * d + 1) + 2 * d];
    }
    known.set(s, true);
  }

  /**
   * The packed summary of rows held by a member: {@code key(layer, h, i, c)} and
   * {@code value(...)} give the stored values; the same arithmetic as {@link #add}.
   */
  static float[] pack(KvCacheLayout layout, int[] lengths, RowReader key, RowReader value) {
    int heads = layout.kvHeads(), d = layout.headDim();
    float[] out = new float[packedFloats(layout)];
    for (int l = 0; l < layout.layers(); l++) {
      for (int h = 0; h < heads; h++) {
        int base = (l * heads + h) * (2 * d + 1);
        Arrays.fill(out, base, base + d, Float.POSITIVE_INFINITY);
        Arrays.fill(out, base + d, base + 2 * d, Float.NEGATIVE_INFINITY);
        float norm = 0;
        for (int i = 0; i < lengths[l]; i++) {
          double sq = 0;
          for (int c = 0; c < d; c++) {
            float x = key.get(l, h, i, c);
            out[base + c] = Math.min(out[base + c], x);
            out[base + d + c] = Math.max(out[base + d + c], x);
            double y = value.get(l, h, i, c);
            sq += y * y;
          }
          norm = Math.max(norm, (float) Math.sqrt(sq));
        }
        out[base + 2 * d] = norm;
      }
    }
    return out;
  }

  /** One stored element: (layer, kvHead, local position, channel). */
  interface RowReader {
    float get(int layer, int kvHead, int position, int channel);
  }

  /** Widens the boxes and value norms by rows {@code [p0, p0 + count)} as the dtype stores them. */
  void add(Striping striping, int layer, int p0, int count, float[] k, float[] v) {
    int heads = layout.kvHeads(), d = layout.headDim();
    DType dtype = layout.dtype();
    ensureShards(striping.shards());
    for (int i = 0; i < count; i++) {
      int s = striping.shardOf((long) p0 + i);
      float[] box = boxes.get(s);
      float[] norms = valueNorms.get(s);
      for (int h = 0; h < heads; h++) {
        int cell = layer * heads + h;
        int base = cell * 2 * d;
        int src = (i * heads + h) * d;
        double sq = 0;
        for (int c = 0; c < d; c++) {
          float x = dtype.round(k[src + c]);
          box[base + c] = Math.min(box[base + c], x);
          box[base + d + c] = Math.max(box[base + d + c], x);
          double y = dtype.round(v[src + c]);
          sq += y * y;
        }
        norms[cell] = Math.max(norms[cell], (float) Math.sqrt(sq));
      }
    }
  }

  /**
   * Upper bound on {@code scale * q_h . k} over every key of {@code shard} in (layer, kvHead):
   * {@code scale * sum_c max(q_c lo_c, q_c hi_c)} plus the kernels' float round-off; -inf when
   * the shard holds none, +inf when its summary is unknown.
   */
  double scoreBound(int shard, int layer, int kvHead, float[] q, int qOff, float scale) {
    if (!known.get(shard)) {
      return Double.POSITIVE_INFINITY;
    }
    int d = layout.headDim();
    float[] box = boxes.get(shard);
    int base = (layer * layout.kvHeads() + kvHead) * 2 * d;
    if (box[base] > box[base + d]) {
      return Double.NEGATIVE_INFINITY;
    }
    double sum = 0, magnitude = 0;
    for (int c = 0; c < d; c++) {
      double qc = q[qOff + c];
      double lo = box[base + c], hi = box[base + d + c];
      sum += Math.max(qc * lo, qc * hi);
      magnitude += Math.abs(qc) * Math.max(Math.abs(lo), Math.abs(hi));
    }
    // the kernels score in float: allow their round-off, relative to the magnitude of the terms
    return scale * (sum + 1e-5 * magnitude) + 1e-6;
  }

  /** Largest stored value-row norm of {@code shard} in (layer, kvHead); +inf when unknown. */
  double valueNormBound(int shard, int layer, int kvHead) {
    return known.get(shard) ? valueNorms.get(shard)[layer * layout.kvHeads() + kvHead]
        : Double.POSITIVE_INFINITY;
  }
}
