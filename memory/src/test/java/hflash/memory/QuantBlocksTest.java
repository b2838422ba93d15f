package hflash.memory;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Properties of the q8_0/q4_0 block formats: rounding rule, error bound, byte layout. */
class QuantBlocksTest {

  private static float[] quantizeRoundTrip(DType t, float[] x, MemorySegment seg) {
    QuantBlocks.quantize(t, x, 0, x.length, seg, 0, 2, 1);
    float[] y = new float[x.length];
    for (int e = 0; e < x.length; e++) {
      y[e] = QuantBlocks.dequantize(t, seg, 0, 2, 1, x.length, e);
    }
    return y;
  }

  private static float scaleOf(MemorySegment seg) {
    return Float.float16ToFloat(seg.get(QuantBlocks.I16_LE, 0));
  }

  /** Blocks of many kinds: gaussian over many binades, one huge value, tiny (subnormal-scale) blocks. */
  private static float[] block(Random r, int len, int kind) {
    float[] x = new float[len];
    float mag = switch (kind) {
      case 0 -> (float) Math.pow(2, r.nextInt(30) - 15);
      case 1 -> 1e-6f; // scale ~ 1e-8 / 1.3e-7: f16 subnormal
      case 2 -> 1e-9f; // scale rounds to 0 in f16: raised to the smallest subnormal
      default -> 1f;
    };
    for (int e = 0; e < len; e++) {
      x[e] = (float) r.nextGaussian() * mag;
    }
    if (kind == 3) {
      x[r.nextInt(len)] = (r.nextBoolean() ? 1 : -1) * 1e5f; // one huge value
    }
    return x;
  }

  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0"})
  void everyValueComesBackWithinHalfACodeStep(DType t) {
    long seed = 1201L + t.ordinal();
    Random r = new Random(seed);
    MemorySegment seg = MemorySegment.ofArray(new byte[64]);
    for (int trial = 0; trial < 4000; trial++) {
      int len = new int[] {32, 8, 7, 1, 40}[trial % 5];
      float[] x = block(r, len, trial % 4);
      float[] y = quantizeRoundTrip(t, x, seg);
      float s = scaleOf(seg);
      float amax = 0;
      for (float v : x) {
        amax = Math.max(amax, Math.abs(v));
      }
      double reach = t == DType.Q8_0 ? 127.5 : 7.5;
      assertTrue(amax / (double) s <= reach, "seed=" + seed + " trial=" + trial + " scale " + s + " amax " + amax);
      for (int e = 0; e < len; e++) {
        double err = Math.abs((double) x[e] - y[e]);
        assertTrue(err <= s / 2.0, "seed=" + seed + " trial=" + trial + " e=" + e + " x=" + x[e] + " y=" + y[e]
            + " scale=" + s);
      }
    }
  }

  @Test
  void scaleIsTheNearestF16TiesToEvenUnlessTheLargestValueWouldNotFit() {
    // 127 * 3 -> 3 exactly; 7.5 * 3 -> 3 exactly
    assertEquals(Float.floatToFloat16(3f), QuantBlocks.scaleBits(DType.Q8_0, 381f));
    assertEquals(Float.floatToFloat16(3f), QuantBlocks.scaleBits(DType.Q4_0, 22.5f));
    // amax/127 = 1 + 2^-11 (tie between 1 and 1 + 2^-10): to even is 1.0, but 127(1+2^-11)/1 <= 127.5 fits
    float a = 127f * (1f + 0x1p-11f);
    assertEquals(Float.floatToFloat16(1f), QuantBlocks.scaleBits(DType.Q8_0, a));
    // q4_0: amax/7.5 = 1 + 2^-11: rounding down would put amax at 7.5037 steps: raised to 1 + 2^-10
    assertEquals(Float.floatToFloat16(1f + 0x1p-10f), QuantBlocks.scaleBits(DType.Q4_0, 7.5f * (1f + 0x1p-11f)));
    // far below f16's range: the smallest subnormal f16
    assertEquals((short) 1, QuantBlocks.scaleBits(DType.Q8_0, 1e-12f));
  }

  @Test
  void theQ8ScaleSearchNeverLosesAndHelpsShortRows() {
    DType t = DType.Q8_0;
    long seed = 1301L;
    Random r = new Random(seed);
    MemorySegment seg = MemorySegment.ofArray(new byte[64]);
    double[] searched = new double[2], ggml = new double[2]; // (len 32, len 8)
    for (int trial = 0; trial < 2000; trial++) {
      int len = trial % 2 == 0 ? 32 : 8;
      float[] x = block(r, len, trial % 3);
      float amax = 0;
      for (float v : x) {
        amax = Math.max(amax, Math.abs(v));
      }
      float[] y = quantizeRoundTrip(t, x, seg);
      double err = 0;
      for (int e = 0; e < len; e++) {
        err += ((double) x[e] - y[e]) * ((double) x[e] - y[e]);
      }
      short first = QuantBlocks.scaleBits(t, amax);
      double firstErr = QuantBlocks.squaredError(t, x, 0, len, Float.float16ToFloat(first));
      assertTrue(err <= firstErr, "seed=" + seed + " trial=" + trial + ": " + err + " > " + firstErr);
      assertEquals(err, QuantBlocks.squaredError(t, x, 0, len, scaleOf(seg)), 0.0, "seed=" + seed + " trial=" + trial);
      searched[len == 32 ? 0 : 1] += firstErr == 0 ? 1 : err / firstErr;
      ggml[len == 32 ? 0 : 1] += 1;
    }
    // mean squared error relative to the first candidate's (ggml's rule): 8-channel rows gain most
    double rel32 = searched[0] / ggml[0], rel8 = searched[1] / ggml[1];
    assertTrue(rel8 < 0.9, "seed=" + seed + " 8-channel rows keep " + rel8 + " of the error");
    assertEquals(1.0, rel32, 1e-12, "seed=" + seed + " 32-channel blocks keep the first scale");
  }

