package hflash.memory;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/** A q8_0/q4_0 cache: appends quantize block by block into the documented tile placement. */
class QuantKvCacheTest {

  private static float[] gaussian(Random r, int n) {
    float[] x = new float[n];
    for (int i = 0; i < n; i++) {
      x[i] = (float) (r.nextGaussian() * Math.pow(2, r.nextInt(8) - 4));
    }
    return x;
  }

  /** The ggml block of x[off .. off + len): scale then codes, contiguous. */
  private static byte[] ggml(DType t, float[] x, int off, int len) {
    MemorySegment seg = MemorySegment.ofArray(new byte[2 + QuantBlocks.codeBytes(t, len)]);
    QuantBlocks.quantize(t, x, off, len, seg, 0, 2, 1);
    return seg.toArray(ValueLayout.JAVA_BYTE);
  }

  @ParameterizedTest(name = "dtype={0} d={1}")
  @CsvSource({"Q8_0, 64", "Q8_0, 8", "Q8_0, 40", "Q4_0, 64", "Q4_0, 8", "Q4_0, 7"})
  void appendedRowsAreGgmlBlocksInTheTilePlacement(DType t, int d) {
    long seed = 4242L + d;
    Random r = new Random(seed);
    int heads = 2, n = 70, tt = 64;
    var layout = new KvCacheLayout(2, heads, d, n, t, tt);
    int len = QuantBlocks.blockLength(d);
    try (var cache = KvCache.allocate(layout)) {
      float[] k = gaussian(r, n * heads * d), v = gaussian(r, n * heads * d);
      cache.append(1, 3, Arrays.copyOfRange(k, 0, 3 * heads * d), Arrays.copyOfRange(v, 0, 3 * heads * d));
      for (int pos = 3; pos < n; pos++) {
        cache.append(1, Arrays.copyOfRange(k, pos * heads * d, (pos + 1) * heads * d),
            Arrays.copyOfRange(v, pos * heads * d, (pos + 1) * heads * d));
      }
      MemorySegment one = MemorySegment.ofArray(new byte[64]);
      for (int pos = 0; pos < n; pos++) {
        for (int h = 0; h < heads; h++) {
          int row = (pos * heads + h) * d;
          long tile = layout.tileOffset(1, h, pos / tt);
          for (int b = 0; b < d / len; b++) {
            String where = "seed=" + seed + " pos=" + pos + " h=" + h + " b=" + b;
            assertArrayEquals(ggml(t, k, row + b * len, len),
                QuantBlocks.keyBlockBytes(t, d, cache.keys(), tile, pos % tt, b), where);
            long at = tile + QuantBlocks.valueBlockOffset(t, d, tt, pos % tt, b);
            assertArrayEquals(ggml(t, v, row + b * len, len),
                cache.values().asSlice(at, QuantBlocks.blockBytes(t, d)).toArray(ValueLayout.JAVA_BYTE), where);
            QuantBlocks.quantize(t, k, row + b * len, len, one, 0, 2, 1);
            for (int e = 0; e < len; e++) {
              assertEquals(QuantBlocks.dequantize(t, one, 0, 2, 1, len, e), cache.key(1, h, pos, b * len + e), where);
            }
          }
          if (pos % KvCache.SAMPLE_STRIDE == 0) {
            for (int c = 0; c < d; c++) {
              assertEquals(cache.key(1, h, pos, c), cache.sample(1, h, pos / KvCache.SAMPLE_STRIDE, c),
                  "sample seed=" + seed + " pos=" + pos + " c=" + c);
            }
          }
        }
      }
      assertEquals(2L * 2 * heads * tt * t.rowBytes(d) * 2, cache.bytesReserved()); // 2 layers, 2 tiles
    }
  }

  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0"})
  void badValuesAreRejectedBeforeAnyWrite(DType t) {
    var layout = new KvCacheLayout(1, 2, 32, 8, t, 32);
    try (var cache = KvCache.allocate(layout)) {
      float[] ok = new float[64];
      Arrays.fill(ok, 0.5f);
      cache.append(0, ok, ok);
      byte[] keys = cache.keys().toArray(ValueLayout.JAVA_BYTE);
      byte[] values = cache.values().toArray(ValueLayout.JAVA_BYTE);
      float[] bad = ok.clone();
      bad[33] = Float.NaN;
      var e = assertThrows(IllegalArgumentException.class, () -> cache.append(0, ok, bad));
      assertEquals("non-finite value at v[33]=NaN (layer=0, position=1)", e.getMessage());
      bad[33] = Float.NEGATIVE_INFINITY;
      assertThrows(IllegalArgumentException.class, () -> cache.append(0, bad, ok));
      bad[33] = 1e7f * (t == DType.Q8_0 ? 1 : 0.1f); // scale past f16's 65504
      e = assertThrows(IllegalArgumentException.class, () -> cache.append(0, bad, ok));
      assertEquals("value out of " + t.id() + " range at k[33]=" + bad[33] + " (layer=0, position=1)", e.getMessage());
      assertEquals(1, cache.length(0));
      assertArrayEquals(keys, cache.keys().toArray(ValueLayout.JAVA_BYTE));
      assertArrayEquals(values, cache.values().toArray(ValueLayout.JAVA_BYTE));
      // the largest admitted magnitude stores a finite scale
      float big = Math.nextDown(t == DType.Q8_0 ? 65504f * 127f : 65504f * 7.5f);
      bad[33] = big;
      cache.append(0, bad, ok);
      assertTrue(Math.abs(cache.key(0, 1, 1, 1) - big) <= 65504f / 2, "largest value: " + cache.key(0, 1, 1, 1));
    }
  }

  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0"})
  void appendAllocatesNothing(DType t) {
    var layout = new KvCacheLayout(2, 2, 64, 4096, t, 128);
    try (var cache = KvCache.allocate(layout)) {
      float[] k = gaussian(new Random(5), 128), v = gaussian(new Random(6), 128);
      for (int i = 0; i < 300; i++) {
        cache.append(0, k, v); // warm up (JIT, escape analysis)
      }
      var threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
      long before = threads.getCurrentThreadAllocatedBytes();
      for (int i = 0; i < 2000; i++) {
        cache.append(1, k, v);
      }
      long perCall = (threads.getCurrentThreadAllocatedBytes() - before) / 2000;
      assertTrue(perCall < 16, "bytes allocated per append: " + perCall);
    }
  }
}
