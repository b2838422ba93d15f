package hflash.tiles;

/**
 * Where the kernels find an element inside a K or V tile: the tile layout of the cache
 * ({@code hflash.memory.TileLayout} and {@code QuantBlocks} write it), restated here for the read
 * side so that {@code tiles} needs nothing of the cache module. {@code TileFormatTest} holds every
 * formula equal to the cache's.
 *
 * <pre>
 * K tile: blocks of KEY_BLOCK keys; inside a block column-major:
 *         key j, channel c  at  (j / 32) * 32 * d  +  c * 32  +  lane(j % 32)
 * V tile: blocks of CHANNEL_BLOCK channels; inside a block row-major:
 *         key j, channel c  at  (c / 32) * 32 * T  +  j * w  +  lane(c % 32),   w = min(32, d - (c / 32) * 32)
 * lane(i) = i (f32), 2 (i % 16) + i / 16 (bf16, f16: word w holds elements w and w + 16);
 *           a narrow last V block (w &lt; 32) keeps the natural order
 * </pre>
 *
 * Block encodings (q8_0, q4_0): a head row is cut into blocks of {@link #blockLength} channels, each
 * an f16 scale and its codes; a K tile interleaves the blocks of one block column of a group of 32
 * keys byte-wise (32 scales, then code byte i of the 32 keys at {@code 64 + 32 i}); a V tile keeps
 * ggml's contiguous blocks, block b of key j at {@code (b T + j) blockBytes}.
 */
final class TileFormat {

  /** Keys per K block. */
  static final int KEY_BLOCK = 32;
  /** Channels per V block. */
  static final int CHANNEL_BLOCK = 32;
  /** Elements per half of a paired run. */
  static final int PAIR_SPAN = 16;
  /** Channels per quantization block when the head dimension is a multiple of it. */
  static final int BLOCK = 32;
  /** Keys per K group of a block encoding (= {@link #KEY_BLOCK}). */
  static final int GROUP = KEY_BLOCK;
  /** Bytes of a group's 32 f16 scales, before its codes. */
  static final int GROUP_SCALE_BYTES = 2 * GROUP;

  private TileFormat() {}

  /** Position of element {@code i} (0..31) inside a full run of 32: paired or natural. */
  static int lane(int i, boolean paired) {
    return paired ? 2 * (i % PAIR_SPAN) + i / PAIR_SPAN : i;
  }

  /** Element index of channel {@code c} of key {@code j} inside a K tile of head dimension d. */
  static int keyIndex(int j, int c, int d, TileEncoding e) {
    return (j / KEY_BLOCK) * KEY_BLOCK * d + c * KEY_BLOCK + lane(j % KEY_BLOCK, e.paired());
  }

  /** Element index of channel {@code c} of key {@code j} inside a V tile of T keys. */
  static int valueIndex(int j, int c, int d, int tileTokens, TileEncoding e) {
    int block = c / CHANNEL_BLOCK;
    int width = valueBlockWidth(block, d);
    int inRow = width == CHANNEL_BLOCK ? lane(c % CHANNEL_BLOCK, e.paired()) : c % CHANNEL_BLOCK;
    return block * CHANNEL_BLOCK * tileTokens + j * width + inRow;
  }

  /** Width in channels of V block {@code block}: 32, or what is left of d for the last one. */
  static int valueBlockWidth(int block, int d) {
    return Math.min(CHANNEL_BLOCK, d - block * CHANNEL_BLOCK);
  }

  /** Channels per quantization block: 32 when d is a multiple of 32, else d (one block per row). */
  static int blockLength(int d) {
    return d % BLOCK == 0 ? BLOCK : d;
  }

  /** Code bytes of a block of {@code len} channels: len (q8_0), ceil(len / 2) (q4_0). */
  static int codeBytes(TileEncoding e, int len) {
    return switch (e) {
      case Q8_0 -> len;
      case Q4_0 -> (len + 1) / 2;
      default -> throw new IllegalArgumentException("not a block encoding: " + e.id());
    };
  }

  /** Bytes of one block of a head row of d channels: 2 (the f16 scale) + codeBytes. */
  static int blockBytes(TileEncoding e, int d) {
    return 2 + codeBytes(e, blockLength(d));
  }

  /** Bytes of one head row of d channels of a block encoding. */
  static long rowBytes(TileEncoding e, int d) {
    return (long) (d / blockLength(d)) * blockBytes(e, d);
  }

  /** Offset from a K tile's start of the block column b of key j's group. */
  static long keyColumnOffset(TileEncoding e, int d, int j, int b) {
    return (long) (j / GROUP) * GROUP * rowBytes(e, d) + (long) b * GROUP * blockBytes(e, d);
  }

  /** Offset from a K tile's start of the scale of key j's block b. */
  static long keyScaleOffset(TileEncoding e, int d, int j, int b) {
    return keyColumnOffset(e, d, j, b) + 2L * (j % GROUP);
  }

  /** Offset from a K tile's start of code byte 0 of key j's block b; byte i is {@code i * 32} further. */
  static long keyCodeOffset(TileEncoding e, int d, int j, int b) {
    return keyColumnOffset(e, d, j, b) + GROUP_SCALE_BYTES + (j % GROUP);
  }

  /** Offset from a V tile's start (tile of T keys) of key j's block b: scale, then the codes. */
  static long valueBlockOffset(TileEncoding e, int d, int tileTokens, int j, int b) {
    return ((long) b * tileTokens + j) * blockBytes(e, d);
  }
}
