package hflash.memory;

/**
 * Element order inside one tile of {@code T} keys ({@code T} a multiple of {@link #KEY_BLOCK}),
 * chosen so that the kernels read every tile front to back, in one sequential sweep per block,
 * which is what lets the hardware prefetchers stream the cache from DRAM at full bandwidth.
 *
 * <pre>
 * K tile: blocks of KEY_BLOCK keys; inside a block, column-major:
 *         key j, channel c  at  (j / 32) * 32 * d  +  c * 32  +  lane(j % 32)
 *         -> one channel of 32 consecutive keys is contiguous: the score kernel loads it as
 *            vectors and builds 32 scores in lanes, with no horizontal reduction.
 * V tile: blocks of CHANNEL_BLOCK channels; inside a block, row-major:
 *         key j, channel c  at  (c / 32) * 32 * T  +  j * w  +  lane(c % 32),   w = min(32, d - (c / 32) * 32)
 *         -> the p.V kernel sweeps the keys of one 32-channel block with 4 heads x 32 channels
 *            of accumulators held in registers.
 * </pre>
 *
 * <b>Pairing of 16-bit runs.</b> For f32, {@code lane(i) = i}. For bf16 and f16, a run of 32
 * elements (one channel of a K block, one row of a full 32-channel V block) is stored pair-wise:
 * {@code lane(i) = 2 (i % 16) + i / 16}, so the 32-bit word {@code w} of the run holds element
 * {@code w} in its low half and element {@code w + 16} in its high half. A kernel then widens a
 * run with shifts and masks on whole 32-bit words ({@code x << 16} and {@code x & 0xffff0000}
 * for bf16), two vectors of floats per vector of words and no lane-changing instruction, instead
 * of a sign-extending shuffle per vector (docs/KERNELS.md). The last V block of a head dimension
 * that is not a multiple of 32 (w &lt; 32) keeps the natural order.
 *
 * Indices are in elements; multiply by the dtype's byte size for byte offsets. A tile occupies
 * {@code T * d} elements in both segments.
 */
public final class TileLayout {

  /** Keys per K block: 32 lanes of f32 make two 512-bit or four 256-bit vectors. */
  public static final int KEY_BLOCK = 32;

  /** Channels per V block. */
  public static final int CHANNEL_BLOCK = 32;

  /** Elements per half of a paired run: word w holds elements w and w + PAIR_SPAN. */
  public static final int PAIR_SPAN = 16;

  private TileLayout() {}

  /** True when runs of {@code dtype} are stored pair-wise (bf16, f16). */
  public static boolean paired(DType dtype) {
    return dtype == DType.BF16 || dtype == DType.F16;
  }

  /** Position of element {@code i} (0..31) inside a full run of 32: paired or natural. */
  public static int lane(int i, boolean paired) {
    return paired ? 2 * (i % PAIR_SPAN) + i / PAIR_SPAN : i;
  }

  /** Element index of channel {@code c} of key {@code j} inside a K tile of head dimension d. */
  public static int keyIndex(int j, int c, int d, DType dtype) {
    return (j / KEY_BLOCK) * KEY_BLOCK * d + c * KEY_BLOCK + lane(j % KEY_BLOCK, paired(dtype));
  }

  /** Element index of channel {@code c} of key {@code j} inside a V tile of T keys. */
  public static int valueIndex(int j, int c, int d, int tileTokens, DType dtype) {
    int block = c / CHANNEL_BLOCK;
    int width = Math.min(CHANNEL_BLOCK, d - block * CHANNEL_BLOCK);
    int inRow = width == CHANNEL_BLOCK ? lane(c % CHANNEL_BLOCK, paired(dtype)) : c % CHANNEL_BLOCK;
    return block * CHANNEL_BLOCK * tileTokens + j * width + inRow;
  }

  /** Width in channels of V block {@code block}: 32, or what is left of d for the last one. */
  public static int valueBlockWidth(int block, int d) {
    return Math.min(CHANNEL_BLOCK, d - block * CHANNEL_BLOCK);
  }
}
