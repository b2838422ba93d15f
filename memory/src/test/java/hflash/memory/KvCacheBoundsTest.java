package hflash.memory;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Every rejection of the public API, with its exact message, and that rejections write nothing. */
class KvCacheBoundsTest {

  // 2 layers, 2 kv heads, headDim 4, capacity 8: one position is 8 floats of k and 8 of v
  private static final KvCacheLayout LAYOUT = new KvCacheLayout(2, 2, 4, 8, DType.F32, 32);

  private static float[] row(float fill) {
    float[] x = new float[8];
    Arrays.fill(x, fill);
    return x;
  }

  /** Runs a call that must throw {@code type} with {@code message} and leave the cache as it was. */
  private static <T extends Throwable> void assertRejected(KvCache cache, Class<T> type,
      String message, Executable call) {
    byte[] keys = cache.keys().toArray(ValueLayout.JAVA_BYTE);
    byte[] values = cache.values().toArray(ValueLayout.JAVA_BYTE);
    int[] lengths = new int[cache.layout().layers()];
    Arrays.setAll(lengths, cache::length);
    T e = assertThrows(type, call);
    assertEquals(message, e.getMessage());
    assertArrayEquals(keys, cache.keys().toArray(ValueLayout.JAVA_BYTE), "K changed: " + message);
    assertArrayEquals(values, cache.values().toArray(ValueLayout.JAVA_BYTE),
        "V changed: " + message);
    for (int layer = 0; layer < lengths.length; layer++) {
      assertEquals(lengths[layer], cache.length(layer), "length changed: " + message);
    }
  }

  @Test
  void allocateRejectsNullLayout() {
    var e = assertThrows(IllegalArgumentException.class, () -> KvCache.allocate(null));
    assertEquals("layout must not be null", e.getMessage());
  }

  @Test
  void appendRejectsLayerOutOfRange() {
    try (var cache = KvCache.allocate(LAYOUT)) {
      assertRejected(cache, IndexOutOfBoundsException.class, "layer out of range [0, 2): 2",
          () -> cache.append(2, row(1), row(1)));
      assertRejected(cache, IndexOutOfBoundsException.class, "layer out of range [0, 2): -1",
          () -> cache.append(-1, 1, row(1), row(1)));
    }
  }

  @Test
  void appendRejectsNullAndWrongLengths() {
    try (var cache = KvCache.allocate(LAYOUT)) {
      cache.append(0, row(1), row(2));
      assertRejected(cache, IllegalArgumentException.class, "k must not be null",
          () -> cache.append(0, null, row(1)));
      assertRejected(cache, IllegalArgumentException.class, "v must not be null",
          () -> cache.append(0, row(1), null));
      assertRejected(cache, IllegalArgumentException.class,
          "k length differs from kvHeads*headDim: 7!=8",
          () -> cache.append(0, new float[7], row(1)));
      assertRejected(cache, IllegalArgumentException.class,
          "v length differs from kvHeads*headDim: 9!=8",
          () -> cache.append(1, row(1), new float[9]));
      assertRejected(cache, IllegalArgumentException.class,
          "k length differs from count*kvHeads*headDim: 15!=16",
          () -> cache.append(0, 2, new float[15], new float[16]));
      assertRejected(cache, IllegalArgumentException.class, "count must be >= 0: -1",
          () -> cache.append(0, -1, new float[0], new float[0]));
    }
  }

  @Test
  void appendRejectsAFullLayerAndAnOversizedBatch() {
    try (var cache = KvCache.allocate(LAYOUT)) {
      cache.append(1, 8, new float[64], new float[64]);
      assertRejected(cache, IllegalStateException.class, "cache is full: capacity 8 (layer=1)",
          () -> cache.append(1, row(1), row(1)));
      assertRejected(cache, IllegalStateException.class, "cache is full: capacity 8 (layer=1)",
          () -> cache.append(1, 1, row(1), row(1)));
      cache.append(0, 6, new float[48], new float[48]);
      assertRejected(cache, IllegalStateException.class, "batch exceeds capacity: 6+3>8 (layer=0)",
          () -> cache.append(0, 3, new float[24], new float[24]));
      cache.append(0, 2, new float[16], new float[16]); // exactly fills it
      assertEquals(8, cache.length(0));
    }
  }

