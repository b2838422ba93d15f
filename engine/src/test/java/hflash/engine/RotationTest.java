package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.memory.DType;
import hflash.memory.HadamardRotation;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** A Hadamard-rotated cache: every mode keeps its meaning, and outliers stop costing a block its precision. */
class RotationTest {

  /** Keys and values with one channel 20x larger than the rest (an outlier channel), per KV head. */
  private static float[] outlierRows(Random r, int n, int kvHeads, int d) {
    float[] x = new float[n * kvHeads * d];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) (r.nextGaussian() * (i % d == 3 ? 20 : 1));
    }
    return x;
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(value = DType.class, names = {"F32", "Q8_0", "Q4_0"})
  void everyModeMatchesFloat64OverTheStoredRotatedValues(DType dt) {
    long seed = 91 + dt.ordinal();
    Random r = new Random(seed);
    int d = 64, n = 1500, kvHeads = 2, heads = 8;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, kvHeads, d, n, dt, 64), HadamardRotation.of(d, 7));
        DecodeAttention att = DecodeAttention.create(cache, heads, 2)) {
      cache.append(0, n, outlierRows(r, n, kvHeads, d), outlierRows(r, n, kvHeads, d));
      float[] q = TestData.queryWithScoreMagnitude(heads, d, 6f, r);
      double[] ref = ReferenceAttention.decode(cache, 0, q, heads, n, 1 / Math.sqrt(d));
      float[] out = new float[heads * d];
      att.decode(0, q, out);
      double rel = ReferenceAttention.relError(out, ref);
      assertTrue(rel < 3e-6, dt + " seed=" + seed + " exact rel " + rel);
      for (AttentionConfig cfg : new AttentionConfig[] {AttentionConfig.certified(1e-2), AttentionConfig.budgetedTiles(4),
          AttentionConfig.sampled()}) {
        att.decode(0, q, out, n, cfg);
        AttentionReport rep = att.report();
        for (int h = 0; h < heads; h++) {
          double err = 0, norm = 0;
          for (int c = h * d; c < (h + 1) * d; c++) {
            err += (out[c] - ref[c]) * (out[c] - ref[c]);
            norm += ref[c] * ref[c];
          }
          // the bound is on ||out_h - exact_h||, the same in either basis (R is orthonormal)
          double bound = cfg.mode() == AttentionMode.SAMPLED ? 3e-6 * Math.sqrt(norm) : rep.errorBound(h);
          assertTrue(Math.sqrt(err) <= bound + 1e-5 * Math.sqrt(norm) + 1e-7,
              dt + " " + cfg + " head " + h + " seed=" + seed + ": " + Math.sqrt(err) + " > " + bound);
        }
      }
    }
  }

  @Test
  void rotationSpreadsAnOutlierChannelSoQ4LosesLess() {
    long seed = 5;
    int d = 64, n = 800, kvHeads = 1, heads = 4;
    double[] err = new double[2];
    for (int rotated = 0; rotated < 2; rotated++) {
      Random r = new Random(seed);
      float[] k = outlierRows(r, n, kvHeads, d), v = outlierRows(r, n, kvHeads, d);
      float[] q = TestData.queryWithScoreMagnitude(heads, d, 3f, r);
      double[] raw = ReferenceAttention.decode(q, k, v, heads, kvHeads, d, n, 1 / Math.sqrt(d));
      HadamardRotation rot = rotated == 1 ? HadamardRotation.of(d, HadamardRotation.DEFAULT_SEED) : null;
      try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, kvHeads, d, n, DType.Q4_0, 64), rot);
          DecodeAttention att = DecodeAttention.create(cache, heads, 1)) {
        cache.append(0, n, k, v);
        float[] out = new float[heads * d];
        att.decode(0, q, out);
        err[rotated] = ReferenceAttention.relError(out, raw);
      }
    }
    // measured: 0.72 without, 0.38 with the rotation
    assertTrue(err[1] < 0.7 * err[0], "seed=" + seed + " q4_0 rel error vs the raw inputs: plain " + err[0]
        + ", rotated " + err[1]);
  }

  @Test
  void f32CacheGivesTheSameAttentionRotatedOrNot() {
    Random r = new Random(3);
    int d = 32, n = 300;
    float[] k = outlierRows(r, n, 1, d), v = outlierRows(r, n, 1, d);
    float[] q = TestData.queryWithScoreMagnitude(2, d, 5f, r);
    float[] a = new float[2 * d], b = new float[2 * d];
    try (KvCache plain = KvCache.allocate(new KvCacheLayout(1, 1, d, n, DType.F32, 32));
        KvCache rot = KvCache.allocate(new KvCacheLayout(1, 1, d, n, DType.F32, 32), HadamardRotation.of(d, 1));
        DecodeAttention pa = DecodeAttention.create(plain, 2, 1);
        DecodeAttention ra = DecodeAttention.create(rot, 2, 1)) {
      plain.append(0, n, k, v);
      rot.append(0, n, k, v);
      pa.decode(0, q, a);
      ra.decode(0, q, b);
      double[] ad = new double[a.length];
      for (int i = 0; i < a.length; i++) {
        ad[i] = a[i];
      }
      assertTrue(ReferenceAttention.relError(b, ad) < 2e-6, "rel " + ReferenceAttention.relError(b, ad));
    }
  }

  @Test
  void badRotationsAreRejected() {
    var e = assertThrows(IllegalArgumentException.class, () -> HadamardRotation.of(40, 1));
    assertEquals("hadamard rotation needs a power-of-two head dim: 40", e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> KvCache.allocate(new KvCacheLayout(1, 1, 16, 8, DType.Q8_0, 32), HadamardRotation.of(8, 1)));
    assertEquals("rotation head dim differs from headDim: 8!=16", e.getMessage());
    try (KvCache c = KvCache.allocate(new KvCacheLayout(1, 1, 4, 8, DType.F16, 32), HadamardRotation.of(4, 1))) {
      float[] big = {60000f, 60000f, 60000f, 0f}; // fits f16, but R x reaches 90000
      e = assertThrows(IllegalArgumentException.class, () -> c.append(0, big, new float[4]));
      assertTrue(e.getMessage().startsWith("value out of f16 range after rotation at k["), e.getMessage());
      assertEquals(0, c.length(0));
    }
  }
}
