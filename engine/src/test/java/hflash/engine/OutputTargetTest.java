package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Certified with an output-error target ({@link AttentionConfig#certifiedMaxError}): on random and
 * adversarial data every head's error is within its reported bound and within the target times
 * {@code ||exact_h||} (against float64 over the stored values, with the exact mode's float slack),
 * on every thread count.
 */
class OutputTargetTest {

  static Stream<Arguments> cases() {
    List<Arguments> out = new ArrayList<>();
    long seed = 900;
    for (HierarchicalModesTest.Kind kind : HierarchicalModesTest.Kind.values()) {
      out.add(Arguments.of(kind.name(), DType.F16, 2000 + (int) (seed % 89), (int) (seed % 2) + 1, seed++));
    }
    out.add(Arguments.of("CLUSTERED", DType.F32, 6000, 2, seed++));
    out.add(Arguments.of("FAR_VALUES", DType.F16, 6000, 1, seed++));
    out.add(Arguments.of("FAR_VALUES", DType.F32, 5000, 2, seed++));
    return out.stream();
  }

  /**
   * Clustered keys whose cold (skippable) positions hold values far from the hot ones: a skipped
   * tile moves the output by its mass times about 40, so a bound priced at the output's own norm
   * would fail.
   */
  static float[] fillFarValues(KvCache cache, int n, Random r) {
    float[] q = HierarchicalModesTest.fill(cache, HierarchicalModesTest.Kind.CLUSTERED, n, r);
    KvCacheLayout lay = cache.layout();
    int d = lay.headDim(), kvHeads = lay.kvHeads();
    float[][] k = new float[n][kvHeads * d];
    float[][] v = new float[n][kvHeads * d];
    for (int j = 0; j < n; j++) {
      for (int kh = 0; kh < kvHeads; kh++) {
        for (int c = 0; c < d; c++) {
          k[j][kh * d + c] = cache.key(0, kh, j, c);
          // cold keys score about -16 below the hot ones (see fill): give them far values
          v[j][kh * d + c] = (float) r.nextGaussian() * 0.1f + (c == 0 ? 40f : 0f);
        }
      }
    }
    // hot keys get values near 0: rebuild the cache with the same keys
    cache.truncate(0);
    float[] hot = new float[kvHeads * d];
    for (int j = 0; j < n; j++) {
      boolean isHot = j < 4 || j > n - 16;
      cache.append(0, k[j], isHot ? hot : v[j]);
    }
    return q;
  }

  @ParameterizedTest(name = "{0} {1} n={2} threads={3}")
  @MethodSource("cases")
  void errorStaysWithinTheTargetAndTheBound(String kind, DType dt, int n, int threads, long seed) {
    Random r = new Random(seed);
    int d = 64;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, d, n, dt, 64));
        // two threads on even seeds: the pipeline scheduler (K and V units, tiles handed over)
        DecodeAttention att = threads == 2 && seed % 2 == 0
            ? DecodeAttention.create(cache, 4, 2, (float) (1 / Math.sqrt(d)), Scheduler.PIPELINE)
            : DecodeAttention.create(cache, 4, threads)) {
      float[] q = kind.equals("FAR_VALUES") ? fillFarValues(cache, n, r)
          : HierarchicalModesTest.fill(cache, HierarchicalModesTest.Kind.valueOf(kind), n, r);
      double[] ref = ReferenceAttention.decode(cache, 0, q, 4, n, 1 / Math.sqrt(d));
      float[] exact = new float[4 * d], out = new float[4 * d];
      att.decode(0, q, exact);
      for (double e : new double[] {3e-1, 1e-2, 1e-4}) {
        AttentionConfig cfg = AttentionConfig.certifiedMaxError(e);
        att.decode(0, q, out, n, cfg);
        AttentionReport rep = att.report();
        String msg = kind + " " + dt + " seed=" + seed + " maxError=" + e + " " + rep;
        for (int h = 0; h < 4; h++) {
          double err = distance(out, ref, h, d);
          double refNorm = distance(new float[4 * d], ref, h, d);
          double slack = 4 * distance(exact, ref, h, d) + 1e-5 * refNorm + 1e-7;
          assertTrue(err <= rep.errorBound(h) + slack, msg + " head " + h + ": error " + err + " > bound "
              + rep.errorBound(h));
          assertTrue(err <= e * refNorm + slack, msg + " head " + h + ": error " + err + " > target * ||ref|| "
              + e * refNorm);
          assertTrue(rep.errorBound(h) <= e * refNorm * (1 + 1e-6) + slack, msg + " head " + h + ": bound "
              + rep.errorBound(h) + " above the target");
        }
        assertTrue(rep.kvBytesRead() <= 2L * n * 2 * d * dt.bytes(), "never more than exact: " + msg);
      }
    }
  }

  @Test
  void aLooseTargetSkipsMostOfAConcentratedContextAndATightOneReadsMore() {
    Random r = new Random(77);
    int n = 16384, d = 64;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, d, n, DType.F16, 64));
        DecodeAttention att = DecodeAttention.create(cache, 4, 1)) {
      float[] q = HierarchicalModesTest.fill(cache, HierarchicalModesTest.Kind.CLUSTERED, n, r);
      float[] out = new float[4 * d];
      att.decode(0, q, out, n, AttentionConfig.certifiedMaxError(1e-2));
      long loose = att.report().kvBytesRead();
      assertTrue(loose < 0.5 * 2L * n * 2 * d * 2, "seed=77 " + att.report());
      att.decode(0, q, out, n, AttentionConfig.certifiedMaxError(1e-7));
      assertTrue(att.report().kvBytesRead() >= loose, "seed=77 " + att.report());
    }
  }

  @Test
  void badTargetsAreRejected() {
    assertEquals("max error must be in (0, 1): 0.0",
        assertThrows(IllegalArgumentException.class, () -> AttentionConfig.certifiedMaxError(0)).getMessage());
    assertThrows(IllegalArgumentException.class, () -> AttentionConfig.certifiedMaxError(Double.NaN));
    assertThrows(IllegalArgumentException.class, () -> AttentionConfig.certifiedMaxError(1));
    assertEquals("an output-error target needs certified or estimated mode: budgeted",
        assertThrows(IllegalArgumentException.class, () -> new AttentionConfig(AttentionMode.BUDGETED, 0, 3, 0, 0,
            16, 32, 2f, 20f, 0, 0, 1e-2, 0, 0)).getMessage());
    assertThrows(IllegalArgumentException.class, () -> new AttentionConfig(AttentionMode.CERTIFIED, 1e-3, 0, 0, 0,
        16, 32, 2f, 20f, 0, 0, 1e-2, 0, 0));
    assertThrows(IllegalArgumentException.class, () -> AttentionConfig.estimated(1e-2, 1, 7));
    assertThrows(IllegalArgumentException.class, () -> AttentionConfig.estimated(0));
  }

  private static double distance(float[] out, double[] ref, int h, int d) {
    double sq = 0;
    for (int c = h * d; c < (h + 1) * d; c++) {
      sq += (out[c] - ref[c]) * (out[c] - ref[c]);
    }
    return Math.sqrt(sq);
  }
}
