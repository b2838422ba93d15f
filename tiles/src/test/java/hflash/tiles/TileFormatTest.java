package hflash.tiles;

import static org.junit.jupiter.api.Assertions.assertEquals;

import hflash.memory.DType;
import hflash.memory.QuantBlocks;
import hflash.memory.TileLayout;
import org.junit.jupiter.api.Test;

/**
 * The kernels' read-side view of a tile ({@link TileEncoding}, {@link TileFormat}) against the
 * cache's write side ({@link DType}, {@link TileLayout}, {@link QuantBlocks}): same encodings, same
 * constants, same element and byte offsets for every dtype, head dimension and position tried. The
 * kernel tests then fill tiles through the cache, so a disagreement would also fail them; this one
 * names the formula.
 */
class TileFormatTest {

  private static final int[] DIMS = {1, 7, 8, 31, 32, 40, 64, 80, 96, 128, 160};

  @Test
  void everyCacheDtypeHasTheEncodingOfTheSameIdAndSize() {
    assertEquals(DType.values().length, TileEncoding.values().length);
    for (DType dt : DType.values()) {
      TileEncoding e = TileEncoding.of(dt.id());
      assertEquals(dt.id(), e.id());
      assertEquals(dt.quantized(), e.quantized(), dt.id());
      assertEquals(dt.summaryDType().id(), e.summaryEncoding().id(), dt.id());
      assertEquals(TileLayout.paired(dt), e.paired(), dt.id());
      if (!dt.quantized()) {
        assertEquals(dt.bytes(), e.bytes(), dt.id());
      }
      for (int d : DIMS) {
        assertEquals(dt.rowBytes(d), e.rowBytes(d), dt.id() + " d=" + d);
      }
    }
  }

  @Test
  void constantsAndFloatOffsetsAreTheCachesLayout() {
    assertEquals(TileLayout.KEY_BLOCK, TileFormat.KEY_BLOCK);
    assertEquals(TileLayout.CHANNEL_BLOCK, TileFormat.CHANNEL_BLOCK);
    assertEquals(TileLayout.PAIR_SPAN, TileFormat.PAIR_SPAN);
    assertEquals(QuantBlocks.BLOCK, TileFormat.BLOCK);
    assertEquals(QuantBlocks.GROUP, TileFormat.GROUP);
    assertEquals(QuantBlocks.GROUP_SCALE_BYTES, TileFormat.GROUP_SCALE_BYTES);
    int tileTokens = 96;
    for (DType dt : new DType[] {DType.F32, DType.BF16, DType.F16}) {
      TileEncoding e = TileEncoding.of(dt.id());
      for (int d : DIMS) {
        for (int b = 0; b * TileLayout.CHANNEL_BLOCK < d; b++) {
          assertEquals(TileLayout.valueBlockWidth(b, d), TileFormat.valueBlockWidth(b, d));
        }
        for (int j = 0; j < tileTokens; j++) {
          for (int c = 0; c < d; c++) {
            String where = dt.id() + " d=" + d + " j=" + j + " c=" + c;
            assertEquals(TileLayout.keyIndex(j, c, d, dt), TileFormat.keyIndex(j, c, d, e), where);
            assertEquals(TileLayout.valueIndex(j, c, d, tileTokens, dt), TileFormat.valueIndex(j, c, d, tileTokens, e),
                where);
          }
        }
      }
    }
  }

  @Test
  void blockOffsetsAreTheCachesLayout() {
    int tileTokens = 96;
    for (DType dt : new DType[] {DType.Q8_0, DType.Q4_0}) {
      TileEncoding e = TileEncoding.of(dt.id());
      for (int d : DIMS) {
        int len = QuantBlocks.blockLength(d);
        assertEquals(len, TileFormat.blockLength(d), "d=" + d);
        assertEquals(QuantBlocks.codeBytes(dt, len), TileFormat.codeBytes(e, len), dt.id() + " d=" + d);
        assertEquals(QuantBlocks.blockBytes(dt, d), TileFormat.blockBytes(e, d), dt.id() + " d=" + d);
        for (int j = 0; j < tileTokens; j++) {
          for (int b = 0; b < d / len; b++) {
            String where = dt.id() + " d=" + d + " j=" + j + " b=" + b;
            assertEquals(QuantBlocks.keyScaleOffset(dt, d, j, b), TileFormat.keyScaleOffset(e, d, j, b), where);
            assertEquals(QuantBlocks.keyCodeOffset(dt, d, j, b), TileFormat.keyCodeOffset(e, d, j, b), where);
            assertEquals(QuantBlocks.valueBlockOffset(dt, d, tileTokens, j, b),
                TileFormat.valueBlockOffset(e, d, tileTokens, j, b), where);
          }
        }
      }
    }
  }
}
