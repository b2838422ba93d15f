package hflash.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.BitSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

class KvCacheLayoutTest {

  static Stream<Arguments> invalidLayouts() {
    return Stream.of(
        Arguments.of(0, 4, 8, 16, DType.F32, 32, "layers must be > 0: 0"),
        Arguments.of(2, -1, 8, 16, DType.F32, 32, "kvHeads must be > 0: -1"),
        Arguments.of(2, 4, 0, 16, DType.F32, 32, "headDim must be > 0: 0"),
        Arguments.of(2, 4, 8, 0, DType.F32, 32, "capacity must be > 0: 0"),
        Arguments.of(2, 4, 8, 16, null, 32, "dtype must not be null"),
        Arguments.of(2, 4, 8, 16, DType.F32, 0, "tileTokens must be > 0: 0"),
        Arguments.of(2, 4, 8, 16, DType.F32, -32, "tileTokens must be > 0: -32"),
        Arguments.of(2, 4, 8, 16, DType.F32, 50, "tileTokens must be a multiple of 32: 50"));
  }

  @ParameterizedTest(name = "{6}")
  @MethodSource("invalidLayouts")
  void rejectsInvalidComponents(int layers, int kvHeads, int headDim, int capacity, DType dtype,
      int tileTokens, String message) {
    var e = assertThrows(IllegalArgumentException.class,
        () -> new KvCacheLayout(layers, kvHeads, headDim, capacity, dtype, tileTokens));
    assertEquals(message, e.getMessage());
  }

  /** K blocks are 32 keys wide, so a tile must hold whole blocks: T = 32 * n, n >= 1. */
  @ParameterizedTest(name = "tileTokens={0}")
  @ValueSource(ints = {1, 4, 16, 31, 33, 48, 50, 100, 1000, Integer.MAX_VALUE})
  void tileTokensMustBeAMultipleOf32(int tileTokens) {
    var e = assertThrows(IllegalArgumentException.class,
        () -> new KvCacheLayout(1, 1, 8, 64, DType.F32, tileTokens));
    assertEquals("tileTokens must be a multiple of 32: " + tileTokens, e.getMessage());
  }

  @ParameterizedTest(name = "tileTokens={0}")
  @ValueSource(ints = {32, 64, 96, 128, 256, 4096})
  void multiplesOf32AreAccepted(int tileTokens) {
    var l = new KvCacheLayout(1, 1, 8, 64, DType.F32, tileTokens);
    assertEquals(tileTokens, l.tileTokens());
    assertEquals(0, l.paddedCapacity() % tileTokens);
  }

  @Test
  void rejectsLayoutsWhoseSizeOverflowsALong() {
    int big = Integer.MAX_VALUE;
    var e = assertThrows(IllegalArgumentException.class,
        () -> new KvCacheLayout(big, big, big, big, DType.F32, 32));
    assertEquals("layout size overflows a long: layers=2147483647, kvHeads=2147483647,"
        + " headDim=2147483647, capacity=2147483647, dtype=f32", e.getMessage());
  }

  /**
   * TileLayout indexes a tile with ints: a tile of more than Integer.MAX_VALUE elements would make
   * valueOffset wrap (it returned -8589934468 for the first layout below before the check).
   */
  @Test
  void rejectsTilesWhoseElementCountOverflowsAnInt() {
    var e = assertThrows(IllegalArgumentException.class,
        () -> new KvCacheLayout(1, 1, 128, 1, DType.F32, 1 << 26));
    assertEquals("tile size overflows an int: tileTokens*headDim=67108864*128", e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> new KvCacheLayout(1, 1, 3, 1, DType.BF16, 715827904)); // 3 * T = 2^31 + 64
    assertEquals("tile size overflows an int: tileTokens*headDim=715827904*3", e.getMessage());
    // the largest accepted tile: its last element still has an int index, and a long offset
    var l = new KvCacheLayout(1, 1, 127, 1 << 24, DType.F32, 1 << 24);
    assertEquals(((1L << 24) * 127 - 1) * 4, l.keyOffset(0, 0, (1 << 24) - 1, 126));
    assertEquals(((1L << 24) * 127 - 1) * 4, l.valueOffset(0, 0, (1 << 24) - 1, 126));
  }