  @Test
  void appendRejectsNonFiniteValues() {
    try (var cache = KvCache.allocate(LAYOUT)) {
      cache.append(0, row(1), row(1));
      float[] k = row(1);
      k[5] = Float.NaN;
      assertRejected(cache, IllegalArgumentException.class,
          "non-finite value at k[5]=NaN (layer=0, position=1)", () -> cache.append(0, k, row(1)));
      float[] v = row(1);
      v[7] = Float.NEGATIVE_INFINITY;
      assertRejected(cache, IllegalArgumentException.class,
          "non-finite value at v[7]=-Infinity (layer=1, position=0)",
          () -> cache.append(1, row(1), v));
    }
  }

  @Test
  void appendRejectsValuesThatOverflowTheDtype() {
    try (var cache = KvCache.allocate(new KvCacheLayout(1, 2, 4, 8, DType.F16, 32))) {
      cache.append(0, 2, new float[16], new float[16]);
      float[] v = row(1);
      v[3] = 70000f;
      assertRejected(cache, IllegalArgumentException.class,
          "value out of f16 range at v[3]=70000.0 (layer=0, position=2)",
          () -> cache.append(0, row(1), v));
      float[] k = row(65504f);
      k[0] = -65520f;
      assertRejected(cache, IllegalArgumentException.class,
          "value out of f16 range at k[0]=-65520.0 (layer=0, position=2)",
          () -> cache.append(0, k, row(1)));
      cache.append(0, row(65504f), row(Math.nextDown(65520f))); // largest admissible values
      assertEquals(65504f, cache.value(0, 1, 2, 3));
    }
    try (var cache = KvCache.allocate(new KvCacheLayout(1, 2, 4, 8, DType.BF16, 32))) {
      float[] k = row(1);
      k[6] = Float.MAX_VALUE;
      assertRejected(cache, IllegalArgumentException.class,
          "value out of bf16 range at k[6]=3.4028235E38 (layer=0, position=0)",
          () -> cache.append(0, k, row(1)));
    }
    try (var cache = KvCache.allocate(LAYOUT)) {
      cache.append(0, row(Float.MAX_VALUE), row(-Float.MAX_VALUE)); // f32: every finite value
      assertEquals(Float.MAX_VALUE, cache.key(0, 1, 0, 3));
    }
  }

  @Test
  void batchWhoseLastRowIsBadWritesNothing() {
    try (var cache = KvCache.allocate(LAYOUT)) {
      cache.append(0, row(1), row(1));
      float[] k = new float[3 * 8];
      float[] v = new float[3 * 8];
      Arrays.fill(k, 2f);
      Arrays.fill(v, 3f);
      v[3 * 8 - 1] = Float.POSITIVE_INFINITY;
      assertRejected(cache, IllegalArgumentException.class,
          "non-finite value at v[23]=Infinity (layer=0, position=3)",
          () -> cache.append(0, 3, k, v));
    }
  }

  @Test
  void firstBadElementIsReportedWhenSeveralAre() {
    try (var cache = KvCache.allocate(new KvCacheLayout(1, 1, 4, 8, DType.F16, 32))) {
      float[] k = {1, 1e6f, Float.NaN, 1};
      assertRejected(cache, IllegalArgumentException.class,
          "value out of f16 range at k[1]=1000000.0 (layer=0, position=0)",
          () -> cache.append(0, k, new float[4]));
    }
  }

