package hflash.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.bench.StructuredWorkload.HeadType;
import hflash.bench.StructuredWorkload.Region;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The generator's documented statistics (docs/WORKLOAD.md) at a small n, its determinism, and that
 * {@link StructuredWorkload#fill} stores exactly what the per-head streams produce.
 */
class StructuredWorkloadTest {

  static final long SEED = 7;
  static final int N = 4096;
  static final int HEADS = 16;
  static final int KV_HEADS = 8;
  static final int DIM = 64;

  static StructuredWorkload w;
  static float[][] keys; // (kvHeads) of (n, dim)
  static double[][] shares; // (heads) of {sinks+window, clusters, top1%, top10%}

  @BeforeAll
  static void generate() {
    w = new StructuredWorkload(StructuredWorkload.Params.of(N, HEADS, KV_HEADS, DIM, SEED));
    keys = new float[KV_HEADS][];
    for (int g = 0; g < KV_HEADS; g++) {
      keys[g] = new float[N * DIM];
      w.keys(g).next(N, keys[g], 0, DIM, new float[N * DIM], 0, DIM);
    }
    float[] q = w.query();
    shares = new double[HEADS][];
    for (int h = 0; h < HEADS; h++) {
      shares[h] = shares(h / (HEADS / KV_HEADS), q, h * DIM);
    }
  }

  /** {sinks+window share, cluster share, top-1 % share, top-10 % share} of one head over all n keys. */
  static double[] shares(int g, float[] q, int qOff) {
    double[] s = new double[N];
    double max = Double.NEGATIVE_INFINITY;
    for (int j = 0; j < N; j++) {
      double acc = 0;
      for (int c = 0; c < DIM; c++) {
        acc += (double) q[qOff + c] * keys[g][j * DIM + c];
      }
      s[j] = acc * w.scale();
      max = Math.max(max, s[j]);
    }
    double z = 0;
    double sw = 0;
    double cl = 0;
    double[] p = new double[N];
    for (int j = 0; j < N; j++) {
      p[j] = Math.exp(s[j] - max);
      z += p[j];
      Region r = w.region(g, j);
      if (r == Region.SINK || r == Region.RECENT) {
        sw += p[j];
      } else if (r == Region.CLUSTER) {
        cl += p[j];
      }
    }
    Arrays.sort(p);
    double top1 = 0;
    double top10 = 0;
    for (int i = 0; i < N / 10; i++) {
      double x = p[N - 1 - i];
      top10 += x;
      if (i < Math.ceil(N * 0.01)) {
        top1 += x;
      }
    }
    return new double[] {sw / z, cl / z, top1 / z, top10 / z};
  }

  private static String describe(int h) {
    return "head " + h + " (" + w.headType(h / (HEADS / KV_HEADS)) + ", seed " + SEED + "): sinks+window, clusters, top1, top10 = "
        + Arrays.toString(shares[h]);
  }

  @Test
  void headTypesFollowTheShares() {
    int[] count = new int[3];
    for (int g = 0; g < KV_HEADS; g++) {
      count[w.headType(g).ordinal()]++;
    }
    // 8 KV heads at 60 / 30 / 10 %: largest remainder gives 5 / 2 / 1
    assertArrayEquals(new int[] {5, 2, 1}, count);
  }

  @Test
  void streamingHeadsPutMostMassOnSinksAndTheRecentWindow() {
    for (int h = 0; h < HEADS; h++) {
      if (w.headType(h / 2) == HeadType.STREAMING) {
        assertTrue(shares[h][0] > 0.8, describe(h));
      }
    }
  }

  @Test
  void retrievalHeadsPutMostMassOnTheClusters() {
    for (int h = 0; h < HEADS; h++) {
      if (w.headType(h / 2) == HeadType.RETRIEVAL) {
        assertTrue(shares[h][1] > 0.5, describe(h));
        assertTrue(shares[h][0] < 0.4, describe(h));
      }
    }
  }

  @Test
  void broadHeadsSpreadTheirMass() {
    for (int h = 0; h < HEADS; h++) {
      if (w.headType(h / 2) == HeadType.BROAD) {
        assertTrue(shares[h][2] < 0.5, describe(h)); // the top 1 % of keys hold less than half
        assertTrue(shares[h][3] < 0.9, describe(h));
        assertTrue(shares[h][0] + shares[h][1] < 0.4, describe(h));
      }
    }
  }

  @Test
  void fillStoresWhatTheStreamsProduceInBatches() {
    int n = StructuredWorkload.FILL_BATCH * 2 + 37; // a last batch that is not full
    var small = new StructuredWorkload(StructuredWorkload.Params.of(n, 4, 2, 24, SEED));
    var layout = new KvCacheLayout(2, 2, 24, n, DType.F32, 64);
    try (KvCache cache = KvCache.allocate(layout)) {
      small.fill(cache, 1);
      assertEquals(n, cache.length(1));
      assertEquals(0, cache.length(0));
      for (int g = 0; g < 2; g++) {
        float[] k = new float[n * 24];
        float[] v = new float[n * 24];
        small.keys(g).next(n, k, 0, 24, v, 0, 24);
        for (int pos : new int[] {0, 1, 3, 1023, 1024, 2047, 2048, n - 1}) {
          for (int c = 0; c < 24; c++) {
            assertEquals(k[pos * 24 + c], cache.key(1, g, pos, c), "k pos " + pos + " c " + c);
            assertEquals(v[pos * 24 + c], cache.value(1, g, pos, c), "v pos " + pos + " c " + c);
          }
        }
      }
      var full = assertThrows(IllegalStateException.class, () -> small.fill(cache, 1));
      assertEquals("cache has room for 0 positions, workload needs " + n + " (layer=1)", full.getMessage());
      assertEquals(n, cache.length(1));
    }
  }

  @Test
  void fillRejectsAnotherShape() {
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 3, 24, 64, DType.F16, 64))) {
      var small = new StructuredWorkload(StructuredWorkload.Params.of(64, 4, 2, 24, SEED));
      var e = assertThrows(IllegalArgumentException.class, () -> small.fill(cache, 0));
      assertEquals("cache shape differs from the workload's (kvHeads, headDim): (3, 24)!=(2, 24)", e.getMessage());
    }
  }

  @Test
  void sameSeedSameDataOtherSeedOtherData() {
    var p = StructuredWorkload.Params.of(500, 4, 2, 16, SEED);
    var a = new StructuredWorkload(p);
    var b = new StructuredWorkload(p);
    var c = new StructuredWorkload(p.with("seed", "8"));
    assertArrayEquals(a.query(), b.query());
    assertFalse(Arrays.equals(a.query(), c.query()));
    float[] ka = new float[500 * 16];
    float[] kb = new float[500 * 16];
    a.keys(1).next(500, ka, 0, 16, new float[500 * 16], 0, 16);
    // in two pieces: a stream continues where it stopped
    var sb = b.keys(1);
    sb.next(123, kb, 0, 16, new float[123 * 16], 0, 16);
    sb.next(377, kb, 123 * 16, 16, new float[377 * 16], 0, 16);
    assertArrayEquals(ka, kb);
    assertEquals(500, sb.position());
    assertThrows(IllegalStateException.class, () -> sb.next(1, kb, 0, 16, kb, 0, 16));
    assertArrayEquals(a.query(3), a.query(), "the last row is the decode query");
    assertFalse(Arrays.equals(a.query(0), a.query(3)));
  }

  @Test
  void paramsRoundTripThroughMetadataAndNameTheirErrors() {
    var p = StructuredWorkload.Params.of(1000, 8, 4, 32, 99).with("sinkBoost", "4.5");
    assertEquals(p, StructuredWorkload.Params.fromMap(p.toMap()));
    assertEquals(4.5, p.sinkBoost());
    var unknown = assertThrows(IllegalArgumentException.class, () -> p.with("bogus", "1"));
    assertTrue(unknown.getMessage().startsWith("unknown workload parameter: bogus (expected one of context, heads,"),
        unknown.getMessage());
    var dim = assertThrows(IllegalArgumentException.class, () -> StructuredWorkload.Params.of(100, 4, 2, 6, 1));
    assertEquals("dim must be at least clusters + 3: 6 < 7", dim.getMessage());
    var gqa = assertThrows(IllegalArgumentException.class, () -> StructuredWorkload.Params.of(100, 32, 6, 64, 1));
    assertEquals("heads must be a multiple of kvHeads: 32 % 6 != 0", gqa.getMessage());
    var rho = assertThrows(IllegalArgumentException.class, () -> p.with("backgroundCorrelation", "1"));
    assertEquals("backgroundCorrelation must be in [0, 1): 1.0", rho.getMessage());
    var nan = assertThrows(IllegalArgumentException.class, () -> p.with("noiseStd", "x"));
    assertEquals("workload parameter noiseStd is not a number: x", nan.getMessage());
  }

  @Test
  void smallDimensionsReduceTheBackgroundRank() {
    var p = StructuredWorkload.Params.of(200, 8, 4, 8, 1); // the real traces' shape: d = 8
    var s = new StructuredWorkload(p);
    assertEquals(1, s.backgroundRank()); // 8 - 4 clusters - 3
    for (float x : s.query()) {
      assertTrue(Float.isFinite(x));
    }
  }
}