  @ParameterizedTest(name = "capacity={0} tileTokens={1} -> {2}")
  @CsvSource({"1, 32, 32", "31, 32, 32", "32, 32, 32", "33, 32, 64", "64, 32, 64", "65, 64, 128",
      "100, 96, 192", "10, 4096, 4096", "2147483647, 32, 2147483648"})
  void paddedCapacityRoundsUpToWholeTiles(int capacity, int tileTokens, long padded) {
    var l = new KvCacheLayout(1, 1, 1, capacity, DType.BF16, tileTokens);
    assertEquals(padded, l.paddedCapacity());
  }

  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"}) // element-wise; q8_0/q4_0: QuantKvCacheTest
  void stridesFollowTheDocumentedFormula(DType dtype) {
    var l = new KvCacheLayout(3, 5, 7, 75, dtype, 32); // 75 positions pad to 3 tiles = 96
    long b = dtype.bytes();
    assertEquals(96, l.paddedCapacity());
    assertEquals(7 * b, l.rowBytes());
    assertEquals(96 * 7 * b, l.headStride());
    assertEquals(3 * 5 * 96 * 7 * b, l.segmentBytes());
    assertEquals(2 * 3 * 5 * 7 * b, l.bytesPerToken()); // stored bytes: padding not counted
  }

  /** Tiles follow each other with no gap: (layer, kvHead, tile) in row-major order. */
  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(DType.class)
  void tileOffsetsAreDenseAndInOrder(DType dtype) {
    var l = new KvCacheLayout(3, 5, 7, 75, dtype, 32);
    long tileBytes = 32 * l.rowBytes();
    long expected = 0;
    for (int layer = 0; layer < 3; layer++) {
      for (int h = 0; h < 5; h++) {
        for (int tile = 0; tile < 3; tile++) {
          assertEquals(expected, l.tileOffset(layer, h, tile),
              "layer=" + layer + " kvHead=" + h + " tile=" + tile);
          assertEquals(((long) layer * 5 + h) * l.headStride() + tile * tileBytes,
              l.tileOffset(layer, h, tile));
          expected += tileBytes;
        }
      }
    }
    assertEquals(l.segmentBytes(), expected);
  }

  /** keyOffset / valueOffset are tileOffset(pos / T) + TileLayout index(pos % T) * bytes. */
  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"}) // element-wise; q8_0/q4_0: QuantKvCacheTest
  void elementOffsetsFollowTileLayout(DType dtype) {
    int d = 40; // one full 32-channel V block and one of 8
    var l = new KvCacheLayout(2, 3, d, 150, dtype, 64);
    long b = dtype.bytes();
    int[] positions = {0, 1, 31, 32, 33, 63, 64, 95, 127, 128, 149};
    int[] channels = {0, 1, 7, 31, 32, 33, 39};
    for (int layer = 0; layer < 2; layer++) {
      for (int h = 0; h < 3; h++) {
        for (int pos : positions) {
          for (int c : channels) {
            String where = "layer=" + layer + " h=" + h + " pos=" + pos + " c=" + c;
            long tile = l.tileOffset(layer, h, pos / 64);
            assertEquals(tile + TileLayout.keyIndex(pos % 64, c, d, dtype) * b,
                l.keyOffset(layer, h, pos, c), where);
            assertEquals(tile + TileLayout.valueIndex(pos % 64, c, d, 64, dtype) * b,
                l.valueOffset(layer, h, pos, c), where);
          }
        }
      }
    }
  }

