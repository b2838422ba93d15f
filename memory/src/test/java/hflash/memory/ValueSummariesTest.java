package hflash.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Value balls: every stored value row lies in its tile's ball, every tile ball in its block's ball,
 * and the centroid is the mean of the stored rows; after single and batched appends, in 16-bit and
 * f32 caches, and after a truncate that re-completes a tile with other values.
 */
class ValueSummariesTest {

  @Test
  void everyValueLiesInItsTileBallAndEveryTileBallInItsBlockBall() {
    for (DType dt : new DType[] {DType.F32, DType.F16, DType.BF16}) {
      long seed = 31 + dt.ordinal();
      Random r = new Random(seed);
      int d = 13, tt = 32, n = 16 * tt * 2 + 5; // two complete blocks and an open tile
      try (KvCache cache = KvCache.allocate(new KvCacheLayout(2, 2, d, n, dt, tt))) {
        for (int layer = 0; layer < 2; layer++) {
          fill(cache, layer, n, r, layer == 0 ? 1 : 300); // large offsets: rounding matters
        }
        check(cache, dt + " seed=" + seed);
        cache.truncate(1, 3 * tt + 2); // the tile is completed again with other values
        fill(cache, 1, n - cache.length(1), r, 5);
        check(cache, dt + " seed=" + seed + " after truncate");
      }
    }
  }

  private static void fill(KvCache cache, int layer, int count, Random r, double offset) {
    KvCacheLayout lay = cache.layout();
    int row = lay.kvHeads() * lay.headDim();
    for (int p = 0; p < count; p++) {
      float[] k = new float[row], v = new float[row];
      for (int i = 0; i < row; i++) {
        k[i] = (float) r.nextGaussian();
        v[i] = (float) (offset + r.nextGaussian() * (p % 7 == 0 ? 10 : 1));
      }
      cache.append(layer, k, v);
    }
  }

  private static void check(KvCache cache, String context) {
    KvCacheLayout lay = cache.layout();
    ValueSummaries vs = cache.valueSummaries();
    int d = lay.headDim(), tt = lay.tileTokens();
    for (int layer = 0; layer < lay.layers(); layer++) {
      int full = cache.length(layer) / tt;
      for (int h = 0; h < lay.kvHeads(); h++) {
        for (int t = 0; t < full; t++) {
          long rec = vs.tileOffset(layer, h, t);
          String where = context + " layer=" + layer + " head=" + h + " tile=" + t;
          for (int c = 0; c < d; c++) {
            double mean = 0;
            for (int pos = t * tt; pos < (t + 1) * tt; pos++) {
              mean += cache.value(layer, h, pos, c) / (double) tt;
            }
            assertEquals((float) mean, vs.centroid(rec, c), 1e-6 * (1 + Math.abs(mean)), where);
          }
          for (int pos = t * tt; pos < (t + 1) * tt; pos++) {
            double sq = 0;
            for (int c = 0; c < d; c++) {
              double e = cache.value(layer, h, pos, c) - (double) vs.centroid(rec, c);
              sq += e * e;
            }
            assertTrue(Math.sqrt(sq) <= vs.radius(rec), where + " pos=" + pos);
          }
        }
        for (int b = 0; b < full / TileSummaries.BLOCK_TILES; b++) {
          long brec = vs.blockOffset(layer, h, b);
          for (int t = b * TileSummaries.BLOCK_TILES; t < (b + 1) * TileSummaries.BLOCK_TILES; t++) {
            long rec = vs.tileOffset(layer, h, t);
            double sq = 0;
            for (int c = 0; c < d; c++) {
              double e = (double) vs.centroid(rec, c) - vs.centroid(brec, c);
              sq += e * e;
            }
            assertTrue(Math.sqrt(sq) + vs.radius(rec) <= vs.radius(brec),
                context + " layer=" + layer + " head=" + h + " block=" + b + " tile=" + t);
          }
        }
      }
    }
  }
}
