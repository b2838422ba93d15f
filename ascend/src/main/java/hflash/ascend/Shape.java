package hflash.ascend;

import hflash.memory.DType;

/**
 * One decode step of one layer: {@code heads} query heads over {@code context} cached keys of
 * {@code kvHeads} KV heads of {@code dim} elements stored as {@code dtype} (batch 1).
 */
public record Shape(int context, int heads, int kvHeads, int dim, DType dtype) {

  /** Validates the shape. */
  public Shape {
    if (context < 1 || heads < 1 || kvHeads < 1 || dim < 1) {
      throw new IllegalArgumentException("context, heads, kvHeads and dim must be >= 1: " + context
          + ", " + heads + ", " + kvHeads + ", " + dim);
    }
    if (heads % kvHeads != 0) {
      throw new IllegalArgumentException("heads must be a multiple of kvHeads: " + heads + " % "
          + kvHeads + " != 0");
    }
    if (dtype == null) {
      throw new IllegalArgumentException("dtype must not be null");
    }
  }

  /** Query heads per KV head (GQA group). */
  public int group() {
    return heads / kvHeads;
  }

  /** Bytes of one key (or value) row. */
  public long rowBytes() {
    return (long) dim * dtype.bytes();
  }

  /** K plus V bytes of the whole context: what an exact call must read. */
  public long kvBytes() {
    return 2L * context * kvHeads * rowBytes();
  }
}