  /** The documented index formulas, worked by hand for a few (key, channel) pairs. */
  @Test
  void tileLayoutIndicesMatchHandComputedValues() {
    // d = 40, T = 64. K: (j / 32) * 32 * d + c * 32 + j % 32
    assertEquals(0, TileLayout.keyIndex(0, 0, 40, DType.F32));
    assertEquals(1, TileLayout.keyIndex(1, 0, 40, DType.F32)); // next key of a channel: next element
    assertEquals(32, TileLayout.keyIndex(0, 1, 40, DType.F32)); // next channel: 32 elements on
    assertEquals(39 * 32 + 31, TileLayout.keyIndex(31, 39, 40, DType.F32)); // last of block 0
    assertEquals(1280, TileLayout.keyIndex(32, 0, 40, DType.F32)); // block 1 starts after 32 * d
    assertEquals(1280 + 35 * 32 + 5, TileLayout.keyIndex(37, 35, 40, DType.F32));
    // V: (c / 32) * 32 * T + j * w + c % 32, w = 32 for block 0 and 8 for block 1
    assertEquals(0, TileLayout.valueIndex(0, 0, 40, 64, DType.F32));
    assertEquals(1, TileLayout.valueIndex(0, 1, 40, 64, DType.F32)); // next channel: next element
    assertEquals(32, TileLayout.valueIndex(1, 0, 40, 64, DType.F32)); // next key: one 32-wide row on
    assertEquals(63 * 32 + 31, TileLayout.valueIndex(63, 31, 40, 64, DType.F32)); // last of block 0
    assertEquals(2048, TileLayout.valueIndex(0, 32, 40, 64, DType.F32)); // block 1 starts after 32 * T
    assertEquals(2048 + 37 * 8 + 3, TileLayout.valueIndex(37, 35, 40, 64, DType.F32));
    assertEquals(64 * 40 - 1, TileLayout.valueIndex(63, 39, 40, 64, DType.F32)); // last element of the tile
    // 16-bit runs are paired: word w of a run holds elements w and w + 16
    assertEquals(0, TileLayout.keyIndex(0, 0, 40, DType.F16));
    assertEquals(2, TileLayout.keyIndex(1, 0, 40, DType.F16)); // next key: next word
    assertEquals(1, TileLayout.keyIndex(16, 0, 40, DType.BF16)); // key 16: high half of word 0
    assertEquals(31, TileLayout.keyIndex(31, 0, 40, DType.F16));
    assertEquals(30, TileLayout.keyIndex(15, 0, 40, DType.F16));
    assertEquals(1280 + 35 * 32 + 10, TileLayout.keyIndex(37, 35, 40, DType.F16));
    assertEquals(2, TileLayout.valueIndex(0, 1, 40, 64, DType.F16)); // full V block: paired
    assertEquals(32 + 1, TileLayout.valueIndex(1, 16, 40, 64, DType.BF16));
    assertEquals(2048 + 37 * 8 + 3, TileLayout.valueIndex(37, 35, 40, 64, DType.F16)); // narrow block: natural
    assertEquals(32, TileLayout.valueBlockWidth(0, 40));
    assertEquals(8, TileLayout.valueBlockWidth(1, 40));
  }

  /**
   * Inside a tile both index functions are bijections of (j, c) onto [0, T * d): every element has
   * its own slot and the tile has no holes, for head dims that are and are not multiples of 32.
   */
  @ParameterizedTest(name = "d={0} T={1} {2}")
  @CsvSource({"1, 32, F32", "7, 32, F16", "8, 64, BF16", "32, 32, F16", "40, 64, F32", "40, 64, BF16",
      "64, 96, F16", "100, 32, F16", "128, 128, F32", "128, 128, BF16"})
  void everyKeyAndChannelHasItsOwnSlotInTheTile(int d, int tileTokens, DType dtype) {
    BitSet k = new BitSet(tileTokens * d);
    BitSet v = new BitSet(tileTokens * d);
    for (int j = 0; j < tileTokens; j++) {
      for (int c = 0; c < d; c++) {
        int ki = TileLayout.keyIndex(j, c, d, dtype);
        int vi = TileLayout.valueIndex(j, c, d, tileTokens, dtype);
        String where = "j=" + j + " c=" + c;
        assertTrue(ki >= 0 && ki < tileTokens * d, "K index outside the tile: " + ki + " " + where);
        assertTrue(vi >= 0 && vi < tileTokens * d, "V index outside the tile: " + vi + " " + where);
        assertTrue(!k.get(ki), "K index used twice: " + ki + " " + where);
        assertTrue(!v.get(vi), "V index used twice: " + vi + " " + where);
        k.set(ki);
        v.set(vi);
      }
    }
    assertEquals(tileTokens * d, k.cardinality());
    assertEquals(tileTokens * d, v.cardinality());
  }

