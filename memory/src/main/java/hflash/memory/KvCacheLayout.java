package hflash.memory;

import java.lang.foreign.MemorySegment;

/**
 * Shape and byte layout of a {@link KvCache}: a value object, it owns no memory.
 *
 * <p>K and V are two segments of the same size. Each (layer, kvHead) owns a contiguous run of
 * {@code paddedCapacity()} positions, split into tiles of {@code tileTokens} positions; a tile is
 * one contiguous run of {@code tileTokens * rowBytes()} bytes in each segment. Inside a tile the
 * elements follow {@link TileLayout} (K: 32-key blocks, column-major; V: 32-channel blocks,
 * row-major) so the kernels sweep every tile front to back. Byte offsets:
 *
 * <pre>
 *   tileOffset(layer, kvHead, t) = (layer * kvHeads + kvHead) * headStride() + t * tileTokens * rowBytes()
 *   keyOffset(layer, kvHead, pos, c)   = tileOffset(.., pos / T) + TileLayout.keyIndex(pos % T, c, d, dtype) * bytes
 *   valueOffset(layer, kvHead, pos, c) = tileOffset(.., pos / T) + TileLayout.valueIndex(pos % T, c, d, T, dtype) * bytes
 *   rowBytes()   = headDim * dtype.bytes()
 *   headStride() = paddedCapacity() * rowBytes(),  paddedCapacity() = ceil(capacity / T) * T
 * </pre>
 *
 * @param layers number of transformer layers, &gt; 0
 * @param kvHeads key/value heads per layer, &gt; 0
 * @param headDim elements per head row, &gt; 0
 * @param capacity positions per (layer, kvHead), &gt; 0
 * @param dtype element type, non-null
 * @param tileTokens positions per tile, a positive multiple of {@link TileLayout#KEY_BLOCK} (32),
 *     with {@code tileTokens * headDim <= Integer.MAX_VALUE} (tile indices are ints)
 */
