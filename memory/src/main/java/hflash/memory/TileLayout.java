package hflash.memory;

/**
 * Element order inside one tile of {@code T} keys ({@code T} a multiple of {@link #KEY_BLOCK}),
 * chosen so that the kernels read every tile front to back, in one sequential sweep per block,
 * which is what lets the hardware prefetchers stream the cache from DRAM at full bandwidth.
 *
 * <pre>
 * K tile: blocks of KEY_BLOCK keys; inside a block, column-major:
 *         key j, channel c  at  (j / 32) * 32 * d  +  c * 32  +  j % 32
 *         -> one channel of 32 consecutive keys is contiguous: the score kernel loads it as a
 *            vector and builds 32 scores in lanes, with no horizontal reduction.
 * V tile: blocks of CHANNEL_BLOCK channels; inside a block, row-major:
 *         key j, channel c  at  (c / 32) * 32 * T  +  j * w  +  c % 32,   w = min(32, d - (c / 32) * 32)
 *         -> the p.V kernel sweeps the keys of one 32-channel block with 4 heads x 32 channels
 *            of accumulators held in registers.
 * </pre>
 *
 * Indices are in elements; multiply by the dtype's byte size for byte offsets. A tile occupies
 * {@code T * d} elements in both segments.
 */
public final class TileLayout {

  /** Keys per K block: 32 lanes of f32 make two 512-bit or four 256-bit vectors. */
  public static final int KEY_BLOCK = 32;

  /** Channels per V block. */
  public static final int CHANNEL_BLOCK = 32;

  private TileLayout() {}

  /** Element index of channel {@code c} of key {@code j} inside a K tile of head dimension d. */
  public static int keyIndex(int j, int c, int d) {
    return (j / KEY_BLOCK) * KEY_BLOCK * d + c * KEY_BLOCK + j % KEY_BLOCK;
  }

  /** Element index of channel {@code c} of key {@code j} inside a V tile of T keys. */
  public static int valueIndex(int j, int c, int d, int tileTokens) {
    int block = c / CHANNEL_BLOCK;
    int width = Math.min(CHANNEL_BLOCK, d - block * CHANNEL_BLOCK);
    return block * CHANNEL_BLOCK * tileTokens + j * width + c % CHANNEL_BLOCK;
  }

  /** Width in channels of V block {@code block}: 32, or what is left of d for the last one. */
  public static int valueBlockWidth(int block, int d) {
    return Math.min(CHANNEL_BLOCK, d - block * CHANNEL_BLOCK);
  }
}