  /** The same through the layout: every stored (pos, c) has a distinct byte offset in its tile. */
  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"}) // element-wise; q8_0/q4_0: QuantKvCacheTest
  void everyPositionAndChannelHasADistinctOffsetInsideItsTile(DType dtype) {
    int d = 37;
    int capacity = 100; // the last tile is partly padding
    var l = new KvCacheLayout(2, 2, d, capacity, dtype, 32);
    long tileBytes = 32 * l.rowBytes();
    for (int layer = 0; layer < 2; layer++) {
      for (int h = 0; h < 2; h++) {
        BitSet k = new BitSet();
        BitSet v = new BitSet();
        for (int pos = 0; pos < capacity; pos++) {
          long tile = l.tileOffset(layer, h, pos / 32);
          for (int c = 0; c < d; c++) {
            long ko = l.keyOffset(layer, h, pos, c);
            long vo = l.valueOffset(layer, h, pos, c);
            String where = "layer=" + layer + " h=" + h + " pos=" + pos + " c=" + c;
            assertTrue(ko >= tile && ko + dtype.bytes() <= tile + tileBytes, "K " + where);
            assertTrue(vo >= tile && vo + dtype.bytes() <= tile + tileBytes, "V " + where);
            assertEquals(0, (ko - tile) % dtype.bytes(), "K unaligned " + where);
            assertEquals(0, (vo - tile) % dtype.bytes(), "V unaligned " + where);
            int kSlot = (int) (ko / dtype.bytes());
            int vSlot = (int) (vo / dtype.bytes());
            assertTrue(!k.get(kSlot), "K offset used twice: " + where);
            assertTrue(!v.get(vSlot), "V offset used twice: " + where);
            k.set(kSlot);
            v.set(vSlot);
          }
        }
        assertEquals(capacity * d, k.cardinality());
        assertEquals(capacity * d, v.cardinality());
      }
    }
  }

  /** What the kernels rely on: K keeps 32 keys of a channel together, V 32 channels of a key. */
  @Test
  void blocksAreContiguousRunsTheKernelsLoadAsVectors() {
    int d = 72;
    var l = new KvCacheLayout(1, 2, d, 200, DType.F32, 96);
    for (int block = 0; block < 3; block++) { // key blocks of one tile
      for (int c = 0; c < d; c++) {
        long first = l.keyOffset(0, 1, 96 + block * 32, c);
        for (int j = 1; j < 32; j++) {
          assertEquals(first + 4L * j, l.keyOffset(0, 1, 96 + block * 32 + j, c),
              "K block=" + block + " c=" + c + " j=" + j);
        }
      }
    }
    for (int pos = 96; pos < 192; pos++) {
      for (int c0 = 0; c0 < d; c0 += 32) {
        int w = Math.min(32, d - c0);
        long first = l.valueOffset(0, 1, pos, c0);
        for (int c = 1; c < w; c++) {
          assertEquals(first + 4L * c, l.valueOffset(0, 1, pos, c0 + c),
              "V pos=" + pos + " c=" + (c0 + c));
        }
        if (pos + 1 < 192) { // the next key of the block follows directly: a front-to-back sweep
          assertEquals(first + 4L * w, l.valueOffset(0, 1, pos + 1, c0), "V pos=" + pos);
        }
      }
    }
  }

