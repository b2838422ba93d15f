package hflash.memory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The block formats of {@link DType#Q8_0} and {@link DType#Q4_0} (ggml's): quantization on append,
 * dequantization, and where the bytes of a block sit inside a K or V tile.
 *
 * <p><b>Blocks.</b> A head row of d channels is cut into {@link #blocksPerRow(int) blocks} of
 * {@link #blockLength(int) B} consecutive channels: B = 32 when d is a multiple of 32, otherwise
 * one block per row (B = d; the shared stories260K model has d = 8). A block is an f16 scale
 * {@code s} and B codes:
 *
 * <pre>
 *   q8_0: B int8 codes q,        value = s * q          (32 channels: 2 + 32 = 34 bytes)
 *   q4_0: ceil(B/2) code bytes,  value = s * (q - 8)    (32 channels: 2 + 16 = 18 bytes)
 *         element e in byte e % h, low nibble when e &lt; h, high nibble otherwise, h = ceil(B/2)
 *         (ggml's order: low nibbles hold the first 16 elements, high nibbles the last 16)
 * </pre>
 *
 * <p><b>Rounding rule.</b> With {@code a = max_e |x_e|}: the scale is {@code a / 127} (q8_0) or
 * {@code a / 7.5} (q4_0), computed in f32 and rounded to f16 to nearest, ties to even; when the
 * block's largest magnitude would then fall more than half a step outside the code range
 * ({@code a / s > 127.5}, resp. {@code > 7.5}: only when the f16 rounding went down, or the
 * scale is subnormal or rounded to zero) the scale is raised to the next f16 until it fits. That is
 * the first candidate, and 32-channel blocks and q4_0 keep it (as ggml does). A q8_0 row shorter
 * than 32 channels (one block per row, the shared model's d = 8) then tries the next 127 f16 scales
 * upward ({@link #scaleCandidates}) and keeps the one whose codes give it the least squared error
 * (ties: the smaller scale) ({@link #searchScale}): the rounding errors of its few values do not
 * average out, and a scale a few f16 steps larger often puts them nearer to the grid
 * (docs/MEMORY.md, docs/CLAIMS.md). Each
 * code is the nearest to {@code x / s} (ties to even, computed in double), clamped to the
 * code range ({@code [-128, 127]}, resp. {@code [0, 15]}). Every candidate is at least the first, so
 * every value comes back within half a
 * code step: {@code |x - dequantize(quantize(x))| <= s / 2}, an all-zero block has scale 0 and
 * codes 0 (q4_0: 8), and the value {@code s * q} is exact in f32. q4_0 divides by 7.5 rather than
 * ggml's 8 (which maps the largest value exactly but clamps values near its negation a whole step
 * off): the same decoder, and a worst case of half a step for every value. Non-finite inputs never
 * reach a block: {@link KvCache#append} rejects them first ({@link DType#representable}).
 *
 * <p><b>Tile placement.</b> The V tile keeps ggml's contiguous blocks: block b of key j at
 * {@code (b * T + j) * blockBytes} from the tile start (the p.V kernel sweeps the keys of one block
 * column). The K tile is, like the float dtypes', cut into groups of 32 keys; inside a group the
 * blocks of one block column b (the 32 keys' blocks for channels {@code [bB, bB+B)}) are
 * interleaved byte-wise, the way ggml's CPU repack interleaves blocks for its matrix kernels:
 *
 * <pre>
 *   group base      = (j / 32) * 32 * rowBytes
 *   column base     = group base + b * 32 * blockBytes
 *   scale of key j  at column base + 2 * (j % 32)                     (f16, little-endian)
 *   code byte i     at column base + 64 + i * 32 + (j % 32)           (i &lt; codeBytes)
 * </pre>
 *
 * so one code byte of 32 keys is one 32-byte run: the score kernel widens it into 32 lanes of keys,
 * with no horizontal sum. Every block's bytes are ggml's, only their order changes
 * ({@link #keyBlockBytes} gathers one block back into ggml's contiguous form).
 */
public final class QuantBlocks {

  /** Channels per block when the head dimension is a multiple of it. */
  public static final int BLOCK = 32;
  /** Keys per K group (= {@link TileLayout#KEY_BLOCK}). */
  public static final int GROUP = TileLayout.KEY_BLOCK;
  /** Bytes of a group's 32 scales, before its codes. */
  public static final int GROUP_SCALE_BYTES = 2 * GROUP;

  static final ValueLayout.OfShort I16_LE =
      ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  private QuantBlocks() {}

  /** Channels per block: 32 when d is a multiple of 32, else d (one block per row). */
  public static int blockLength(int d) {
    return d % BLOCK == 0 ? BLOCK : d;
  }

  /** Blocks per head row: d / blockLength(d). */
  public static int blocksPerRow(int d) {
    return d / blockLength(d);
  }

  /** Code bytes of a block of {@code len} channels: len (q8_0), ceil(len / 2) (q4_0). */
  public static int codeBytes(DType t, int len) {
    return switch (t) {
      case Q8_0 -> len;
      case Q4_0 -> (len + 1) / 2;
      default -> throw notBlock(t);
    };
  }

  /** Bytes of one block of a head row of d channels: 2 (the f16 scale) + codeBytes. */
  public static int blockBytes(DType t, int d) {
    return 2 + codeBytes(t, blockLength(d));
  }

  /** Bytes of one head row of d channels: blocksPerRow * blockBytes. */
  public static long rowBytes(DType t, int d) {
    return (long) blocksPerRow(d) * blockBytes(t, d);
  }

  private static IllegalArgumentException notBlock(DType t) {
    return new IllegalArgumentException("not a block dtype: " + t.id());
  }

  // ------------------------------------------------------------------------------ rounding

  /** The largest |code| (q8_0) or |code - 8| boundary a block's largest value may reach: 127.5 / 7.5. */
  private static double reach(DType t) {
    return t == DType.Q8_0 ? 127.5 : 7.5;
  }

  /**
   * The f16 scale of a block whose largest magnitude is {@code amax} (finite, within the dtype's
   * {@link DType#representable range}), by the rule in the class comment, as its f16 bits.
   */
  public static short scaleBits(DType t, float amax) {
    short h = Float.floatToFloat16(amax / (t == DType.Q8_0 ? 127f : 7.5f));
    double reach = reach(t);
    // raise by one f16 step at a time (positive f16 bit patterns are ordered like their values)
    while (amax / (double) Float.float16ToFloat(h) > reach) {
      h++;
    }
    return h;
  }

  /** Scales {@link #searchScale} tries for a q8_0 row shorter than a 32-channel block (d = 8). */
  public static final int SHORT_ROW_CANDIDATES = 128;

  /**
   * How many consecutive f16 scales {@link #quantize} tries for a block of {@code len} channels:
   * {@value #SHORT_ROW_CANDIDATES} for a q8_0 row shorter than 32 channels (about 1,000 trial
   * roundings for d = 8: such a row's rounding errors do not average out, and the search halves
   * them), otherwise one. For 32-channel blocks 8 candidates cut the squared error by only 6 % and
   * made a d = 128 append 2.6x slower (13 us more per K+V row), which a decode loop pays on every
   * token; q4_0 keeps ggml's scale: on the shared model the search raised its NLL change
   * (docs/MEMORY.md section 7, docs/CLAIMS.md).
   */
  public static int scaleCandidates(DType t, int len) {
    return t == DType.Q8_0 && len < BLOCK ? SHORT_ROW_CANDIDATES : 1;
  }

  /**
   * The f16 scale {@link #quantize} stores for the values {@code x[off .. off + len)} with largest
   * magnitude {@code amax > 0}: of the {@link #scaleCandidates} consecutive f16 scales from
   * {@link #scaleBits}{@code (t, amax)} upward, the one whose codes (nearest, {@link #code})
   * give the least squared error {@code sum (x - s * code)^2} (in double; the smallest such
   * scale on a tie). Every candidate is at least the first, so the largest value still fits
   * ({@code amax / s <= reach}) and every value stays within half a step of its code.
   */
  public static short searchScale(DType t, float[] x, int off, int len, float amax) {
    short first = scaleBits(t, amax);
    int candidates = scaleCandidates(t, len);
    if (candidates == 1) {
      return first;
    }
    short best = first;
    double bestErr = squaredError(t, x, off, len, Float.float16ToFloat(first));
    for (int i = 1; i < candidates && bestErr > 0; i++) {
      int h = first + i;
      if (h >= 0x7c00) { // past the largest finite f16
        break;
      }
      double err = squaredError(t, x, off, len, Float.float16ToFloat((short) h));
      if (err < bestErr) {
        best = (short) h;
        bestErr = err;
      }
    }
    return best;
  }

  /** {@code sum (x_e - s * code(x_e))^2} over the block, in double (s * code is exact in f32). */
  static double squaredError(DType t, float[] x, int off, int len, float s) {
    int zero = t == DType.Q8_0 ? 0 : 8;
    double err = 0;
    for (int e = off; e < off + len; e++) {
      double r = x[e] - (double) s * (code(t, x[e], s) - zero);
      err += r * r;
    }
    return err;
  }

  /** The code of x for scale s (the nearest, ties to even, clamped); for s == 0 the zero code. */
  static int code(DType t, float x, float s) {
    if (t == DType.Q8_0) {
      int q = s == 0f ? 0 : (int) Math.rint(x / (double) s);
      return Math.max(-128, Math.min(127, q));
    }
    int q = s == 0f ? 8 : (int) Math.rint(x / (double) s) + 8;
    return Math.max(0, Math.min(15, q));
  }

  /**
   * Quantizes {@code x[off .. off + len)} into one block: the f16 scale at {@code scaleAt}, code
   * byte i at {@code codeAt + i * codeStride} (1 for a contiguous block, 32 in a K group).
   * Allocation-free; the values must be finite and within the dtype's range (checked by the caller).
   */
  public static void quantize(DType t, float[] x, int off, int len, MemorySegment seg, long scaleAt,
      long codeAt, long codeStride) {
    float amax = 0f;
    for (int e = off; e < off + len; e++) {
      amax = Math.max(amax, Math.abs(x[e]));
    }
    short h = amax == 0f ? 0 : searchScale(t, x, off, len, amax);
    float s = Float.float16ToFloat(h);
    seg.set(I16_LE, scaleAt, h);
    if (t == DType.Q8_0) {
      for (int e = 0; e < len; e++) {
        seg.set(ValueLayout.JAVA_BYTE, codeAt + e * codeStride, (byte) code(t, x[off + e], s));
      }
    } else {
      int half = (len + 1) / 2;
      for (int i = 0; i < half; i++) {
        int lo = code(t, x[off + i], s);
        int hi = i + half < len ? code(t, x[off + i + half], s) : 0;
        seg.set(ValueLayout.JAVA_BYTE, codeAt + i * codeStride, (byte) (lo | hi << 4));
      }
    }
  }

  /** Element e of a block of {@code len} channels laid out as in {@link #quantize}: scale * code. */
  public static float dequantize(DType t, MemorySegment seg, long scaleAt, long codeAt, long codeStride,
      int len, int e) {
    float s = Float.float16ToFloat(seg.get(I16_LE, scaleAt));
    if (t == DType.Q8_0) {
      return s * seg.get(ValueLayout.JAVA_BYTE, codeAt + e * codeStride);
    }
    int half = (len + 1) / 2;
    int b = seg.get(ValueLayout.JAVA_BYTE, codeAt + (e % half) * codeStride) & 0xff;
    return s * ((e < half ? b & 15 : b >>> 4) - 8);
  }

  // ------------------------------------------------------------------------ tile placement

  /** Offset from a K tile's start of the scale of key j's block b (head dim d). */
  public static long keyScaleOffset(DType t, int d, int j, int b) {
    return keyColumnOffset(t, d, j, b) + 2L * (j % GROUP);
  }

  /** Offset from a K tile's start of code byte 0 of key j's block b; byte i is {@code i * 32} further. */
  public static long keyCodeOffset(DType t, int d, int j, int b) {
    return keyColumnOffset(t, d, j, b) + GROUP_SCALE_BYTES + (j % GROUP);
  }

  /** Offset from a K tile's start of the block column b of key j's group. */
  public static long keyColumnOffset(DType t, int d, int j, int b) {
    return (long) (j / GROUP) * GROUP * rowBytes(t, d) + (long) b * GROUP * blockBytes(t, d);
  }

  /** Offset from a V tile's start (tile of T keys) of key j's block b: scale, then the codes. */
  public static long valueBlockOffset(DType t, int d, int tileTokens, int j, int b) {
    return ((long) b * tileTokens + j) * blockBytes(t, d);
  }

  /** Channel c of key j of the K tile at {@code tile}, dequantized. */
  public static float key(DType t, int d, MemorySegment seg, long tile, int j, int c) {
    int len = blockLength(d), b = c / len;
    return dequantize(t, seg, tile + keyScaleOffset(t, d, j, b), tile + keyCodeOffset(t, d, j, b), GROUP,
        len, c % len);
  }

  /** Channel c of key j of the V tile (T keys) at {@code tile}, dequantized. */
  public static float value(DType t, int d, int tileTokens, MemorySegment seg, long tile, int j, int c) {
    int len = blockLength(d), b = c / len;
    long at = tile + valueBlockOffset(t, d, tileTokens, j, b);
    return dequantize(t, seg, at, at + 2, 1, len, c % len);
  }

  /** Quantizes the d values at {@code x[off..]} as key j of the K tile at {@code tile}. */
  static void quantizeKey(DType t, int d, float[] x, int off, MemorySegment seg, long tile, int j) {
    int len = blockLength(d);
    for (int b = 0; b < d / len; b++) {
      quantize(t, x, off + b * len, len, seg, tile + keyScaleOffset(t, d, j, b),
          tile + keyCodeOffset(t, d, j, b), GROUP);
    }
  }

  /** Quantizes the d values at {@code x[off..]} as key j of the V tile (T keys) at {@code tile}. */
  static void quantizeValue(DType t, int d, int tileTokens, float[] x, int off, MemorySegment seg,
      long tile, int j) {
    int len = blockLength(d);
    for (int b = 0; b < d / len; b++) {
      long at = tile + valueBlockOffset(t, d, tileTokens, j, b);
      quantize(t, x, off + b * len, len, seg, at, at + 2, 1);
    }
  }

  /** Copies key jSrc of the K tile (or group) at src to key jDst of the one at dst: bytes as stored. */
  static void copyKey(DType t, int d, MemorySegment src, long srcTile, int jSrc, MemorySegment dst,
      long dstTile, int jDst) {
    int codes = codeBytes(t, blockLength(d));
    for (int b = 0; b < blocksPerRow(d); b++) {
      dst.set(I16_LE, dstTile + keyScaleOffset(t, d, jDst, b), src.get(I16_LE, srcTile + keyScaleOffset(t, d, jSrc, b)));
      long from = srcTile + keyCodeOffset(t, d, jSrc, b), to = dstTile + keyCodeOffset(t, d, jDst, b);
      for (int i = 0; i < codes; i++) {
        dst.set(ValueLayout.JAVA_BYTE, to + (long) i * GROUP, src.get(ValueLayout.JAVA_BYTE, from + (long) i * GROUP));
      }
    }
  }

  /**
   * Block b of key j of the K tile at {@code tile}, gathered into ggml's contiguous form (f16 scale
   * then the code bytes): what a GGUF reader expects. For interop and tests.
   */
  public static byte[] keyBlockBytes(DType t, int d, MemorySegment seg, long tile, int j, int b) {
    int codes = codeBytes(t, blockLength(d));
    byte[] out = new byte[2 + codes];
    long scale = tile + keyScaleOffset(t, d, j, b), code = tile + keyCodeOffset(t, d, j, b);
    out[0] = seg.get(ValueLayout.JAVA_BYTE, scale);
    out[1] = seg.get(ValueLayout.JAVA_BYTE, scale + 1);
    for (int i = 0; i < codes; i++) {
      out[2 + i] = seg.get(ValueLayout.JAVA_BYTE, code + (long) i * GROUP);
    }
    return out;
  }
}
