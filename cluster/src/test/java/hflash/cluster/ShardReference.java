package hflash.cluster;

import hflash.engine.AttentionConfig;
import hflash.engine.AttentionState;
import hflash.engine.DecodeAttention;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The local twin of a distributed cache: every row appended kept in order, and the split-K
 * reference the distributed decode must equal bit for bit (one local cache per shard holding its
 * positions, decodeState on one thread, merged in shard order).
 */
final class ShardReference {

  final int layers, kvHeads, headDim, tileTokens;
  final DType dtype;
  final List<List<float[]>> k = new ArrayList<>(), v = new ArrayList<>(); // per layer, rows

  ShardReference(int layers, int kvHeads, int headDim, DType dtype, int tileTokens) {
    this.layers = layers;
    this.kvHeads = kvHeads;
    this.headDim = headDim;
    this.dtype = dtype;
    this.tileTokens = tileTokens;
    for (int l = 0; l < layers; l++) {
      k.add(new ArrayList<>());
      v.add(new ArrayList<>());
    }
  }

  /** count random rows for every layer, appended to {@code cache} batched or one by one. */
  void appendRandom(DistributedKvCache cache, SplittableRandom rnd, int count, boolean batched) {
    int row = kvHeads * headDim;
    for (int l = 0; l < layers; l++) {
      float[] ks = new float[count * row], vs = new float[count * row];
      for (int i = 0; i < ks.length; i++) {
        ks[i] = dtype.round((float) rnd.nextGaussian());
        vs[i] = dtype.round((float) rnd.nextGaussian());
      }
      if (batched) {
        cache.append(l, count, ks, vs);
      } else {
        for (int i = 0; i < count; i++) {
          cache.append(l, java.util.Arrays.copyOfRange(ks, i * row, (i + 1) * row),
              java.util.Arrays.copyOfRange(vs, i * row, (i + 1) * row));
        }
      }
      for (int i = 0; i < count; i++) {
        k.get(l).add(java.util.Arrays.copyOfRange(ks, i * row, (i + 1) * row));
        v.get(l).add(java.util.Arrays.copyOfRange(vs, i * row, (i + 1) * row));
      }
    }
  }

  void truncate(int n) {
    for (int l = 0; l < layers; l++) {
      while (k.get(l).size() > n) {
        k.get(l).removeLast();
        v.get(l).removeLast();
      }
    }
  }

  /** Local split-K over the shards' key ranges, every shard in mode {@code config}, merged in shard order. */
  float[] splitK(Striping st, int layer, float[] q, int numHeads, int keys, AttentionConfig config) {
    return splitK(st, layer, q, numHeads, keys, s -> config);
  }

  /**
   * Local split-K with shard {@code s} in mode {@code configs.apply(s)}, skipped where that is
   * null (certified and budgeted leave shards out; budgeted gives each its share): pass the
   * call's {@link ClusterReport#shardConfig}.
   */
  float[] splitK(Striping st, int layer, float[] q, int numHeads, int keys,
      java.util.function.IntFunction<AttentionConfig> configs) {
    AttentionState merged = new AttentionState(numHeads, headDim);
    AttentionState part = new AttentionState(numHeads, headDim);
    for (int s = 0; s < st.shards(); s++) {
      int n = st.shardLength(keys, s);
      AttentionConfig config = configs.apply(s);
      if (n == 0 || config == null) {
        continue;
      }
      try (KvCache c = KvCache.allocate(new KvCacheLayout(1, kvHeads, headDim, n, dtype, tileTokens));
           DecodeAttention a = DecodeAttention.create(c, numHeads, 1)) {
        for (int i = 0; i < n; i++) {
          int p = (int) st.global(s, i);
          c.append(0, k.get(layer).get(p), v.get(layer).get(p));
        }
        a.decodeState(0, q, n, config, part);
      }
      merged.merge(part);
    }
    float[] out = new float[numHeads * headDim];
    merged.finish(out, 0);
    return out;
  }

  /** Exact attention of one local cache over all positions (the non-distributed result). */
  float[] local(int layer, float[] q, int numHeads, int keys) {
    try (KvCache c = KvCache.allocate(new KvCacheLayout(1, kvHeads, headDim, Math.max(1, keys), dtype, tileTokens));
         DecodeAttention a = DecodeAttention.create(c, numHeads, 1)) {
      for (int i = 0; i < keys; i++) {
        c.append(0, k.get(layer).get(i), v.get(layer).get(i));
      }
      float[] out = new float[numHeads * headDim];
      a.decode(0, q, out, keys);
      return out;
    }
  }

  static float[] query(SplittableRandom rnd, int n) {
    float[] q = new float[n];
    for (int i = 0; i < n; i++) {
      q[i] = (float) rnd.nextGaussian() * 2f;
    }
    return q;
  }
}
