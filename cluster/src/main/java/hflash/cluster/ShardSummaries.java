package hflash.cluster;

import hflash.memory.DType;
import hflash.memory.KvCacheLayout;
import java.util.Arrays;

/**
 * Top-level summary of each shard, kept by the coordinator from the rows it appends: per (shard,
 * layer, kvHead) the box {@code [lo, hi]} of the stored (dtype-rounded) keys and the largest stored
 * value-row norm. A box over all of a shard's rows bounds every prefix of them, so truncation keeps
 * it valid. Certified decode uses it to leave out members whose whole mass cannot matter.
 * Not thread-safe: updated under the cache's lock.
 */
final class ShardSummaries {

  private final KvCacheLayout layout;
  private final Striping striping;
  private final float[] boxLo, boxHi; // (shards, layers, kvHeads, headDim)
  private final float[] valueNorm; // (shards, layers, kvHeads)

  ShardSummaries(KvCacheLayout layout, Striping striping) {
    this.layout = layout;
    this.striping = striping;
    int cells = striping.shards() * layout.layers() * layout.kvHeads();
    boxLo = new float[Math.multiplyExact(cells, layout.headDim())];
    boxHi = new float[boxLo.length];
    valueNorm = new float[cells];
    Arrays.fill(boxLo, Float.POSITIVE_INFINITY);
    Arrays.fill(boxHi, Float.NEGATIVE_INFINITY);
  }

  private int cell(int shard, int layer, int kvHead) {
    return (shard * layout.layers() + layer) * layout.kvHeads() + kvHead;
  }

  /** Widens the boxes and value norms by rows {@code [p0, p0 + count)} as the dtype stores them. */
  void add(int layer, int p0, int count, float[] k, float[] v) {
    int heads = layout.kvHeads(), d = layout.headDim();
    DType dtype = layout.dtype();
    for (int i = 0; i < count; i++) {
      int s = striping.shardOf((long) p0 + i);
      for (int h = 0; h < heads; h++) {
        int base = cell(s, layer, h) * d;
        int src = (i * heads + h) * d;
        double norm = 0;
        for (int c = 0; c < d; c++) {
          float x = dtype.round(k[src + c]);
          boxLo[base + c] = Math.min(boxLo[base + c], x);
          boxHi[base + c] = Math.max(boxHi[base + c], x);
          double y = dtype.round(v[src + c]);
          norm += y * y;
        }
        valueNorm[cell(s, layer, h)] = Math.max(valueNorm[cell(s, layer, h)], (float) Math.sqrt(norm));
      }
    }
  }

  /**
   * Upper bound on {@code scale * q_h . k} over every key of {@code shard} in (layer, kvHead):
   * {@code scale * sum_c max(q_c lo_c, q_c hi_c)} plus the kernels' float round-off; -inf when
   * the shard holds none.
   */
  double scoreBound(int shard, int layer, int kvHead, float[] q, int qOff, float scale) {
    int d = layout.headDim();
    int base = cell(shard, layer, kvHead) * d;
    if (boxLo[base] > boxHi[base]) {
      return Double.NEGATIVE_INFINITY;
    }
    double sum = 0, magnitude = 0;
    for (int c = 0; c < d; c++) {
      double qc = q[qOff + c];
      sum += Math.max(qc * boxLo[base + c], qc * boxHi[base + c]);
      magnitude += Math.abs(qc) * Math.max(Math.abs(boxLo[base + c]), Math.abs(boxHi[base + c]));
    }
    // the kernels score in float: allow their round-off, relative to the magnitude of the terms
    return scale * (sum + 1e-5 * magnitude) + 1e-6;
  }

  /** Largest stored value-row norm of {@code shard} in (layer, kvHead). */
  double valueNormBound(int shard, int layer, int kvHead) {
    return valueNorm[cell(shard, layer, kvHead)];
  }
}
