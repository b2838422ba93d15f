package hflash.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

class KvCacheLayoutTest {

  static Stream<Arguments> invalidLayouts() {
    return Stream.of(
        Arguments.of(0, 4, 8, 16, DType.F32, 4, "layers must be > 0: 0"),
        Arguments.of(2, -1, 8, 16, DType.F32, 4, "kvHeads must be > 0: -1"),
        Arguments.of(2, 4, 0, 16, DType.F32, 4, "headDim must be > 0: 0"),
        Arguments.of(2, 4, 8, 0, DType.F32, 4, "capacity must be > 0: 0"),
        Arguments.of(2, 4, 8, 16, null, 4, "dtype must not be null"),
        Arguments.of(2, 4, 8, 16, DType.F32, 0, "tileTokens must be > 0: 0"));
  }

  @ParameterizedTest(name = "{6}")
  @MethodSource("invalidLayouts")
  void rejectsInvalidComponents(int layers, int kvHeads, int headDim, int capacity, DType dtype,
      int tileTokens, String message) {
    var e = assertThrows(IllegalArgumentException.class,
        () -> new KvCacheLayout(layers, kvHeads, headDim, capacity, dtype, tileTokens));
    assertEquals(message, e.getMessage());
  }

  @Test
  void rejectsLayoutsWhoseSizeOverflowsALong() {
    int big = Integer.MAX_VALUE;
    var e = assertThrows(IllegalArgumentException.class,
        () -> new KvCacheLayout(big, big, big, big, DType.F32, 16));
    assertEquals("layout size overflows a long: layers=2147483647, kvHeads=2147483647,"
        + " headDim=2147483647, capacity=2147483647, dtype=f32", e.getMessage());
  }

  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(DType.class)
  void stridesFollowTheDocumentedFormula(DType dtype) {
    var l = new KvCacheLayout(3, 5, 7, 11, dtype, 4);
    long b = dtype.bytes();
    assertEquals(7 * b, l.rowBytes());
    assertEquals(11 * 7 * b, l.headStride());
    assertEquals(3 * 5 * 11 * 7 * b, l.segmentBytes());
    assertEquals(2 * 3 * 5 * 7 * b, l.bytesPerToken());
  }

  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(DType.class)
  void offsetsAreRowMajorAndDense(DType dtype) {
    var l = new KvCacheLayout(3, 5, 7, 11, dtype, 4);
    long expected = 0;
    for (int layer = 0; layer < 3; layer++) {
      for (int h = 0; h < 5; h++) {
        for (int pos = 0; pos < 11; pos++) {
          assertEquals(expected, l.offset(layer, h, pos),
              "layer=" + layer + " kvHead=" + h + " pos=" + pos);
          expected += l.rowBytes();
        }
      }
    }
    assertEquals(l.segmentBytes(), expected);
  }

  @Test
  void offsetUsesLongArithmetic() {
    // 64 layers x 8 heads x 65536 positions x 512 bytes = 16 GiB per segment (nothing allocated):
    // the last row lies far past 2^31 bytes, where int arithmetic would wrap
    var l = new KvCacheLayout(64, 8, 128, 65536, DType.F32, 64);
    long expected = (63L * 8 + 7) * 65536L * 512L + 65535L * 512L;
    assertEquals(expected, l.offset(63, 7, 65535));
  }

  @Test
  void offsetRejectsOutOfRangeIndices() {
    var l = new KvCacheLayout(2, 3, 4, 5, DType.F16, 2);
    assertEquals("layer out of range [0, 2): 2",
        assertThrows(IndexOutOfBoundsException.class, () -> l.offset(2, 0, 0)).getMessage());
    assertEquals("kvHead out of range [0, 3): -1",
        assertThrows(IndexOutOfBoundsException.class, () -> l.offset(0, -1, 0)).getMessage());
    assertEquals("position out of range [0, 5): 5",
        assertThrows(IndexOutOfBoundsException.class, () -> l.offset(0, 0, 5)).getMessage());
  }

  @Test
  void tileCountIsCeiling() {
    var l = new KvCacheLayout(1, 1, 8, 100, DType.F32, 16);
    assertEquals(0, l.tileCount(0));
    assertEquals(1, l.tileCount(1));
    assertEquals(1, l.tileCount(16));
    assertEquals(2, l.tileCount(17));
    assertEquals(7, l.tileCount(100));
    var e = assertThrows(IllegalArgumentException.class, () -> l.tileCount(-1));
    assertEquals("length out of range [0, 100]: -1", e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> l.tileCount(101));
  }

  @Test
  void tileLargerThanCapacityIsOneTile() {
    var l = new KvCacheLayout(1, 1, 8, 10, DType.BF16, 64);
    assertEquals(1, l.tileCount(10));
  }

  @Test
  void toStringNamesEveryComponent() {
    assertEquals("KvCacheLayout[layers=1, kvHeads=2, headDim=3, capacity=4, dtype=bf16,"
        + " tileTokens=5]", new KvCacheLayout(1, 2, 3, 4, DType.BF16, 5).toString());
  }
}