public record KvCacheLayout(
    int layers, int kvHeads, int headDim, int capacity, DType dtype, int tileTokens) {

  /** Validates every component and that both segments' sizes fit in a {@code long}. */
  public KvCacheLayout {
    Checks.positive("layers", layers);
    Checks.positive("kvHeads", kvHeads);
    Checks.positive("headDim", headDim);
    Checks.positive("capacity", capacity);
    if (dtype == null) {
      throw new IllegalArgumentException("dtype must not be null");
    }
    Checks.positive("tileTokens", tileTokens);
    if (tileTokens % TileLayout.KEY_BLOCK != 0) {
      throw new IllegalArgumentException(
          "tileTokens must be a multiple of " + TileLayout.KEY_BLOCK + ": " + tileTokens);
    }
    try {
      long row = dtype.rowBytes(headDim);
      long head = Math.multiplyExact(row, ((long) capacity + tileTokens - 1) / tileTokens * tileTokens);
      long total = Math.multiplyExact(Math.multiplyExact((long) layers, kvHeads), head);
      Math.multiplyExact(total, 2L); // K + V, as reported by KvCache.bytesReserved()
    } catch (ArithmeticException e) {
      throw new IllegalArgumentException(
          "layout size overflows a long: layers=" + layers + ", kvHeads=" + kvHeads
              + ", headDim=" + headDim + ", capacity=" + capacity + ", dtype=" + dtype.id(), e);
    }
    if ((long) tileTokens * headDim > Integer.MAX_VALUE) { // TileLayout indexes a tile with ints
      throw new IllegalArgumentException(
          "tile size overflows an int: tileTokens*headDim=" + tileTokens + "*" + headDim);
    }
  }

  /**
   * Bytes of one head row (one position of one kvHead): {@code headDim * dtype.bytes()}, or the
   * row's blocks for q8_0/q4_0 ({@link QuantBlocks#rowBytes}).
   */
  public long rowBytes() {
    return dtype.rowBytes(headDim);
  }

  /** Capacity rounded up to whole tiles: the positions each (layer, kvHead) reserves. */
  public long paddedCapacity() {
    return ((long) capacity + tileTokens - 1) / tileTokens * tileTokens;
  }

  /** Bytes between consecutive (layer, kvHead) blocks: {@code paddedCapacity() * rowBytes()}. */
  public long headStride() {
    return paddedCapacity() * rowBytes();
  }

  /**
   * Byte offset of tile {@code tile} of {@code (layer, kvHead)}, the same in the K and the V
   * segment; the tile spans {@code tileTokens * rowBytes()} bytes.
   *
   * @throws IndexOutOfBoundsException if layer, kvHead or tile is outside its range
   */
  public long tileOffset(int layer, int kvHead, int tile) {
    Checks.index("layer", layer, layers);
    Checks.index("kvHead", kvHead, kvHeads);
    Checks.index("tile", tile, (int) (paddedCapacity() / tileTokens));
    return ((long) layer * kvHeads + kvHead) * headStride() + (long) tile * tileTokens * rowBytes();
  }

  /**
   * Byte offset in the K segment of channel {@code c} of position {@code pos}.
   *
   * @throws UnsupportedOperationException for the block dtypes (use {@link #readKey})
   */
  public long keyOffset(int layer, int kvHead, int pos, int c) {
    dtype.bytes();
    Checks.index("position", pos, capacity);
    Checks.index("channel", c, headDim);
    return tileOffset(layer, kvHead, pos / tileTokens)
        + (long) TileLayout.keyIndex(pos % tileTokens, c, headDim, dtype) * dtype.bytes();
  }

  /**
   * Byte offset in the V segment of channel {@code c} of position {@code pos}.
   *
   * @throws UnsupportedOperationException for the block dtypes (use {@link #readValue})
   */
  public long valueOffset(int layer, int kvHead, int pos, int c) {
    dtype.bytes();
    Checks.index("position", pos, capacity);
    Checks.index("channel", c, headDim);
    return tileOffset(layer, kvHead, pos / tileTokens)
        + (long) TileLayout.valueIndex(pos % tileTokens, c, headDim, tileTokens, dtype) * dtype.bytes();
  }

  /**
   * Channel {@code c} of the key at {@code pos} in the K segment {@code keys}, as stored (the
   * dequantized value for q8_0/q4_0). A slow path for summaries and tests; no length check.
   */
  public float readKey(MemorySegment keys, int layer, int kvHead, int pos, int c) {
    if (!dtype.quantized()) {
      return dtype.read(keys, keyOffset(layer, kvHead, pos, c));
    }
    Checks.index("position", pos, capacity);
    Checks.index("channel", c, headDim);
    return QuantBlocks.key(dtype, headDim, keys, tileOffset(layer, kvHead, pos / tileTokens),
        pos % tileTokens, c);
  }

  /** The V twin of {@link #readKey}. */
  public float readValue(MemorySegment values, int layer, int kvHead, int pos, int c) {
    if (!dtype.quantized()) {
      return dtype.read(values, valueOffset(layer, kvHead, pos, c));
    }
    Checks.index("position", pos, capacity);
    Checks.index("channel", c, headDim);
    return QuantBlocks.value(dtype, headDim, tileTokens, values,
        tileOffset(layer, kvHead, pos / tileTokens), pos % tileTokens, c);
  }

  /** Size of each of the K and the V segment: {@code layers * kvHeads * headStride()}. */
  public long segmentBytes() {
    return (long) layers * kvHeads * headStride();
  }

  /** Bytes one token takes over all layers, K plus V: {@code 2 * layers * kvHeads * rowBytes()}. */
  public long bytesPerToken() {
    return 2L * layers * kvHeads * rowBytes();
  }

  /**
   * Number of tiles covering {@code length} positions: {@code ceil(length / tileTokens)}.
   *
   * @throws IllegalArgumentException if length is outside {@code [0, capacity]}
   */
  public int tileCount(int length) {
    if (length < 0 || length > capacity) {
      throw new IllegalArgumentException(
          "length out of range [0, " + capacity + "]: " + length);
    }
    return (int) (((long) length + tileTokens - 1) / tileTokens);
  }

  @Override
  public String toString() {
    return "KvCacheLayout[layers=" + layers + ", kvHeads=" + kvHeads + ", headDim=" + headDim
        + ", capacity=" + capacity + ", dtype=" + dtype.id()
        + ", tileTokens=" + tileTokens + "]";
  }
}
