package hflash.ascend;

import hflash.engine.AttentionConfig;
import hflash.engine.AttentionReport;
import hflash.engine.DecodeAttention;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.memory.TileSummaries;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Counts what a mode reads by running hflash's engine on a generated cache of one KV head (its g
 * query heads), with the Ascend tile size as the cache's tile size, so the engine's tiles are the
 * model's tiles. Every KV head of the modelled shape is assumed to read the same (the generators
 * treat the heads alike). Only the counts are used; the engine's output is not.
 *
 * <p>Keys ({@link Keys}):
 *
 * <ul>
 *   <li>{@code random}: i.i.d. N(0, 1) keys, values and queries. Scores are N(0, 1) noise with no
 *       structure, the worst case for the hierarchical modes: the tile bounds prune little.
 *   <li>{@code clustered}: each tile's keys are its centroid (N(0, 1) per coordinate) plus N(0,
 *       0.1^2) noise, and four tiles (the first, the last, two at random) have centroids aligned
 *       with the query so that they score about +12 above the rest. The bounds are tight and the
 *       mass sits in a few tiles, a favourable case.
 * </ul>
 */
public final class EngineProbe {

  /** The key generators. */
  public enum Keys {
    RANDOM, CLUSTERED;

    public static Keys parse(String s) {
      for (Keys k : values()) {
        if (k.name().equalsIgnoreCase(s)) {
          return k;
        }
      }
      throw new IllegalArgumentException("unknown keys: " + s + " (expected random, clustered)");
    }

    public String id() {
      return name().toLowerCase(Locale.ROOT);
    }
  }

  private EngineProbe() {}

  /**
   * Runs one decode call of {@code config} on a generated cache and returns what one KV head read.
   *
   * @param shape the modelled shape (its context, group size, dim and dtype are used)
   * @param tileTokens the Ascend tile size (a multiple of 32)
   */
  public static Schedule.HeadWork measure(Shape shape, int tileTokens, AttentionConfig config,
      Keys keys, long seed) {
    int n = shape.context();
    int d = shape.dim();
    int g = shape.group();
    KvCacheLayout layout = new KvCacheLayout(1, 1, d, n, shape.dtype(), tileTokens);
    int tiles = layout.tileCount(n);
    if (config.modeConfig().isExact()) {
      return Schedule.HeadWork.exact(tiles);
    }
    SplittableRandom rnd = new SplittableRandom(seed);
    float[] q = new float[g * d];
    for (int i = 0; i < q.length; i++) {
      q[i] = (float) rnd.nextGaussian();
    }
    try (KvCache cache = KvCache.allocate(layout);
        DecodeAttention attn = DecodeAttention.create(cache, g, 1)) {
      fill(cache, keys, q, g, d, tileTokens, rnd);
      float[] out = new float[g * d];
      attn.decode(0, q, out, n, config);
      AttentionReport r = attn.report();
      long row = shape.rowBytes();
      long tileBytes = tileTokens * row;
      int sampleRows = (int) (r.sampleBytesRead() / ((long) d * shape.dtype().bytes())); // store in cache dtype
      int refine = 0;
      Schedule.ModeModel model = Schedule.ModeModel.of(config.mode());
      if (model.sampleReference()) {
        long extra = r.kvBytesRead() - 2L * n * row; // refinement re-reads K only
        refine = (int) Math.ceil(Math.max(0, extra) / (double) tileBytes);
      }
      int summaries = (int) (r.summaryBytesRead() / TileSummaries.recordBytes(d, shape.dtype()));
      int opened = (int) r.tilesRead();
      if (model.scanOpensTiles()) {
        // the CPU's K-scan scores K of tiles whose V it then skips; the NPU schedule has no K-only
        // tile, so count every scored tile as opened (K and V): the model errs on the slow side
        opened = (int) Math.max(opened, (r.keysScored() + tileTokens - 1) / tileTokens);
      }
      return new Schedule.HeadWork(tiles, Math.min(tiles, opened), sampleRows, refine, summaries);
    }
  }

  private static void fill(KvCache cache, Keys keys, float[] q, int g, int d, int tileTokens,
      SplittableRandom rnd) {
    int n = cache.layout().capacity();
    int tiles = (n + tileTokens - 1) / tileTokens;
    // the direction hot tiles align with: the mean query of the group, normalised
    double[] dir = new double[d];
    double norm = 0;
    for (int c = 0; c < d; c++) {
      for (int i = 0; i < g; i++) {
        dir[c] += q[i * d + c];
      }
      norm += dir[c] * dir[c];
    }
    norm = Math.sqrt(norm);
    int hotA = tiles > 2 ? 1 + rnd.nextInt(tiles - 2) : 0;
    int hotB = tiles > 2 ? 1 + rnd.nextInt(tiles - 2) : 0;
    int block = 4096;
    float[] k = new float[block * d];
    float[] v = new float[block * d];
    float[] centroid = new float[d];
    // q_i . dir / |dir| ~ |q_i|^2 / |sum q| ~ sqrt(d / g), and scores are q.k / sqrt(d): +12 needs 12 sqrt(g)
    double hotScale = 12 * Math.sqrt(g);
    for (int first = 0; first < n; first += block) {
      int count = Math.min(block, n - first);
      for (int j = 0; j < count; j++) {
        int pos = first + j;
        int tile = pos / tileTokens;
        if (keys == Keys.CLUSTERED && pos % tileTokens == 0) {
          boolean hot = tile == 0 || tile == tiles - 1 || tile == hotA || tile == hotB;
          for (int c = 0; c < d; c++) {
            centroid[c] = (float) (hot ? hotScale * dir[c] / norm : rnd.nextGaussian());
          }
        }
        for (int c = 0; c < d; c++) {
          float x = (float) rnd.nextGaussian();
          k[j * d + c] = keys == Keys.CLUSTERED ? centroid[c] + 0.1f * x : x;
          v[j * d + c] = (float) rnd.nextGaussian();
        }
      }
      if (count == block) {
        cache.append(0, count, k, v);
      } else {
        cache.append(0, count, java.util.Arrays.copyOf(k, count * d), java.util.Arrays.copyOf(v, count * d));
      }
    }
  }
}
