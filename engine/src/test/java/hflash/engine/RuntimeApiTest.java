package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/** What a runtime uses besides plain decode: sinks + window, and causal prefill. */
class RuntimeApiTest {

  /** float64 attention over the keys [0, sinks) and [max(sinks, n - window), n) only. */
  private static double[] windowReference(KvCache cache, float[] q, int heads, int n, int sinks,
      int window, double scale) {
    KvCacheLayout lay = cache.layout();
    int d = lay.headDim(), kvHeads = lay.kvHeads();
    int s = Math.min(sinks, n), w0 = Math.max(s, n - window);
    int kept = s + (n - w0);
    float[] k = new float[kvHeads * kept * d], v = new float[kvHeads * kept * d];
    for (int kh = 0; kh < kvHeads; kh++) {
      int j = 0;
      for (int pos = 0; pos < n; pos++) {
        if (pos < s || pos >= w0) {
          for (int c = 0; c < d; c++) {
            k[(kh * kept + j) * d + c] = cache.key(0, kh, pos, c);
            v[(kh * kept + j) * d + c] = cache.value(0, kh, pos, c);
          }
          j++;
        }
      }
    }
    return ReferenceAttention.decode(q, k, v, heads, kvHeads, d, kept, scale);
  }

  @ParameterizedTest(name = "n={0} sinks={1} window={2} threads={3}")
  @CsvSource({"1000,4,100,1", "1000,0,64,2", "1000,4,990,2", "100,200,10,1", "5000,64,1024,3",
      "777,33,31,2"})
  void streamingAttendsToSinksAndWindowOnly(int n, int sinks, int window, int threads) {
    Random r = new Random(n + sinks + window);
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, 16, n, DType.F32, 32));
        DecodeAttention att = DecodeAttention.create(cache, 4, threads)) {
      TestData.fill(cache, 0, n, r);
      float[] q = TestData.queryWithScoreMagnitude(4, 16, 4f, r);
      float[] out = new float[64];
      att.decode(0, q, out, n, AttentionConfig.streaming(sinks, window));
      double[] ref = windowReference(cache, q, 4, n, sinks, window, 0.25);
      assertTrue(ReferenceAttention.relError(out, ref) < 2e-6, "rel " + ReferenceAttention.relError(out, ref));
      long attended = Math.min(n, Math.min(sinks, n) + window);
      assertTrue(att.report().keysScored() < 2L * (attended + 64) + 1, att.report().toString());
    }
  }

  @Test
  void windowIsRejectedOutsideExactMode() {
    assertThrows(IllegalArgumentException.class, () -> AttentionConfig.streaming(4, 0));
    assertEquals("a window (sinks + recent keys) is only supported in exact mode: sampled",
        assertThrows(IllegalArgumentException.class, () -> new AttentionConfig(AttentionMode.SAMPLED,
            0, 0, 0, 0, 16, 32, 2f, 20f, 4, 100)).getMessage());
  }

  @Test
  void prefillEqualsOneDecodePerRow() {
    Random r = new Random(9);
    int n = 300, rows = 40, first = n - rows;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, 16, n, DType.F16, 32));
        DecodeAttention att = DecodeAttention.create(cache, 4, 2)) {
      TestData.fill(cache, 0, n, r);
      float[] q = new float[rows * 64];
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) r.nextGaussian();
      }
      float[] out = new float[rows * 64];
      att.prefill(0, q, out, first, rows, AttentionConfig.exact());
      long expected = 0;
      for (int i = 0; i < rows; i++) {
        expected += 2L * (first + i + 1);
      }
      assertEquals(expected, att.report().keysInContext());
      // the tiled exact prefill scores each key once per block of 64 rows: the 40 rows are one
      // block reaching position 299, for 2 KV heads
      assertEquals(2L * 300, att.report().keysScored());
      float[] row = new float[64], one = new float[64];
      for (int i = 0; i < rows; i++) {
        System.arraycopy(q, i * 64, row, 0, 64);
        att.decode(0, row, one, first + i + 1);
        float[] got = new float[64];
        System.arraycopy(out, i * 64, got, 0, 64);
        TestData.assertDecodeBits(att.kernels(), one, got, "row " + i);
      }
      assertEquals("prefill rows past the cache: 290+40 > 300 (layer=0)",
          assertThrows(IndexOutOfBoundsException.class,
              () -> att.prefill(0, q, out, 290, rows, AttentionConfig.exact())).getMessage());
      assertThrows(IllegalArgumentException.class,
          () -> att.prefill(0, new float[5], out, 0, rows, AttentionConfig.exact()));
    }
  }
}
