package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The estimated mode: a fixed seed gives fixed bits (whatever the thread count), the stated
 * interval covers the true error of (row, head) pairs at least as often as its level says, and
 * where the bounds are tight (all keys equal: every tile's mass bound is its mass) it stops before
 * reading everything.
 */
class EstimatedModeTest {

  @Test
  void aFixedSeedGivesFixedBitsOnAnyThreadCount() {
    Random r = new Random(3);
    int n = 5000, d = 32;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, d, n, DType.F16, 32));
        DecodeAttention one = DecodeAttention.create(cache, 4, 1);
        DecodeAttention two = DecodeAttention.create(cache, 4, 2)) {
      float[] q = fillEqualKeys(cache, n, r);
      float[] a = new float[4 * d], b = new float[4 * d], c = new float[4 * d];
      AttentionConfig cfg = AttentionConfig.estimated(1e-1, 0.99, 11);
      one.decode(0, q, a, n, cfg);
      long bytes = one.report().kvBytesRead();
      one.decode(0, q, b, n, cfg);
      two.decode(0, q, c, n, cfg);
      assertArrayEquals(a, b, "seed 3, same engine");
      assertArrayEquals(a, c, "seed 3, two threads");
      assertEquals(bytes, two.report().kvBytesRead(), "seed 3");
    }
  }

  /**
   * Coverage: over sample seeds and data kinds, the share of (call, head) pairs whose error is at
   * most the reported upper end is at least the level (0.99); with tight bounds the mode reads
   * less than exact.
   */
  @Test
  void theIntervalCoversTheErrorAndTightBoundsSaveReads() {
    int pairs = 0, covered = 0;
    long bytes = 0, exactBytes = 0;
    int d = 16, n = 12000;
    for (long seed = 0; seed < 5; seed++) {
      Random r = new Random(100 + seed);
      HierarchicalModesTest.Kind kind = seed % 3 == 0 ? HierarchicalModesTest.Kind.RANDOM
          : seed % 3 == 1 ? HierarchicalModesTest.Kind.ALL_EQUAL : HierarchicalModesTest.Kind.CLUSTERED;
      try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, d, n, DType.F32, 32));
          DecodeAttention att = DecodeAttention.create(cache, 4, 1)) {
        float[] q = kind == HierarchicalModesTest.Kind.ALL_EQUAL ? fillEqualKeys(cache, n, r)
            : HierarchicalModesTest.fill(cache, kind, n, r);
        double[] ref = ReferenceAttention.decode(cache, 0, q, 4, n, 1 / Math.sqrt(d));
        float[] exact = new float[4 * d], out = new float[4 * d];
        att.decode(0, q, exact);
        for (long sampleSeed = 0; sampleSeed < 4; sampleSeed++) {
          att.decode(0, q, out, n, AttentionConfig.estimated(1e-1, 0.99, sampleSeed));
          AttentionReport rep = att.report();
          for (int h = 0; h < 4; h++) {
            double err = distance(out, ref, h, d);
            double slack = 4 * distance(exact, ref, h, d) + 1e-5 * distance(new float[4 * d], ref, h, d) + 1e-7;
            pairs++;
            if (err <= rep.errorBound(h) + slack) {
              covered++;
            }
          }
          if (kind == HierarchicalModesTest.Kind.CLUSTERED) {
            bytes += rep.kvBytesRead();
            exactBytes += 2L * n * 2 * d * 4;
          }
        }
      }
    }
    assertTrue(covered >= 0.99 * pairs, "covered " + covered + " of " + pairs);
    assertTrue(bytes < 0.8 * exactBytes, "clustered: the tail's mass is small, the interval must close early: "
        + bytes + " of " + exactBytes);
  }

  /**
   * Every key the same (the ball bounds are exact: each tile's mass bound is its mass) and values
   * around a common mean (so the output is not near 0 and a relative target is reachable).
   */
  static float[] fillEqualKeys(KvCache cache, int n, Random r) {
    KvCacheLayout lay = cache.layout();
    int d = lay.headDim(), row = lay.kvHeads() * d;
    float[] k = new float[row], mean = new float[row], v = new float[row];
    for (int i = 0; i < row; i++) {
      k[i] = (float) r.nextGaussian();
      mean[i] = (float) r.nextGaussian();
    }
    for (int j = 0; j < n; j++) {
      for (int i = 0; i < row; i++) {
        v[i] = mean[i] + (float) r.nextGaussian();
      }
      cache.append(0, k, v);
    }
    float[] q = new float[2 * row];
    for (int i = 0; i < q.length; i++) {
      q[i] = (float) r.nextGaussian();
    }
    return q;
  }

  private static double distance(float[] out, double[] ref, int h, int d) {
    double sq = 0;
    for (int c = h * d; c < (h + 1) * d; c++) {
      sq += (out[c] - ref[c]) * (out[c] - ref[c]);
    }
    return Math.sqrt(sq);
  }
}
