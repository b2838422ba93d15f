package hflash.memory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Locale;

/**
 * Element type of a stored K/V value: how many bytes it takes and how a float is encoded into it.
 *
 * <p>All encodings are little-endian and accessed through unaligned layouts, so any byte offset
 * works. Encoding rounds to nearest, ties to even (IEEE 754 default), for both half formats;
 * {@link #round(float)} is exactly the value a store followed by a load returns.
 *
 * <p>{@link #representable(float)} is the admission rule of {@link KvCache#append}: the value is
 * finite and stays finite after rounding (f16 overflows at |x| &ge; 65520, bf16 at |x| &ge;
 * 0x1.ffp127, the midpoints above each format's largest finite value, which round to infinity).
 *
 * <p><b>Block dtypes.</b> {@link #Q8_0} and {@link #Q4_0} store a head row as blocks of 32
 * channels (one block per row when the head dimension is not a multiple of 32), each an f16 scale
 * and integer codes, ggml's block formats; {@link QuantBlocks} has the rounding rule and the byte
 * layout. They have no per-element size ({@link #bytes()} throws): use {@link #rowBytes(int)}.
 * Element-wise {@link #read}, {@link #write} and {@link #round} are not defined for them either
 * (a value's rounding depends on its whole block). Their admission limit is the magnitude whose
 * block scale would overflow f16: a block's scale is {@code max|x| / 127} (q8_0) or
 * {@code max|x| / 7.5} (q4_0), rounded to f16.
 */
public enum DType {
  /** IEEE 754 binary32, stored as is. */
  F32(Float.BYTES, "f32", Float.POSITIVE_INFINITY),
  /** bfloat16: the top 16 bits of a binary32 (8-bit exponent, 7-bit mantissa), RNE. */
  BF16(Short.BYTES, "bf16", 0x1.ffp127f),
  /** IEEE 754 binary16 (5-bit exponent, 10-bit mantissa), RNE via {@link Float#floatToFloat16}. */
  F16(Short.BYTES, "f16", 65520f),
  /** ggml q8_0: per 32 channels an f16 scale and 32 int8 codes, value = scale * code (34 bytes). */
  Q8_0(0, "q8_0", 65504f * 127f),
  /** ggml q4_0: per 32 channels an f16 scale and 16 bytes of 4-bit codes, value = scale * (code - 8). */
  Q4_0(0, "q4_0", 65504f * 7.5f);

  static final ValueLayout.OfFloat F32_LE =
      ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  static final ValueLayout.OfShort I16_LE =
      ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  private final int bytes;
  private final String id;
  // representable(v) <=> |v| < overflowLimit; NaN and +-inf fail the comparison
  private final float overflowLimit;

  DType(int bytes, String id, float overflowLimit) {
    this.bytes = bytes;
    this.id = id;
    this.overflowLimit = overflowLimit;
  }

  /**
   * Bytes per stored element: 4 for f32, 2 for bf16 and f16.
   *
   * @throws UnsupportedOperationException for the block dtypes, which have no per-element size
   *     (use {@link #rowBytes(int)})
   */
  public int bytes() {
    if (bytes == 0) {
      throw new UnsupportedOperationException(id + " is a block dtype with no per-element size: use rowBytes(d)");
    }
    return bytes;
  }

  /** True for the block-quantized dtypes q8_0 and q4_0. */
  public boolean quantized() {
    return bytes == 0;
  }

  /**
   * Bytes of one head row of {@code d} elements: {@code d * bytes()} for f32/bf16/f16, the
   * blocks' bytes for q8_0 and q4_0 ({@link QuantBlocks#rowBytes}).
   */
  public long rowBytes(int d) {
    return quantized() ? QuantBlocks.rowBytes(this, d) : (long) d * bytes;
  }

  /**
   * The dtype of the per-tile box summaries (lo/hi) of a cache of this dtype: itself for the float
   * dtypes (a stored element is held exactly), f32 for the block dtypes (a dequantized value,
   * scale times code, is exact in f32).
   */
  public DType summaryDType() {
    return quantized() ? F32 : this;
  }

