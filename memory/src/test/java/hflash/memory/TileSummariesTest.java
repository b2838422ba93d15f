package hflash.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Summaries kept current on append and truncate equal summaries rebuilt from scratch over the
 * stored values, after any sequence of single, batched and truncating operations; and they bound
 * what they claim to bound.
 */
class TileSummariesTest {

  private static void checkAgainstScratch(KvCache cache, String context) {
    KvCacheLayout lay = cache.layout();
    TileSummaries s = cache.tileSummaries();
    int d = lay.headDim(), tt = lay.tileTokens();
    for (int layer = 0; layer < lay.layers(); layer++) {
      int length = cache.length(layer);
      for (int h = 0; h < lay.kvHeads(); h++) {
        for (int t = 0; t * tt < length; t++) {
          int end = Math.min(length, (t + 1) * tt);
          for (int c = 0; c < d; c++) {
            float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
            for (int pos = t * tt; pos < end; pos++) {
              lo = Math.min(lo, cache.key(layer, h, pos, c));
              hi = Math.max(hi, cache.key(layer, h, pos, c));
            }
            String where = context + " layer=" + layer + " head=" + h + " tile=" + t + " c=" + c;
            assertEquals(lo, s.lo(layer, h, t, c), where);
            assertEquals(hi, s.hi(layer, h, t, c), where);
          }
          if (end - t * tt == tt) { // complete: centroid, radius, vmax
            double[] mean = new double[d];
            for (int pos = t * tt; pos < end; pos++) {
              for (int c = 0; c < d; c++) {
                mean[c] += cache.key(layer, h, pos, c) / (double) tt;
              }
            }
            double radius = 0, vmax = 0;
            for (int pos = t * tt; pos < end; pos++) {
              double r2 = 0, v2 = 0;
              for (int c = 0; c < d; c++) {
                assertEquals((float) mean[c], s.centroid(layer, h, t, c), 1e-6, context);
                double e = cache.key(layer, h, pos, c) - s.centroid(layer, h, t, c);
                r2 += e * e;
                v2 += cache.value(layer, h, pos, c) * (double) cache.value(layer, h, pos, c);
              }
              radius = Math.max(radius, Math.sqrt(r2));
              vmax = Math.max(vmax, Math.sqrt(v2));
            }
            assertTrue(s.radius(layer, h, t) >= radius, context + " radius");
            assertTrue(s.radius(layer, h, t) <= radius * (1 + 1e-6) + 1e-30, context + " radius tight");
            assertTrue(s.vmax(layer, h, t) >= vmax, context + " vmax");
          }
        }
      }
    }
  }

  @Test
  void sixteenBitCachesKeepLoAndHiInSixteenBits() {
    assertEquals(2 * 128 * 4 + 128 * 4 + 12, TileSummaries.recordBytes(128, DType.F32));
    assertEquals(2 * 128 * 2 + 128 * 4 + 12, TileSummaries.recordBytes(128, DType.F16));
    assertEquals(2 * 128 * 2 + 128 * 4 + 12, TileSummaries.recordBytes(128, DType.BF16));
    KvCacheLayout lay = new KvCacheLayout(1, 2, 128, 4096, DType.F16, 128);
    try (KvCache cache = KvCache.allocate(lay)) {
      long tiles = 2 * 4096 / 128, blocks = 2 * (4096 / 128 / TileSummaries.BLOCK_TILES);
      assertEquals((tiles + blocks) * TileSummaries.recordBytes(128, DType.F16),
          cache.tileSummaries().bytesReserved());
    }
  }

  @Test
  void summariesFollowEveryAppendAndTruncate() {
    long seed = 77;
    Random r = new Random(seed);
    for (DType dt : DType.values()) {
      KvCacheLayout lay = new KvCacheLayout(2, 2, 9, 200, dt, 32);
      try (KvCache cache = KvCache.allocate(lay)) {
        int row = 2 * 9;
        for (int step = 0; step < 40; step++) {
          int layer = r.nextInt(2);
          int op = r.nextInt(4);
          if (op == 0 && cache.length(layer) > 0) {
            cache.truncate(layer, r.nextInt(cache.length(layer) + 1));
          } else {
            int count = Math.min(1 + r.nextInt(40), 200 - cache.length(layer));
            float[] k = new float[count * row], v = new float[count * row];
            for (int i = 0; i < k.length; i++) {
              k[i] = (float) (r.nextGaussian() * 3);
              v[i] = (float) r.nextGaussian();
            }
            if (count == 1 && r.nextBoolean()) {
              cache.append(layer, k, v);
            } else {
              cache.append(layer, count, k, v);
            }
          }
          checkAgainstScratch(cache, dt + " seed=" + seed + " step=" + step);
        }
      }
    }
  }

  @Test
  void sampleStoreHoldsEveryEighthStoredKey() {
    KvCacheLayout lay = new KvCacheLayout(1, 2, 5, 100, DType.BF16, 32);
    try (KvCache cache = KvCache.allocate(lay)) {
      Random r = new Random(3);
      float[] k = new float[70 * 10], v = new float[70 * 10];
      for (int i = 0; i < k.length; i++) {
        k[i] = (float) r.nextGaussian();
      }
      cache.append(0, 70, k, v);
      for (int pos = 0; pos < 70; pos += KvCache.SAMPLE_STRIDE) {
        for (int h = 0; h < 2; h++) {
          for (int c = 0; c < 5; c++) {
            float stored = cache.sample(0, h, pos / KvCache.SAMPLE_STRIDE, c);
            assertEquals(cache.key(0, h, pos, c), stored, "pos=" + pos + " h=" + h + " c=" + c);
          }
        }
      }
    }
  }
}
