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
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The approximate modes on random and adversarial data: sampled equals exact within float32
 * rounding whatever the estimate; certified and budgeted never exceed the error bound they
 * report (per head, against float64 over the stored values, with float32 slack).
 */
class HierarchicalModesTest {

  /** Data shapes: how keys are drawn relative to the query. */
  enum Kind {
    RANDOM, // Gaussian keys, no structure
    CLUSTERED, // a few hot spans (a retrieved passage), sinks and recent keys, cold background
    NO_LOCALITY, // neighbouring scores independent, spikes at random positions
    FAR_MAXIMA, // two maxima far apart, away from every sample position
    ALL_EQUAL, // every key the same: all scores equal
    HUGE_SCORES // scores up to +-80
  }

  static Stream<Arguments> cases() {
    List<Arguments> out = new ArrayList<>();
    long seed = 500;
    for (Kind kind : Kind.values()) {
      for (DType dt : new DType[] {DType.F32, DType.F16}) {
        for (int threads : new int[] {1, 2}) {
          out.add(Arguments.of(kind, dt, 64, kind == Kind.CLUSTERED ? 8192 : 3000 + (int) (seed % 97), threads, seed++));
        }
      }
    }
    out.add(Arguments.of(Kind.RANDOM, DType.BF16, 7, 700, 1, seed++));
    out.add(Arguments.of(Kind.CLUSTERED, DType.F32, 128, 20000, 2, seed++));
    // block dtypes: summaries, sample store and bounds over the dequantized values
    out.add(Arguments.of(Kind.RANDOM, DType.Q8_0, 64, 3001, 2, seed++));
    out.add(Arguments.of(Kind.CLUSTERED, DType.Q8_0, 64, 8192, 1, seed++));
    out.add(Arguments.of(Kind.FAR_MAXIMA, DType.Q4_0, 64, 3037, 1, seed++));
    out.add(Arguments.of(Kind.HUGE_SCORES, DType.Q4_0, 40, 2100, 2, seed++));
    out.add(Arguments.of(Kind.NO_LOCALITY, DType.Q8_0, 8, 1500, 1, seed++));
    return out.stream();
  }

  /** Fills layer 0 with n keys of the given kind for query q (numHeads 4, kvHeads 2). */
  static float[] fill(KvCache cache, Kind kind, int n, Random r) {
    KvCacheLayout lay = cache.layout();
    int d = lay.headDim();
    int kvHeads = lay.kvHeads();
    int numHeads = kvHeads * 2;
    float[] q = new float[numHeads * d];
    for (int i = 0; i < q.length; i++) {
      q[i] = (float) r.nextGaussian();
    }
    float[] dir = new float[kvHeads * d]; // per KV head: the mean query direction of its group
    for (int kh = 0; kh < kvHeads; kh++) {
      for (int c = 0; c < d; c++) {
        dir[kh * d + c] = (q[(2 * kh) * d + c] + q[(2 * kh + 1) * d + c]) / 2;
      }
    }
    int hot = r.nextInt(Math.max(1, n - 64));
    int far1 = 13 + r.nextInt(Math.max(1, n / 3)), far2 = n - 1 - r.nextInt(Math.max(1, n / 3));
    float[] k = new float[kvHeads * d], v = new float[kvHeads * d];
    float[] equal = new float[d];
    for (int c = 0; c < d; c++) {
      equal[c] = (float) r.nextGaussian();
    }
    for (int j = 0; j < n; j++) {
      for (int kh = 0; kh < kvHeads; kh++) {
        double a = switch (kind) {
          case RANDOM, ALL_EQUAL -> 0;
          case CLUSTERED -> (j < 4 || j > n - 16) ? 3 : (j >= hot && j < hot + 48) ? 2.5 : -16;
          case NO_LOCALITY -> r.nextDouble() < 0.01 ? 3 : -1;
          case FAR_MAXIMA -> (j == far1 || j == far2) ? 4 : -0.5;
          case HUGE_SCORES -> r.nextGaussian() * 2;
        };
        double noise = kind == Kind.CLUSTERED ? 0.3 : 1.0;
        for (int c = 0; c < d; c++) {
          float base = kind == Kind.ALL_EQUAL ? equal[c] : (float) (r.nextGaussian() * noise);
          float align = (float) (a * dir[kh * d + c] / Math.sqrt(d) * (kind == Kind.HUGE_SCORES ? 12 : 1));
          k[kh * d + c] = base + align * (float) Math.sqrt(d) / 4;
          v[kh * d + c] = (float) r.nextGaussian();
        }
      }
      cache.append(0, k, v);
    }
    return q;
  }