  /** Lower-case name used on command lines and in messages: "f32", "bf16", "f16", "q8_0", "q4_0". */
  public String id() {
    return id;
  }

  /**
   * Parses "f32", "bf16", "f16", "q8_0" or "q4_0", ignoring case.
   *
   * @throws IllegalArgumentException for any other string, including null
   */
  public static DType parse(String s) {
    if (s != null) {
      switch (s.toLowerCase(Locale.ROOT)) {
        case "f32":
          return F32;
        case "bf16":
          return BF16;
        case "f16":
          return F16;
        case "q8_0":
          return Q8_0;
        case "q4_0":
          return Q4_0;
        default:
          break;
      }
    }
    throw new IllegalArgumentException("unknown dtype: " + s + " (expected f32, bf16, f16, q8_0 or q4_0)");
  }

  /** Encodes to bfloat16 with round-to-nearest-even; NaN stays NaN (made quiet), overflow to inf. */
  public static short toBf16(float v) {
    int bits = Float.floatToRawIntBits(v);
    if ((bits & 0x7fff_ffff) > 0x7f80_0000) {
      // NaN: truncation could clear every mantissa bit left, so force the quiet bit
      return (short) ((bits >>> 16) | 0x0040);
    }
    // adding 0x7fff plus the lowest kept bit rounds half to even; a carry into the exponent is the
    // correct result (next binade, or +-inf past the largest finite bf16)
    int lsb = (bits >>> 16) & 1;
    return (short) ((bits + 0x7fff + lsb) >>> 16);
  }

  /** Decodes a bfloat16: exact, every bf16 is a float. */
  public static float fromBf16(short h) {
    return Float.intBitsToFloat((h & 0xffff) << 16);
  }

  /** Encodes to IEEE binary16 with round-to-nearest-even (= {@link Float#floatToFloat16}). */
  public static short toF16(float v) {
    return Float.floatToFloat16(v);
  }

  /** Decodes an IEEE binary16: exact (= {@link Float#float16ToFloat}). */
  public static float fromF16(short h) {
    return Float.float16ToFloat(h);
  }

  /** Loads one element at {@code byteOffset} (little-endian, any alignment) and widens it. */
  public float read(MemorySegment seg, long byteOffset) {
    return switch (this) {
      case F32 -> seg.get(F32_LE, byteOffset);
      case BF16 -> fromBf16(seg.get(I16_LE, byteOffset));
      case F16 -> fromF16(seg.get(I16_LE, byteOffset));
      case Q8_0, Q4_0 -> throw blockElement();
    };
  }

  /** Stores one element at {@code byteOffset} (little-endian, any alignment), rounding RNE. */
  public void write(MemorySegment seg, long byteOffset, float v) {
    switch (this) {
      case F32 -> seg.set(F32_LE, byteOffset, v);
      case BF16 -> seg.set(I16_LE, byteOffset, toBf16(v));
      case F16 -> seg.set(I16_LE, byteOffset, toF16(v));
      case Q8_0, Q4_0 -> throw blockElement();
    }
  }

  /** The value a {@link #write} followed by a {@link #read} returns. */
  public float round(float v) {
    return switch (this) {
      case F32 -> v;
      case BF16 -> fromBf16(toBf16(v));
      case F16 -> fromF16(toF16(v));
      case Q8_0, Q4_0 -> throw blockElement();
    };
  }

  private UnsupportedOperationException blockElement() {
    return new UnsupportedOperationException(
        id + " stores blocks, not elements: use QuantBlocks to quantize and dequantize");
  }

  /** True if {@code v} is finite and does not overflow to infinity when stored in this dtype. */
  public boolean representable(float v) {
    return Math.abs(v) < overflowLimit;
  }

  /** Smallest magnitude that is not representable; package-private for the append hot loop. */
  float overflowLimit() {
    return overflowLimit;
  }
}