  @Test
  void elementAccessThrowsIffOutOfRange() {
    try (var cache = KvCache.allocate(LAYOUT)) {
      cache.append(0, 3, new float[24], new float[24]);
      for (int layer = -1; layer <= 2; layer++) {
        for (int h = -1; h <= 2; h++) {
          for (int pos = -1; pos <= 3; pos++) {
            for (int c = -1; c <= 4; c++) {
              boolean shouldFail = layer < 0 || layer >= 2 || h < 0 || h >= 2 || c < 0 || c >= 4
                  || pos < 0 || pos >= (layer == 0 ? 3 : 0);
              int l = layer;
              int hh = h;
              int p = pos;
              int cc = c;
              if (shouldFail) {
                assertThrows(IndexOutOfBoundsException.class, () -> cache.key(l, hh, p, cc));
                assertThrows(IndexOutOfBoundsException.class, () -> cache.value(l, hh, p, cc));
              } else {
                assertEquals(0f, cache.key(l, hh, p, cc));
                assertEquals(0f, cache.value(l, hh, p, cc));
              }
            }
          }
        }
      }
      assertEquals("position out of range [0, 3): 3 (layer=0)",
          assertThrows(IndexOutOfBoundsException.class, () -> cache.key(0, 0, 3, 0)).getMessage());
      assertEquals("kvHead out of range [0, 2): 2",
          assertThrows(IndexOutOfBoundsException.class, () -> cache.value(0, 2, 0, 0))
              .getMessage());
      assertEquals("channel out of range [0, 4): 4",
          assertThrows(IndexOutOfBoundsException.class, () -> cache.key(0, 0, 0, 4)).getMessage());
      assertEquals("layer out of range [0, 2): 5",
          assertThrows(IndexOutOfBoundsException.class, () -> cache.length(5)).getMessage());
    }
  }

  @Test
  void tileAccessThrowsIffOutOfRange() {
    // capacity 40 pads to 2 tiles of 32
    try (var cache = KvCache.allocate(new KvCacheLayout(2, 2, 4, 40, DType.F32, 32))) {
      cache.append(0, 33, new float[33 * 8], new float[33 * 8]); // tiles [0,32) and [32,33)
      for (int tile = -1; tile <= 3; tile++) {
        int t = tile;
        if (tile == 0 || tile == 1) {
          cache.keyTile(0, 1, t);
          cache.valueTile(0, 1, t);
        } else {
          assertThrows(IndexOutOfBoundsException.class, () -> cache.keyTile(0, 1, t));
          assertThrows(IndexOutOfBoundsException.class, () -> cache.valueTile(0, 1, t));
        }
      }
      assertEquals("tile out of range [0, 2): 2 (layer=0, length=33)",
          assertThrows(IndexOutOfBoundsException.class, () -> cache.keyTile(0, 0, 2))
              .getMessage());
      cache.truncate(0, 32); // the second tile is still reserved, but no longer stored
      assertEquals("tile out of range [0, 1): 1 (layer=0, length=32)",
          assertThrows(IndexOutOfBoundsException.class, () -> cache.valueTile(0, 1, 1))
              .getMessage());
      assertEquals("tile out of range [0, 0): 0 (layer=1, length=0)",
          assertThrows(IndexOutOfBoundsException.class, () -> cache.valueTile(1, 0, 0))
              .getMessage());
      assertEquals("kvHead out of range [0, 2): -1",
          assertThrows(IndexOutOfBoundsException.class, () -> cache.keyTile(0, -1, 0))
              .getMessage());
      assertEquals("layer out of range [0, 2): 2",
          assertThrows(IndexOutOfBoundsException.class, () -> cache.valueTile(2, 0, 0))
              .getMessage());
    }
  }

  @Test
  void truncateRejectsNegativeLengthsAndBadLayers() {
    try (var cache = KvCache.allocate(LAYOUT)) {
      cache.append(0, row(1), row(1));
      assertRejected(cache, IllegalArgumentException.class, "truncate length must be >= 0: -1",
          () -> cache.truncate(-1));
      assertRejected(cache, IllegalArgumentException.class, "truncate length must be >= 0: -3",
          () -> cache.truncate(0, -3));
      assertRejected(cache, IndexOutOfBoundsException.class, "layer out of range [0, 2): 2",
          () -> cache.truncate(2, 0));
    }
  }

  @Test
  void borrowedSegmentsAreReadOnly() {
    // since JDK 22 a write to a read-only segment throws IllegalArgumentException
    try (var cache = KvCache.allocate(LAYOUT)) {
      cache.append(0, row(1), row(1));
      assertThrows(IllegalArgumentException.class,
          () -> cache.keys().set(ValueLayout.JAVA_BYTE, 0, (byte) 1));
      assertThrows(IllegalArgumentException.class,
          () -> cache.valueTile(0, 0, 0).set(ValueLayout.JAVA_BYTE, 0, (byte) 1));
    }
  }
}
