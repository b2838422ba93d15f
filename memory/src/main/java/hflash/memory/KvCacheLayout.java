package hflash.memory;

/**
 * Shape and byte layout of a {@link KvCache}: a value object, it owns no memory.
 *
 * <p>K is one segment of shape {@code (layers, kvHeads, capacity, headDim)}, row-major,
 * little-endian, {@code dtype} elements; V is a second segment with the same shape. The positions
 * of one (layer, kvHead) are contiguous, so a tile of {@code tileTokens} keys is one contiguous
 * run of {@code tileTokens * rowBytes()} bytes. Byte offset of element {@code c} of position
 * {@code pos}:
 *
 * <pre>
 *   offset(layer, kvHead, pos) + c * dtype.bytes()
 *   offset(layer, kvHead, pos) = (layer * kvHeads + kvHead) * headStride() + pos * rowBytes()
 *   rowBytes()   = headDim * dtype.bytes()
 *   headStride() = capacity * rowBytes()
 * </pre>
 *
 * @param layers number of transformer layers, &gt; 0
 * @param kvHeads key/value heads per layer, &gt; 0
 * @param headDim elements per head row, &gt; 0
 * @param capacity positions per (layer, kvHead), &gt; 0
 * @param dtype element type, non-null
 * @param tileTokens positions per tile view, &gt; 0 (may exceed capacity: then one tile)
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
    try {
      long row = Math.multiplyExact((long) headDim, dtype.bytes());
      long head = Math.multiplyExact(row, capacity);
      long total = Math.multiplyExact(Math.multiplyExact((long) layers, kvHeads), head);
      Math.multiplyExact(total, 2L); // K + V, as reported by KvCache.bytesReserved()
    } catch (ArithmeticException e) {
      throw new IllegalArgumentException(
          "layout size overflows a long: layers=" + layers + ", kvHeads=" + kvHeads
              + ", headDim=" + headDim + ", capacity=" + capacity + ", dtype=" + dtype.id(), e);
    }
  }

  /** Bytes of one head row (one position of one kvHead): {@code headDim * dtype.bytes()}. */
  public long rowBytes() {
    return (long) headDim * dtype.bytes();
  }

  /** Bytes between consecutive (layer, kvHead) blocks: {@code capacity * rowBytes()}. */
  public long headStride() {
    return capacity * rowBytes();
  }

  /**
   * Byte offset of row {@code pos} of {@code (layer, kvHead)}, the same in the K and the V segment.
   *
   * @throws IndexOutOfBoundsException if layer, kvHead or pos is outside its range; pos is checked
   *     against capacity, not against any cache's current length
   */
  public long offset(int layer, int kvHead, int pos) {
    Checks.index("layer", layer, layers);
    Checks.index("kvHead", kvHead, kvHeads);
    Checks.index("position", pos, capacity);
    return ((long) layer * kvHeads + kvHead) * headStride() + pos * rowBytes();
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