  private static double headError(float[] out, double[] ref, int h, int d) {
    double sq = 0, rs = 0;
    for (int c = h * d; c < (h + 1) * d; c++) {
      sq += (out[c] - ref[c]) * (out[c] - ref[c]);
      rs += ref[c] * ref[c];
    }
    return Math.sqrt(sq);
  }

  @ParameterizedTest(name = "{0} {1} d={2} n={3} threads={4}")
  @MethodSource("cases")
  void everyModeKeepsItsPromise(Kind kind, DType dt, int d, int n, int threads, long seed) {
    Random r = new Random(seed);
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, d, n, dt, 64));
        DecodeAttention att = DecodeAttention.create(cache, 4, threads)) {
      float[] q = fill(cache, kind, n, r);
      double scale = 1 / Math.sqrt(d);
      double[] ref = ReferenceAttention.decode(cache, 0, q, 4, n, scale);
      float[] exact = new float[4 * d], out = new float[4 * d];
      att.decode(0, q, exact);
      double exactRel = ReferenceAttention.relError(exact, ref);

      att.decode(0, q, out, n, AttentionConfig.sampled());
      double sampledRel = ReferenceAttention.relError(out, ref);
      String msg = kind + " seed=" + seed + " " + att.report();
      assertTrue(sampledRel <= 2 * exactRel + 2e-6, msg + " sampled rel " + sampledRel + " exact rel " + exactRel);
      for (int h = 0; h < 4; h++) {
        // the sample store is scored by another kernel: equal scores may differ in the last bits
        assertTrue(att.report().estimateMiss(h) >= -1e-5 * (1 + maxAbs(exact)), msg);
      }
      att.decode(0, q, out, n, AttentionConfig.sampled(1, 0, 0f)); // every key sampled: the estimate is the max
      assertEquals(0.0, att.report().maxEstimateMiss(), 1e-5 * (1 + maxAbs(exact)), msg);
      assertEquals(0, att.report().guardFirings(), msg);

      for (AttentionConfig cfg : new AttentionConfig[] {AttentionConfig.certified(1e-1),
          AttentionConfig.certified(1e-3), AttentionConfig.certified(1e-6),
          AttentionConfig.budgetedTiles(3), AttentionConfig.budgetedShare(0.1)}) {
        att.decode(0, q, out, n, cfg);
        AttentionReport rep = att.report();
        for (int h = 0; h < 4; h++) {
          double err = headError(out, ref, h, d);
          // float rounding: what the exact engine itself is off by, twice, plus a little
          double slack = 4 * headError(exact, ref, h, d) + 1e-5 * norm(ref, h, d) + 1e-7;
          assertTrue(err <= rep.errorBound(h) + slack, cfg + " head " + h + ": error " + err
              + " > bound " + rep.errorBound(h) + " " + msg + " " + rep);
          if (cfg.mode() == AttentionMode.CERTIFIED) {
            assertTrue(rep.rho(h) <= cfg.epsilon() / (1 + cfg.epsilon()) * (1 + 1e-9), cfg + " rho " + rep.rho(h));
          }
        }
        assertTrue(rep.kvBytesRead() <= 2L * n * 2 * dt.rowBytes(d), "never more than exact: " + rep);
      }
    }
  }

  private static double maxAbs(float[] x) {
    double m = 0;
    for (float v : x) {
      m = Math.max(m, Math.abs(v));
    }
    return m;
  }

  private static double norm(double[] x, int h, int d) {
    double s = 0;
    for (int c = h * d; c < (h + 1) * d; c++) {
      s += x[c] * x[c];
    }
    return Math.sqrt(s);
  }

  @Test
  void certifiedSkipsMostOfAConcentratedContext() {
    Random r = new Random(42);
    int n = 16384;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, 64, n, DType.F16, 64));
        DecodeAttention att = DecodeAttention.create(cache, 4, 1)) {
      float[] q = fill(cache, Kind.CLUSTERED, n, r);
      float[] out = new float[4 * 64];
      att.decode(0, q, out, n, AttentionConfig.certified(1e-3));
      AttentionReport rep = att.report();
      assertTrue(rep.kvBytesRead() < 0.5 * 2L * n * 2 * 64 * 2, "certified read " + rep);
      assertTrue(rep.maxRho() <= 1e-3, rep.toString());
      long allTileRecords = 2L * (n / 64) * hflash.memory.TileSummaries.recordBytes(64, DType.F16);
      assertTrue(rep.summaryBytesRead() < allTileRecords,
          "the block level spares some tile summaries: " + rep);
    }
  }

  /**
   * Stage 1 takes exactly the keys 0, delta, 2 delta, ... from the two-phase sample store (any
   * multiple of 8, odd and even multiples, a last partial block), and a stride of 16 reads only
   * phase 0: half the store's bytes.
   */
  @ParameterizedTest(name = "{0}")
  @org.junit.jupiter.params.provider.EnumSource(value = DType.class, names = {"F32", "Q8_0", "Q4_0"})
  void samplingTakesEveryDeltaThKeyAndStride16ReadsHalfTheStore(DType dt) {
    int d = 8, n = 70 * 8 + 5, kvHeads = 2, heads = 4;
    Random r = new Random(11);
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, kvHeads, d, n, dt, 64));
        DecodeAttention att = DecodeAttention.create(cache, heads, 1, 1f)) {
      float[] k = new float[n * kvHeads * d], v = new float[n * kvHeads * d];
      for (int i = 0; i < k.length; i++) {
        k[i] = (float) r.nextGaussian();
        v[i] = (float) r.nextGaussian();
      }
      cache.append(0, n, k, v);
      float[] q = new float[heads * d];
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) r.nextGaussian();
      }
      float[] out = new float[heads * d];
      int stored = (n + 7) / 8;
      for (int delta : new int[] {8, 16, 24, 32, 40}) {
        att.decode(0, q, out, n, AttentionConfig.sampled(delta, 0, 0f));
        for (int h = 0; h < heads; h++) {
          int kh = h / (heads / kvHeads);
          double best = Double.NEGATIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
          for (int j = 0; j < n; j++) {
            double dot = 0;
            for (int c = 0; c < d; c++) {
              dot += (double) q[h * d + c] * cache.key(0, kh, j, c);
            }
            max = Math.max(max, dot);
            if (j % delta == 0) {
              best = Math.max(best, dot);
            }
          }
          assertEquals(max - best, att.report().estimateMiss(h), 1e-5,
              "delta=" + delta + " head " + h + ": miss = true max - best sample");
        }
        int phaseRows = delta % 16 == 0 ? (stored + 1) / 2 : stored;
        assertEquals((long) phaseRows * cache.layout().rowBytes() * kvHeads,
            att.report().sampleBytesRead(), "delta=" + delta + ": store bytes read");
      }
    }
  }

  /**
   * Loose bounds, concentrated mass: keys with a large isotropic part (so box and ball bounds sit
   * several logits above every tile's true max) and two hot tiles. Certified falls back to the
   * K-scan: every K is scored, V is read only for the tiles the exact masses need, and the bound
   * and rho still hold.
   */
  @ParameterizedTest(name = "{0}")
  @EnumSource(value = Scheduler.class)
  void kScanReadsValuesOnlyWhereTheMassIs(Scheduler scheduler) {
    int d = 64, n = 64 * 64, kvHeads = 1, heads = 4;
    Random r = new Random(5);
    int threads = scheduler == Scheduler.SERIAL ? 1 : 2;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, kvHeads, d, n, DType.F32, 64));
        DecodeAttention att = DecodeAttention.create(cache, heads, threads, (float) (1 / Math.sqrt(d)), scheduler)) {
      float[] q = new float[heads * d];
      float[] dir = new float[d];
      for (int c = 0; c < d; c++) {
        dir[c] = (float) r.nextGaussian();
      }
      double dn = 0;
      for (float x : dir) {
        dn += x * x;
      }
      for (int h = 0; h < heads; h++) { // every head looks along dir, plus a little of its own
        for (int c = 0; c < d; c++) {
          q[h * d + c] = (float) (dir[c] / Math.sqrt(dn) * 8 + 0.3 * r.nextGaussian());
        }
      }
      float[] k = new float[n * d], v = new float[n * d];
      for (int j = 0; j < n; j++) {
        boolean hot = j / 64 == 10 || j / 64 == 40;
        for (int c = 0; c < d; c++) {
          k[j * d + c] = (float) (3 * r.nextGaussian() + (hot ? 1.5 * dir[c] / Math.sqrt(dn) * 8 : 0));
          v[j * d + c] = (float) r.nextGaussian();
        }
      }
      cache.append(0, n, k, v);
      double[] ref = ReferenceAttention.decode(cache, 0, q, heads, n, 1 / Math.sqrt(d));
      float[] exact = new float[heads * d], out = new float[heads * d];
      att.decode(0, q, exact);
      for (double eps : new double[] {1e-1, 3e-2}) {
        att.decode(0, q, out, n, AttentionConfig.certified(eps));
        AttentionReport rep = att.report();
        String msg = scheduler + " eps " + eps + " " + rep;
        assertEquals(n, rep.keysScored(), "every key scored once: " + msg);
        assertTrue(rep.kvBytesRead() < 0.6 * 2L * n * d * 4, "V read for few tiles: " + msg);
        for (int h = 0; h < heads; h++) {
          double err = headError(out, ref, h, d);
          double slack = 4 * headError(exact, ref, h, d) + 1e-5 * norm(ref, h, d) + 1e-7;
          assertTrue(err <= rep.errorBound(h) + slack, "head " + h + ": error " + err + " > bound "
              + rep.errorBound(h) + " " + msg);
          assertTrue(rep.rho(h) <= eps / (1 + eps) * (1 + 1e-9), "rho " + rep.rho(h) + " " + msg);
        }
      }
    }
  }

  /**
   * Every key is scored once by the bounded modes whatever the context length, including shorter
   * than a tile (the open tile is then tile 0, once), and sampled's refinement scores a tile once
   * for the group even where the heads' windows overlap.
   */
  @Test
  void shortContextsScoreEachKeyOnce() {
    int d = 8, kvHeads = 2, heads = 4, tile = 64;
    Random r = new Random(9);
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, kvHeads, d, 200, DType.F32, tile));
        DecodeAttention att = DecodeAttention.create(cache, heads, 1)) {
      float[] q = new float[heads * d];
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) r.nextGaussian();
      }
      float[] out = new float[heads * d];
      for (int n = 1; n <= 200; n++) {
        float[] k = new float[kvHeads * d], v = new float[kvHeads * d];
        for (int i = 0; i < k.length; i++) {
          k[i] = (float) r.nextGaussian();
          v[i] = (float) r.nextGaussian();
        }
        cache.append(0, k, v);
        for (AttentionConfig cfg : new AttentionConfig[] {AttentionConfig.certified(1e-3),
            AttentionConfig.budgetedTiles(1), AttentionConfig.budgetedShare(1.0)}) {
          att.decode(0, q, out, n, cfg);
          assertTrue(att.report().keysScored() <= (long) n * kvHeads, cfg + " n=" + n + " " + att.report());
        }
        att.decode(0, q, out, n, AttentionConfig.sampled(8, 8, 2f));
        // the main pass scores every key once; the refinement at most one tile per KV head here
        // (all windows are within +-8 keys of one tile when n <= 64)
        if (n <= tile) {
          assertEquals(2L * n * kvHeads, att.report().keysScored(), "sampled n=" + n + " " + att.report());
        }
      }
    }
  }

  @Test
  void guardFiresWhenTheEstimateMissesBadly() {
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 1, 4, 4096, DType.F32, 64));
        DecodeAttention att = DecodeAttention.create(cache, 1, 1, 1f)) {
      for (int j = 0; j < 4096; j++) { // all scores 0 except one spike of 50 off the sample grid
        float x = j == 3001 ? 50f : 0f;
        cache.append(0, new float[] {x, 0, 0, 0}, new float[] {j, 1, 0, 0});
      }
      float[] q = {1, 0, 0, 0};
      float[] out = new float[4];
      att.decode(0, q, out, 4096, AttentionConfig.sampled(16, 0, 1f));
      assertEquals(1, att.report().guardFirings());
      assertEquals(50.0, att.report().estimateMiss(0), 1e-6);
      double[] ref = ReferenceAttention.decode(cache, 0, q, 1, 4096, 1.0);
      assertTrue(ReferenceAttention.relError(out, ref) < 1e-6);
    }
  }

  @Test
  void badParametersAreRejected() {
    assertEquals("epsilon must be finite and > 0: 0.0",
        assertThrows(IllegalArgumentException.class, () -> AttentionConfig.certified(0)).getMessage());
    assertThrows(IllegalArgumentException.class, () -> AttentionConfig.certified(Double.NaN));
    assertThrows(IllegalArgumentException.class, () -> AttentionConfig.certified(-1));
    assertEquals("budget tiles must be > 0: 0",
        assertThrows(IllegalArgumentException.class, () -> AttentionConfig.budgetedTiles(0)).getMessage());
    assertThrows(IllegalArgumentException.class, () -> AttentionConfig.budgetedShare(1.5));
    assertThrows(IllegalArgumentException.class, () -> AttentionConfig.budgetedBytes(0));
    assertEquals("delta must be >= 1: 0",
        assertThrows(IllegalArgumentException.class, () -> AttentionConfig.sampled(0, 32, 1f)).getMessage());
    assertEquals("radius must be >= 0: -1",
        assertThrows(IllegalArgumentException.class, () -> AttentionConfig.sampled(8, -1, 1f)).getMessage());
    assertThrows(IllegalArgumentException.class, () -> AttentionConfig.sampled(8, 1, Float.NaN));
    assertThrows(IllegalArgumentException.class, () -> AttentionMode.parse("fast"));
  }
}
