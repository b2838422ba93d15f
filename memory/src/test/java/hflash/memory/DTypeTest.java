package hflash.memory;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class DTypeTest {

  @Test
  void parseIsCaseInsensitiveAndStrict() {
    assertSame(DType.F32, DType.parse("f32"));
    assertSame(DType.BF16, DType.parse("BF16"));
    assertSame(DType.F16, DType.parse("F16"));
    var e = assertThrows(IllegalArgumentException.class, () -> DType.parse("fp8"));
    assertEquals("unknown dtype: fp8 (expected f32, bf16, f16, q8_0 or q4_0)", e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> DType.parse(null));
    assertThrows(IllegalArgumentException.class, () -> DType.parse(" f32"));
  }

  @Test
  void idsAndSizes() {
    assertEquals("f32", DType.F32.id());
    assertEquals("bf16", DType.BF16.id());
    assertEquals("f16", DType.F16.id());
    assertEquals(4, DType.F32.bytes());
    assertEquals(2, DType.BF16.bytes());
    assertEquals(2, DType.F16.bytes());
  }

  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"}) // element-wise; q8_0/q4_0: QuantKvCacheTest
  void readAndWriteAreLittleEndianAtAnyAlignment(DType dtype) {
    MemorySegment seg = MemorySegment.ofArray(new byte[16]);
    dtype.write(seg, 3, -1.5f); // odd offset: unaligned on purpose
    assertEquals(-1.5f, dtype.read(seg, 3));
    byte[] expected = switch (dtype) {
      case F32 -> new byte[] {0, 0, (byte) 0xc0, (byte) 0xbf}; // 0xbfc00000
      case BF16 -> new byte[] {(byte) 0xc0, (byte) 0xbf}; // 0xbfc0
      case F16 -> new byte[] {0, (byte) 0xbe}; // 0xbe00
      case Q8_0, Q4_0 -> throw new AssertionError("not an element dtype: " + dtype);
    };
    assertArrayEquals(expected, seg.asSlice(3, dtype.bytes()).toArray(ValueLayout.JAVA_BYTE));
  }

  @Test
  void representableMatchesRoundingToInfinity() {
    assertTrue(DType.F32.representable(Float.MAX_VALUE));
    assertFalse(DType.F32.representable(Float.POSITIVE_INFINITY));
    assertFalse(DType.F32.representable(Float.NaN));

    assertTrue(DType.F16.representable(65504f));
    assertTrue(DType.F16.representable(Math.nextDown(65520f)));
    assertFalse(DType.F16.representable(65520f)); // tie between 65504 and 2^16: to even = inf
    assertFalse(DType.F16.representable(-70000f));

    assertTrue(DType.BF16.representable(Math.nextDown(0x1.ffp127f)));
    assertFalse(DType.BF16.representable(0x1.ffp127f));
    assertFalse(DType.BF16.representable(-Float.MAX_VALUE));
    for (DType t : DType.values()) {
      if (t.quantized()) {
        continue; // element-wise round/read/write are not defined for block dtypes
      }
      for (float v : new float[] {0f, -0f, Float.MIN_VALUE, 1e-30f, 65504f, -3.3e38f}) {
        boolean finiteAfterRound = Float.isFinite(t.round(v));
        assertEquals(finiteAfterRound, t.representable(v), t + " " + v);
      }
      assertEquals(Float.isFinite(t.round(Math.nextDown(65520f))),
          t.representable(Math.nextDown(65520f)));
    }
  }

  @Test
  void roundIsTheStoreLoadRoundTrip() {
    MemorySegment seg = MemorySegment.ofArray(new byte[4]);
    for (DType t : DType.values()) {
      if (t.quantized()) {
        continue; // element-wise round/read/write are not defined for block dtypes
      }
      for (float v : new float[] {1f / 3, -1e-7f, 1e-40f, 12345.678f, 0.1f}) {
        t.write(seg, 0, v);
        assertEquals(t.read(seg, 0), t.round(v), t + " " + v);
      }
    }
    assertEquals(0.1f, DType.F32.round(0.1f));
  }
}
