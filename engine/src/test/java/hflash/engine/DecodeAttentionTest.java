package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
 * Conformance of exact decode attention against the float64 reference over the stored values.
 *
 * <p>Tolerance (flash-attention's rule, STYLE.md C5): the engine's max abs error against float64
 * is at most twice that of a naive float32 three-pass implementation, plus 1e-6 relative slack.
 * The figure reached is printed; typical f32 relative L2 error is 1e-7 .. 1e-6.
 */
class DecodeAttentionTest {

  static Stream<Arguments> grid() {
    int[] dims = {1, 7, 8, 64, 80, 128, 256};
    int[] lengths = {1, 15, 16, 17, 63, 64, 65, 1021, 4096};
    int[] gqas = {1, 2, 4, 8};
    int[] threads = {1, 2, 3};
    List<Arguments> out = new ArrayList<>();
    int i = 0;
    for (DType dt : DType.values()) {
      for (int d : dims) {
        for (int g : gqas) {
          if (dt.quantized() && (g == 2 || g == 8)) {
            continue; // the block dtypes' kernels see g through the same 4-head/1-head split: 1 and 4 cover it
          }
          int n = lengths[i % lengths.length];
          int t = threads[i % threads.length];
          float magnitude = (i % 5 == 0) ? 25f : 4f; // std 25: largest scores near +-80
          out.add(Arguments.of(dt, d, n, g, t, magnitude, 1000L + i));
          i++;
        }
      }
      if (!dt.quantized()) { // the block dtypes share the kernels' loop code: the 4096 case covers them
        out.add(Arguments.of(dt, 64, 70000, 4, 3, 4f, 2000L + i++));
      }
      out.add(Arguments.of(dt, 128, 4096, 8, 2, 25f, 2000L + i++));
    }
    return out.stream();
  }

  @ParameterizedTest(name = "{0} d={1} n={2} gqa={3} threads={4} scores~{5}")
  @MethodSource("grid")
  void matchesFloat64Reference(DType dt, int d, int n, int gqa, int threads, float magnitude,
      long seed) {
    int kvHeads = gqa == 8 ? 1 : 2;
    int numHeads = kvHeads * gqa;
    Random r = new Random(seed);
    KvCacheLayout layout = new KvCacheLayout(2, kvHeads, d, n + 3, dt, 64);
    try (KvCache cache = KvCache.allocate(layout);
        DecodeAttention att = DecodeAttention.create(cache, numHeads, threads)) {
      TestData.fill(cache, 1, n, r);
      float[] q = TestData.queryWithScoreMagnitude(numHeads, d, magnitude, r);
      float[] out = new float[numHeads * d];
      att.decode(1, q, out);
      double scale = 1.0 / Math.sqrt(d);
      double[] ref = ReferenceAttention.decode(cache, 1, q, numHeads, n, scale);
      float[] naive = TestData.naiveFloat(cache, 1, q, numHeads, n, (float) scale);
      double err = TestData.maxAbsError(out, ref);
      double naiveErr = TestData.maxAbsError(naive, ref);
      double rel = ReferenceAttention.relError(out, ref);
      double maxScore = TestData.maxAbsScore(cache, 1, q, numHeads, n, scale);
      String msg = "seed=" + seed + " maxAbs=" + err + " naiveMaxAbs=" + naiveErr + " rel=" + rel
          + " max|s|=" + maxScore;
      // float32 rounds each score by about u*|s| (u = 2^-24), and exp turns that into a relative
      // error of the weights: the slack grows with the largest score, as naive float32's does
      double u = Math.ulp(1f) / 2;
      assertTrue(err <= 2 * naiveErr + 4 * u * (1 + maxScore) * TestData.maxAbs(ref) + 1e-30, msg);
      assertTrue(rel <= 1e-6 * (2 + maxScore / 4), msg);
      AttentionReport rep = att.report();
      assertEquals((long) n * kvHeads, rep.keysScored());
      assertEquals(2L * n * kvHeads * layout.rowBytes(), rep.kvBytesRead());
      assertEquals((long) ((n + 63) / 64) * kvHeads, rep.tilesRead());
    }
  }

  @Test
  void sameInputAndThreadCountGiveTheSameBits() {
    Random r = new Random(11);
    KvCacheLayout layout = new KvCacheLayout(1, 2, 64, 5000, DType.F32, 64);
    try (KvCache cache = KvCache.allocate(layout);
        DecodeAttention a3 = DecodeAttention.create(cache, 8, 3);
        DecodeAttention b3 = DecodeAttention.create(cache, 8, 3);
        DecodeAttention one = DecodeAttention.create(cache, 8, 1)) {
      TestData.fill(cache, 0, 5000, r);
      float[] q = TestData.queryWithScoreMagnitude(8, 64, 8f, r);
      float[] x = new float[8 * 64], y = new float[8 * 64], z = new float[8 * 64];
      a3.decode(0, q, x);
      b3.decode(0, q, y);
      assertArrayEquals(x, y, "same thread count, same bits");
      for (int rep = 0; rep < 20; rep++) {
        a3.decode(0, q, y);
        assertArrayEquals(x, y, "repeat " + rep);
      }
      one.decode(0, q, z);
      double[] ref = ReferenceAttention.decode(cache, 0, q, 8, 5000, 1 / Math.sqrt(64));
      assertTrue(ReferenceAttention.relError(z, ref) < 2e-6);
      assertTrue(ReferenceAttention.relError(x, ref) < 2e-6);
    }
  }

  @Test
  void causalPrefixAndEmptyContext() {
    Random r = new Random(5);
    KvCacheLayout layout = new KvCacheLayout(1, 1, 16, 300, DType.BF16, 32);
    try (KvCache cache = KvCache.allocate(layout);
        DecodeAttention att = DecodeAttention.create(cache, 2, 2)) {
      float[] q = TestData.queryWithScoreMagnitude(2, 16, 3f, r);
      float[] out = new float[32];
      java.util.Arrays.fill(out, 9f);
      att.decode(0, q, out);
      assertArrayEquals(new float[32], out, "no keys: zeros");
      assertEquals(0, att.report().keysScored());
      TestData.fill(cache, 0, 300, r);
      for (int keys : new int[] {1, 31, 32, 33, 299, 300}) {
        att.decode(0, q, out, keys);
        double[] ref = ReferenceAttention.decode(cache, 0, q, 2, keys, 0.25);
        assertTrue(ReferenceAttention.relError(out, ref) < 2e-6, "keys=" + keys);
      }
    }
  }

  @Test
  void explicitScaleIsUsed() {
    Random r = new Random(8);
    KvCacheLayout layout = new KvCacheLayout(1, 1, 8, 100, DType.F32, 32);
    try (KvCache cache = KvCache.allocate(layout);
        DecodeAttention att = DecodeAttention.create(cache, 1, 1, 0.7f)) {
      TestData.fill(cache, 0, 100, r);
      float[] q = TestData.queryWithScoreMagnitude(1, 8, 3f, r);
      float[] out = new float[8];
      att.decode(0, q, out);
      assertTrue(ReferenceAttention.relError(out, ReferenceAttention.decode(cache, 0, q, 1, 100, 0.7f)) < 2e-6);
    }
  }

  @Test
  void decodeAllocatesNothingInSteadyState() {
    Random r = new Random(3);
    KvCacheLayout layout = new KvCacheLayout(1, 2, 64, 2048, DType.F16, 64);
    try (KvCache cache = KvCache.allocate(layout);
        DecodeAttention att = DecodeAttention.create(cache, 8, 2)) {
      TestData.fill(cache, 0, 2048, r);
      float[] q = TestData.queryWithScoreMagnitude(8, 64, 4f, r);
      float[] out = new float[8 * 64];
      for (int i = 0; i < 2000; i++) { // warm up: let the JIT compile and escape-analyse
        att.decode(0, q, out);
      }
      var threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
      long before = threads.getCurrentThreadAllocatedBytes();
      for (int i = 0; i < 200; i++) {
        att.decode(0, q, out);
      }
      long perCall = (threads.getCurrentThreadAllocatedBytes() - before) / 200;
      assertTrue(perCall < 64, "bytes allocated per decode call on the calling thread: " + perCall);
    }
  }
}
