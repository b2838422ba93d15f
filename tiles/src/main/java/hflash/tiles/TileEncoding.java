package hflash.tiles;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * How the elements of a K or V tile are encoded, as the kernels read them: the kernels' own view of
 * a cache dtype, so that {@code tiles} does not depend on the cache module. The constants mirror
 * the cache's dtypes one for one (same names and ids); the engine maps a cache dtype to its
 * encoding, and a test of this module holds the two sides' byte layouts equal.
 *
 * <p>{@link #Q8_0} and {@link #Q4_0} are ggml's block formats (an f16 scale and 32 codes per block
 * of channels, {@link TileFormat}): they have no per-element size, so {@link #bytes()} and
 * {@link #read} are defined for the float encodings only.
 */
public enum TileEncoding {
  /** IEEE 754 binary32. */
  F32(Float.BYTES, "f32"),
  /** bfloat16: the top 16 bits of a binary32. */
  BF16(Short.BYTES, "bf16"),
  /** IEEE 754 binary16. */
  F16(Short.BYTES, "f16"),
  /** ggml q8_0: per 32 channels an f16 scale and 32 int8 codes. */
  Q8_0(0, "q8_0"),
  /** ggml q4_0: per 32 channels an f16 scale and 16 bytes of 4-bit codes. */
  Q4_0(0, "q4_0");

  private static final ValueLayout.OfFloat F32_LE =
      ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfShort I16_LE =
      ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  private final int bytes;
  private final String id;

  TileEncoding(int bytes, String id) {
    this.bytes = bytes;
    this.id = id;
  }

  /**
   * Bytes per element: 4 for f32, 2 for bf16 and f16.
   *
   * @throws UnsupportedOperationException for the block encodings (use {@link #rowBytes(int)})
   */
  public int bytes() {
    if (bytes == 0) {
      throw new UnsupportedOperationException(id + " is a block encoding with no per-element size: use rowBytes(d)");
    }
    return bytes;
  }

  /** True for the block-quantized encodings q8_0 and q4_0. */
  public boolean quantized() {
    return bytes == 0;
  }

  /** Bytes of one head row of {@code d} elements (the blocks' bytes for q8_0 and q4_0). */
  public long rowBytes(int d) {
    return quantized() ? TileFormat.rowBytes(this, d) : (long) d * bytes;
  }

  /** The encoding of a tile's box summaries: itself for the float encodings, f32 for the block ones. */
  public TileEncoding summaryEncoding() {
    return quantized() ? F32 : this;
  }

  /** True when 32-element runs are stored pair-wise (bf16, f16): see {@link TileFormat}. */
  public boolean paired() {
    return this == BF16 || this == F16;
  }

  /** Lower-case name, the cache dtype's id: "f32", "bf16", "f16", "q8_0", "q4_0". */
  public String id() {
    return id;
  }

  /**
   * The encoding whose {@link #id()} is {@code id}.
   *
   * @throws IllegalArgumentException for any other string, including null
   */
  public static TileEncoding of(String id) {
    for (TileEncoding e : values()) {
      if (e.id.equals(id)) {
        return e;
      }
    }
    throw new IllegalArgumentException("unknown tile encoding: " + id + " (expected f32, bf16, f16, q8_0 or q4_0)");
  }

  /**
   * Loads one element at {@code byteOffset} (little-endian, any alignment) and widens it exactly.
   *
   * @throws UnsupportedOperationException for the block encodings
   */
  public float read(MemorySegment seg, long byteOffset) {
    return switch (this) {
      case F32 -> seg.get(F32_LE, byteOffset);
      case BF16 -> Float.intBitsToFloat((seg.get(I16_LE, byteOffset) & 0xffff) << 16);
      case F16 -> Float.float16ToFloat(seg.get(I16_LE, byteOffset));
      case Q8_0, Q4_0 -> throw new UnsupportedOperationException(id + " stores blocks, not elements");
    };
  }
}
