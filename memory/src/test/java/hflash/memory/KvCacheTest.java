package hflash.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class KvCacheTest {

  private static final ValueLayout.OfShort I16_LE =
      ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  /** (kvHeads, headDim) or (count, kvHeads, headDim) of seeded values spanning many binades. */
  private static float[] randomRows(Random rnd, int n) {
    float[] x = new float[n];
    for (int i = 0; i < n; i++) {
      // 2^-40 .. 2^12: f16 subnormals and underflow, far from f16 overflow (65504 = 16 * 2^12)
      float mag = (float) Math.pow(2, rnd.nextInt(53) - 40);
      x[i] = (float) rnd.nextGaussian() * mag;
    }
    return x;
  }

  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"}) // element-wise; q8_0/q4_0: QuantKvCacheTest
  void appendStoresRoundedValuesAtTheLayoutOffsets(DType dtype) {
    long seed = 20240611L + dtype.ordinal();
    Random rnd = new Random(seed);
    // odd sizes on purpose: 70 positions span 3 tiles of 32 (the last one partly padding),
    // headDim 40 gives one full and one 8-wide V block
    int layers = 3;
    int heads = 2;
    int d = 40;
    int n = 70;
    var layout = new KvCacheLayout(layers, heads, d, n, dtype, 32);
    try (var cache = KvCache.allocate(layout)) {
      float[][][] ks = new float[layers][n][];
      float[][][] vs = new float[layers][n][];
      for (int pos = 0; pos < n; pos++) {
        for (int layer = 0; layer < layers; layer++) {
          ks[layer][pos] = randomRows(rnd, heads * d);
          vs[layer][pos] = randomRows(rnd, heads * d);
          cache.append(layer, ks[layer][pos], vs[layer][pos]);
          assertEquals(pos + 1, cache.length(layer));
        }
      }
      for (int layer = 0; layer < layers; layer++) {
        for (int pos = 0; pos < n; pos++) {
          for (int h = 0; h < heads; h++) {
            for (int c = 0; c < d; c++) {
              float k = dtype.round(ks[layer][pos][h * d + c]);
              float v = dtype.round(vs[layer][pos][h * d + c]);
              String where = "seed=" + seed + " layer=" + layer + " pos=" + pos + " h=" + h
                  + " c=" + c;
              assertEquals(k, cache.key(layer, h, pos, c), where);
              assertEquals(v, cache.value(layer, h, pos, c), where);
              // the raw bytes at the documented offsets decode to the appended values
              long tile = layout.tileOffset(layer, h, pos / 32);
              long ko = tile + TileLayout.keyIndex(pos % 32, c, d, dtype) * (long) dtype.bytes();
              long vo = tile + TileLayout.valueIndex(pos % 32, c, d, 32, dtype) * (long) dtype.bytes();
              assertEquals(ko, layout.keyOffset(layer, h, pos, c), where);
              assertEquals(vo, layout.valueOffset(layer, h, pos, c), where);
              assertEquals(k, dtype.read(cache.keys(), ko), where);
              assertEquals(v, dtype.read(cache.values(), vo), where);
            }
          }
        }
      }
    }
  }

  /** Nothing but the appended elements is written: padding and unused positions stay zero. */
  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"}) // element-wise; q8_0/q4_0: QuantKvCacheTest
  void appendWritesOnlyItsOwnSlots(DType dtype) {
    int d = 40;
    var layout = new KvCacheLayout(2, 2, d, 50, dtype, 32);
    try (var cache = KvCache.allocate(layout)) {
      float[] ones = new float[2 * d];
      Arrays.fill(ones, 1f);
      cache.append(1, ones, ones);
      cache.append(1, ones, ones);
      long b = dtype.bytes();
      int keysWritten = 0;
      int valuesWritten = 0;
      for (long off = 0; off < layout.segmentBytes(); off += b) {
        float k = dtype.read(cache.keys(), off);
        float v = dtype.read(cache.values(), off);
        assertTrue(k == 0f || k == 1f, "K at " + off + ": " + k);
        assertTrue(v == 0f || v == 1f, "V at " + off + ": " + v);
        keysWritten += (int) k;
        valuesWritten += (int) v;
      }
      assertEquals(2 * 2 * d, keysWritten); // 2 positions x 2 heads x d channels
      assertEquals(2 * 2 * d, valuesWritten);
      for (int h = 0; h < 2; h++) {
        for (int pos = 0; pos < 2; pos++) {
          for (int c = 0; c < d; c++) {
            assertEquals(1f, dtype.read(cache.keys(), layout.keyOffset(1, h, pos, c)));
            assertEquals(1f, dtype.read(cache.values(), layout.valueOffset(1, h, pos, c)));
          }
        }
      }
    }
  }

  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(DType.class)
  void batchedAppendEqualsSequentialAppends(DType dtype) {
    long seed = 77L;
    Random rnd = new Random(seed);
    var layout = new KvCacheLayout(2, 3, 37, 80, dtype, 32);
    int row = 3 * 37;
    try (var batched = KvCache.allocate(layout); var single = KvCache.allocate(layout)) {
      float[] k = randomRows(rnd, 71 * row);
      float[] v = randomRows(rnd, 71 * row);
      // batches that start and end inside tiles and cross tile boundaries
      batched.append(1, 4, Arrays.copyOfRange(k, 0, 4 * row),
          Arrays.copyOfRange(v, 0, 4 * row));
      batched.append(1, 37, Arrays.copyOfRange(k, 4 * row, 41 * row),
          Arrays.copyOfRange(v, 4 * row, 41 * row));
      batched.append(1, 0, new float[0], new float[0]);
      batched.append(1, 30, Arrays.copyOfRange(k, 41 * row, 71 * row),
          Arrays.copyOfRange(v, 41 * row, 71 * row));
      for (int t = 0; t < 71; t++) {
        single.append(1, Arrays.copyOfRange(k, t * row, (t + 1) * row),
            Arrays.copyOfRange(v, t * row, (t + 1) * row));
      }
      assertEquals(71, batched.length(1));
      assertEquals(0, batched.length(0));
      assertEquals(-1, batched.keys().mismatch(single.keys()), "seed=" + seed);
      assertEquals(-1, batched.values().mismatch(single.values()), "seed=" + seed);
      if (!dtype.quantized()) { // element-wise rounding; blocks: QuantKvCacheTest
        assertEquals(dtype.round(k[70 * row + 2 * 37 + 36]), batched.key(1, 2, 70, 36));
        assertEquals(dtype.round(v[33 * row + 37 + 33]), batched.value(1, 1, 33, 33));
      }
    }
  }

  /** Known bf16 encodings: RNE including ties both ways, subnormals, overflow, NaN, signs. */
  @Test
  void bf16RoundsToNearestEvenOnKnownBitPatterns() {
    int[][] cases = {
      {0x3f800000, 0x3f80}, // 1.0 exact
      {0x3f807fff, 0x3f80}, // just below half an ulp: down
      {0x3f808000, 0x3f80}, // tie, kept lsb even: down
      {0x3f808001, 0x3f81}, // just above half: up
      {0x3f818000, 0x3f82}, // tie, odd lsb: up to even
      {0xbf818000, 0xbf82}, // negative tie: magnitude rounds the same way
      {0x3fff8000, 0x4000}, // tie carrying into the exponent
      {0x00000001, 0x0000}, // smallest float subnormal: below half of bf16's smallest
      {0x00008000, 0x0000}, // subnormal tie, even: down to +0
      {0x00018000, 0x0002}, // subnormal tie, odd: up
      {0x00008001, 0x0001}, // subnormal above half: up to bf16's smallest subnormal
      {0x007fffff, 0x0080}, // largest float subnormal rounds up to the smallest normal
      {0x7f7f7fff, 0x7f7f}, // just below the overflow midpoint: largest finite bf16
      {0x7f7f8000, 0x7f80}, // overflow midpoint, odd lsb: to +inf
      {0x7f7fffff, 0x7f80}, // Float.MAX_VALUE: +inf
      {0x7f800000, 0x7f80}, // +inf
      {0xff800000, 0xff80}, // -inf
      {0x80000000, 0x8000}, // -0
    };
    for (int[] c : cases) {
      assertStoredBits(DType.BF16, Float.intBitsToFloat(c[0]), c[1]);
    }
    for (int nan : new int[] {0x7f800001, 0x7fc00000, 0xff800001, 0x7fffffff}) {
      short h = DType.toBf16(Float.intBitsToFloat(nan));
      assertTrue(Float.isNaN(DType.fromBf16(h)), Integer.toHexString(nan));
      assertEquals(nan >>> 31, (h >>> 15) & 1, "sign kept for " + Integer.toHexString(nan));
    }
  }

  /** Known f16 encodings: RNE including ties both ways, subnormals and the overflow boundary. */
  @Test
  void f16RoundsToNearestEvenOnKnownBitPatterns() {
    float ulp1 = 0x1p-10f; // f16 spacing in [1, 2)
    Object[][] cases = {
      {1f, 0x3c00},
      {1f + ulp1 / 2, 0x3c00}, // tie, even lsb: down
      {1f + 3 * ulp1 / 2, 0x3c02}, // tie, odd lsb: up to even
      {Math.nextUp(1f + ulp1 / 2), 0x3c01}, // just above the tie: up
      {-2f, 0xc000},
      {65504f, 0x7bff}, // largest finite
      {Math.nextDown(65520f), 0x7bff},
      {65520f, 0x7c00}, // overflow midpoint: to +inf
      {0x1p-14f, 0x0400}, // smallest normal
      {0x1p-24f, 0x0001}, // smallest subnormal
      {0x1p-25f, 0x0000}, // subnormal tie, even: down to +0
      {3 * 0x1p-25f, 0x0002}, // subnormal tie, odd: up
      {Math.nextUp(0x1p-25f), 0x0001},
      {1023 * 0x1p-24f, 0x03ff}, // largest subnormal
      {-0f, 0x8000},
    };
    for (Object[] c : cases) {
      assertStoredBits(DType.F16, (Float) c[0], (Integer) c[1]);
    }
  }

  /** Appends v through a 1x1x1 cache and checks the raw little-endian halfword in the segment. */
  private static void assertStoredBits(DType dtype, float v, int expectedBits) {
    try (var cache = KvCache.allocate(new KvCacheLayout(1, 1, 1, 1, dtype, 32))) {
      if (!dtype.representable(v)) {
        // the cache rejects overflow; the codec itself must still produce the documented bits
        short h = dtype == DType.BF16 ? DType.toBf16(v) : DType.toF16(v);
        assertEquals(expectedBits, h & 0xffff, Float.toHexString(v));
        return;
      }
      cache.append(0, new float[] {v}, new float[] {v});
      short stored = cache.keys().get(I16_LE, 0);
      assertEquals(expectedBits, stored & 0xffff,
          Float.toHexString(v) + " -> " + Integer.toHexString(stored & 0xffff));
      assertEquals(dtype.round(v), cache.key(0, 0, 0, 0));
    }
  }

  @Test
  void truncateShortensEveryLayerAndAppendOverwrites() {
    var layout = new KvCacheLayout(3, 1, 2, 8, DType.F32, 32);
    try (var cache = KvCache.allocate(layout)) {
      for (int layer = 0; layer < 3; layer++) {
        for (int pos = 0; pos < 2 + 2 * layer; pos++) {
          cache.append(layer, new float[] {pos, layer}, new float[] {-pos, -layer});
        }
      }
      cache.truncate(3); // lengths 2, 4, 6 -> 2, 3, 3
      assertEquals(2, cache.length(0));
      assertEquals(3, cache.length(1));
      assertEquals(3, cache.length(2));
      cache.truncate(2, 1);
      assertEquals(1, cache.length(2));
      cache.truncate(0, 5); // longer than the layer: no-op
      assertEquals(2, cache.length(0));
      cache.append(2, new float[] {42f, 43f}, new float[] {44f, 45f});
      assertEquals(2, cache.length(2));
      assertEquals(42f, cache.key(2, 0, 1, 0));
      assertEquals(45f, cache.value(2, 0, 1, 1));
      cache.truncate(0);
      assertEquals(0, cache.bytesUsed());
    }
  }

  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"}) // element-wise; q8_0/q4_0: QuantKvCacheTest
  void tileViewsAreWholeTilesInTileLayoutOrder(DType dtype) {
    long seed = 5L;
    Random rnd = new Random(seed);
    int d = 40;
    var layout = new KvCacheLayout(2, 3, d, 100, dtype, 32);
    long b = dtype.bytes();
    try (var cache = KvCache.allocate(layout)) {
      int length = 70; // 2 full tiles and one holding 6 positions
      cache.append(1, length, randomRows(rnd, length * 3 * d), randomRows(rnd, length * 3 * d));
      assertEquals(3, layout.tileCount(cache.length(1)));
      for (int h = 0; h < 3; h++) {
        for (int tile = 0; tile < 3; tile++) {
          MemorySegment kt = cache.keyTile(1, h, tile);
          MemorySegment vt = cache.valueTile(1, h, tile);
          // the whole tile, also the last, partly filled one
          assertEquals(32 * layout.rowBytes(), kt.byteSize());
          assertEquals(32 * layout.rowBytes(), vt.byteSize());
          assertTrue(kt.isReadOnly() && vt.isReadOnly());
          assertEquals(layout.tileOffset(1, h, tile), kt.address() - cache.keys().address());
          assertEquals(layout.tileOffset(1, h, tile), vt.address() - cache.values().address());
          int rows = Math.min(32, length - tile * 32);
          for (int r = 0; r < rows; r++) {
            for (int c = 0; c < d; c++) {
              int pos = tile * 32 + r;
              String where = "seed=" + seed + " h=" + h + " pos=" + pos + " c=" + c;
              assertEquals(cache.key(1, h, pos, c),
                  dtype.read(kt, TileLayout.keyIndex(r, c, d, dtype) * b), where);
              assertEquals(cache.value(1, h, pos, c),
                  dtype.read(vt, TileLayout.valueIndex(r, c, d, 32, dtype) * b), where);
            }
          }
        }
      }
    }
  }

  /** The score kernel's access: one channel of 32 consecutive keys is one contiguous run. */
  @Test
  void keyTileHoldsEachChannelOf32KeysContiguously() {
    int d = 8;
    var layout = new KvCacheLayout(1, 1, d, 64, DType.F32, 64);
    try (var cache = KvCache.allocate(layout)) {
      for (int pos = 0; pos < 64; pos++) {
        float[] k = new float[d];
        float[] v = new float[d];
        for (int c = 0; c < d; c++) {
          k[c] = pos * 100 + c;
          v[c] = -(pos * 100 + c);
        }
        cache.append(0, k, v);
      }
      MemorySegment kt = cache.keyTile(0, 0, 0);
      MemorySegment vt = cache.valueTile(0, 0, 0);
      for (int block = 0; block < 2; block++) {
        for (int c = 0; c < d; c++) {
          for (int j = 0; j < 32; j++) {
            long at = 4L * (block * 32 * d + c * 32 + j);
            assertEquals((block * 32 + j) * 100 + c, DType.F32.read(kt, at));
          }
        }
      }
      // V, d = 8 < 32: one block of width 8, i.e. plain rows of 8 channels, key after key
      for (int pos = 0; pos < 64; pos++) {
        for (int c = 0; c < d; c++) {
          assertEquals(-(pos * 100 + c), DType.F32.read(vt, 4L * (pos * d + c)));
        }
      }
    }
  }

  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(DType.class)
  void bytesUsedCountsStoredPositionsOfKAndV(DType dtype) {
    var layout = new KvCacheLayout(4, 2, 6, 10, dtype, 32);
    try (var cache = KvCache.allocate(layout)) {
      long row = dtype.rowBytes(6);
      assertEquals(0, cache.bytesUsed());
      assertEquals(2 * layout.segmentBytes(), cache.bytesReserved());
      assertEquals(2 * 4 * 2 * 32 * row, cache.bytesReserved()); // 10 positions pad to 32
      cache.append(0, 3, new float[36], new float[36]);
      cache.append(3, new float[12], new float[12]);
      assertEquals(2 * 4 * 2 * row, cache.bytesUsed()); // 4 positions, K+V, 2 heads
      assertEquals(layout.segmentBytes(), cache.keys().byteSize());
      assertEquals(layout.segmentBytes(), cache.values().byteSize());
    }
  }

  @Test
  void appendFillsToCapacityExactly() {
    var layout = new KvCacheLayout(1, 1, 3, 70, DType.F16, 32);
    try (var cache = KvCache.allocate(layout)) {
      cache.append(0, 69, new float[69 * 3], new float[69 * 3]);
      cache.append(0, new float[] {1, 2, 3}, new float[] {4, 5, 6});
      assertEquals(70, cache.length(0));
      assertEquals(3, layout.tileCount(70));
      assertEquals(32 * layout.rowBytes(), cache.keyTile(0, 0, 2).byteSize());
      assertEquals(6f, cache.value(0, 0, 69, 2));
      assertEquals(1f, cache.key(0, 0, 69, 0));
    }
  }
}