  @Test
  void offsetsUseLongArithmetic() {
    // 64 layers x 8 heads x 65536 positions x 512 bytes = 16 GiB per segment (nothing allocated):
    // the last tile lies far past 2^31 bytes, where int arithmetic would wrap
    var l = new KvCacheLayout(64, 8, 128, 65536, DType.F32, 64);
    long lastTile = (63L * 8 + 7) * 65536L * 512L + 1023L * 64 * 512L;
    assertEquals(lastTile, l.tileOffset(63, 7, 1023));
    // channel 127 of key 63 is the last element of the tile in both orders
    assertEquals(lastTile + (64L * 128 - 1) * 4, l.keyOffset(63, 7, 65535, 127));
    assertEquals(lastTile + (64L * 128 - 1) * 4, l.valueOffset(63, 7, 65535, 127));
    assertEquals(l.segmentBytes(), lastTile + 64L * 512);
  }

  @Test
  void offsetsRejectOutOfRangeIndices() {
    var l = new KvCacheLayout(2, 3, 4, 40, DType.F16, 32); // 2 tiles per (layer, kvHead)
    assertEquals("layer out of range [0, 2): 2",
        assertThrows(IndexOutOfBoundsException.class, () -> l.tileOffset(2, 0, 0)).getMessage());
    assertEquals("kvHead out of range [0, 3): -1",
        assertThrows(IndexOutOfBoundsException.class, () -> l.tileOffset(0, -1, 0)).getMessage());
    assertEquals("tile out of range [0, 2): 2",
        assertThrows(IndexOutOfBoundsException.class, () -> l.tileOffset(0, 0, 2)).getMessage());
    assertEquals("tile out of range [0, 2): -1",
        assertThrows(IndexOutOfBoundsException.class, () -> l.tileOffset(0, 0, -1)).getMessage());
    // positions are checked against capacity (not the padded capacity), channels against headDim
    assertEquals("position out of range [0, 40): 40",
        assertThrows(IndexOutOfBoundsException.class, () -> l.keyOffset(0, 0, 40, 0)).getMessage());
    assertEquals("position out of range [0, 40): -1",
        assertThrows(IndexOutOfBoundsException.class, () -> l.valueOffset(0, 0, -1, 0))
            .getMessage());
    assertEquals("channel out of range [0, 4): 4",
        assertThrows(IndexOutOfBoundsException.class, () -> l.keyOffset(0, 0, 0, 4)).getMessage());
    assertEquals("channel out of range [0, 4): -1",
        assertThrows(IndexOutOfBoundsException.class, () -> l.valueOffset(0, 0, 0, -1))
            .getMessage());
    assertEquals("layer out of range [0, 2): -1",
        assertThrows(IndexOutOfBoundsException.class, () -> l.keyOffset(-1, 0, 0, 0)).getMessage());
    assertEquals("kvHead out of range [0, 3): 3",
        assertThrows(IndexOutOfBoundsException.class, () -> l.valueOffset(0, 3, 39, 3))
            .getMessage());
  }

  @Test
  void tileCountIsCeiling() {
    var l = new KvCacheLayout(1, 1, 8, 100, DType.F32, 32);
    assertEquals(0, l.tileCount(0));
    assertEquals(1, l.tileCount(1));
    assertEquals(1, l.tileCount(32));
    assertEquals(2, l.tileCount(33));
    assertEquals(4, l.tileCount(100));
    assertEquals(l.paddedCapacity() / 32, l.tileCount(100));
    var e = assertThrows(IllegalArgumentException.class, () -> l.tileCount(-1));
    assertEquals("length out of range [0, 100]: -1", e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> l.tileCount(101));
  }

  @Test
  void tileLargerThanCapacityIsOneWholeTile() {
    var l = new KvCacheLayout(1, 1, 8, 10, DType.BF16, 64);
    assertEquals(1, l.tileCount(10));
    assertEquals(64, l.paddedCapacity()); // the tile is reserved whole
    assertEquals(64 * 16, l.segmentBytes());
  }

  @Test
  void toStringNamesEveryComponent() {
    assertEquals("KvCacheLayout[layers=1, kvHeads=2, headDim=3, capacity=4, dtype=bf16,"
        + " tileTokens=32]", new KvCacheLayout(1, 2, 3, 4, DType.BF16, 32).toString());
  }
}