  @Test
  void q4KeepsTheFirstScale() {
    Random r = new Random(1302L);
    MemorySegment seg = MemorySegment.ofArray(new byte[64]);
    for (int trial = 0; trial < 200; trial++) {
      float[] x = block(r, 8 + 24 * (trial % 2), trial % 3);
      float amax = 0;
      for (float v : x) {
        amax = Math.max(amax, Math.abs(v));
      }
      quantizeRoundTrip(DType.Q4_0, x, seg);
      assertEquals(amax == 0 ? 0 : QuantBlocks.scaleBits(DType.Q4_0, amax), seg.get(QuantBlocks.I16_LE, 0),
          "seed=1302 trial=" + trial);
    }
  }

  @Test
  void zeroBlocksHaveScaleZeroAndTheZeroCode() {
    MemorySegment seg = MemorySegment.ofArray(new byte[64]);
    float[] zeros = new float[32];
    zeros[3] = -0f;
    assertArrayEquals(new float[32], quantizeRoundTrip(DType.Q8_0, zeros, seg));
    assertEquals(0, seg.get(QuantBlocks.I16_LE, 0));
    assertArrayEquals(new byte[32], seg.asSlice(2, 32).toArray(ValueLayout.JAVA_BYTE));
    assertArrayEquals(new float[32], quantizeRoundTrip(DType.Q4_0, zeros, seg));
    byte[] eights = new byte[16];
    java.util.Arrays.fill(eights, (byte) 0x88);
    assertArrayEquals(eights, seg.asSlice(2, 16).toArray(ValueLayout.JAVA_BYTE));
  }

  @Test
  void bytesFollowGgmlBlockFormats() {
    MemorySegment seg = MemorySegment.ofArray(new byte[64]);
    float[] x = new float[32];
    for (int e = 0; e < 32; e++) {
      x[e] = e - 15f;
    }
    x[0] = -127f; // scale 1 leaves no error, so the search keeps it: codes are the values
    QuantBlocks.quantize(DType.Q8_0, x, 0, 32, seg, 0, 2, 1);
    assertEquals((short) 0x3c00, seg.get(QuantBlocks.I16_LE, 0)); // f16 1.0, little-endian
    assertEquals((byte) -127, seg.get(ValueLayout.JAVA_BYTE, 2));
    assertEquals((byte) -14, seg.get(ValueLayout.JAVA_BYTE, 3));
    assertEquals((byte) 16, seg.get(ValueLayout.JAVA_BYTE, 2 + 31));
    // codes are nearest, ties to even
    assertEquals(-14, QuantBlocks.code(DType.Q8_0, -14.5f, 1f));
    assertEquals(-14, QuantBlocks.code(DType.Q8_0, -13.5f, 1f));
    assertEquals(16, QuantBlocks.code(DType.Q8_0, 15.5f, 1f));
    assertEquals(0, QuantBlocks.code(DType.Q4_0, -7.5f, 1f)); // -8 (even) + 8
    // q4_0: element e in byte e % 16, low nibble for e < 16, whatever scale the search chose
    float[] y = new float[32];
    y[0] = -7.5f;
    y[16] = 3f;
    y[1] = 7f;
    y[17] = -2f;
    QuantBlocks.quantize(DType.Q4_0, y, 0, 32, seg, 0, 2, 1);
    float s = scaleOf(seg);
    short first = QuantBlocks.scaleBits(DType.Q4_0, 7.5f);
    int h = seg.get(QuantBlocks.I16_LE, 0);
    assertEquals(first, h, "q4_0 keeps the first scale");
    assertEquals((byte) (QuantBlocks.code(DType.Q4_0, -7.5f, s) | QuantBlocks.code(DType.Q4_0, 3f, s) << 4),
        seg.get(ValueLayout.JAVA_BYTE, 2));
    assertEquals((byte) (QuantBlocks.code(DType.Q4_0, 7f, s) | QuantBlocks.code(DType.Q4_0, -2f, s) << 4),
        seg.get(ValueLayout.JAVA_BYTE, 3));
    assertEquals((byte) 0x88, seg.get(ValueLayout.JAVA_BYTE, 4));
    assertEquals(34, QuantBlocks.blockBytes(DType.Q8_0, 128));
    assertEquals(18, QuantBlocks.blockBytes(DType.Q4_0, 128));
    assertEquals(4 * 34, DType.Q8_0.rowBytes(128));
    assertEquals(4 * 18, DType.Q4_0.rowBytes(128));
    assertEquals(2 + 8, DType.Q8_0.rowBytes(8)); // d = 8: one block per row
    assertEquals(2 + 4, DType.Q4_0.rowBytes(8));
    assertEquals(2 + 4, DType.Q4_0.rowBytes(7)); // 7 codes in 4 bytes, the last high nibble unused
  }

  @Test
  void blockDtypesHaveNoElementAccess() {
    var e = assertThrows(UnsupportedOperationException.class, DType.Q8_0::bytes);
    assertEquals("q8_0 is a block dtype with no per-element size: use rowBytes(d)", e.getMessage());
    MemorySegment seg = MemorySegment.ofArray(new byte[4]);
    assertThrows(UnsupportedOperationException.class, () -> DType.Q4_0.read(seg, 0));
    assertEquals(DType.Q8_0, DType.parse("Q8_0"));
    assertEquals(DType.Q4_0, DType.parse("q4_0"));
    assertEquals(DType.F32, DType.Q4_0.summaryDType());
  }
}
