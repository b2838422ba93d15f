package hflash.memory;

import java.lang.foreign.MemorySegment;

/**
 * The append path of a {@link KvCache}: every check of a row batch before a byte is written (shape,
 * room, each value against the dtype's range, after the rotation when there is one), then the
 * rotation and the write of each head row into its tile in {@link TileLayout} order (quantized block
 * by block for q8_0/q4_0). Allocation-free; the derived stores are {@link DerivedStores}' job.
 */
final class Appender {

  private final KvCacheLayout layout;
  private final Placement at;
  private final HadamardRotation rotation; // applied to K and V rows before they are stored; null: none
  private final float[][] rotated; // (layers, kvHeads * headDim): one rotated row per layer (appends of
  // different layers may run in parallel), null without a rotation

  Appender(Placement at, HadamardRotation rotation) {
    this.layout = at.layout;
    this.at = at;
    this.rotation = rotation;
    this.rotated = rotation == null ? null : new float[layout.layers()][layout.kvHeads() * layout.headDim()];
  }

  /**
   * Every check of an append after the cache's open state, in the documented order; throws before
   * anything is written.
   */
  void validate(int[] lengths, int layer, int count, float[] k, float[] v, boolean batched) {
    Checks.index("layer", layer, layout.layers());
    if (count < 0) {
      throw new IllegalArgumentException("count must be >= 0: " + count);
    }
    checkShape("k", k, count, batched);
    checkShape("v", v, count, batched);
    int length = lengths[layer];
    int capacity = layout.capacity();
    if (count > capacity - length) {
      if (length == capacity) {
        throw new IllegalStateException(
            "cache is full: capacity " + capacity + " (layer=" + layer + ")");
      }
      throw new IllegalStateException("batch exceeds capacity: " + length + "+" + count + ">"
          + capacity + " (layer=" + layer + ")");
    }
    checkValues("k", k, layer, length);
    checkValues("v", v, layer, length);
    if (rotation != null) { // a rotated value can reach sqrt(d) times the largest input: check what is stored
      checkRotated("k", k, layer, length);
      checkRotated("v", v, layer, length);
    }
  }

  private void checkRotated(String name, float[] x, int layer, int position0) {
    int row = layout.kvHeads() * layout.headDim();
    float[] y = rotated[layer];
    for (int r = 0; r * row < x.length; r++) {
      rotateRow(x, r * row, y);
      float limit = layout.dtype().overflowLimit();
      for (int i = 0; i < row; i++) {
        if (!(Math.abs(y[i]) < limit)) {
          throw new IllegalArgumentException("value out of " + layout.dtype().id() + " range after rotation at "
              + name + "[" + (r * row + i) + "]=" + y[i] + " (layer=" + layer + ", position=" + (position0 + r) + ")");
        }
      }
    }
  }

  /** y = the kvHeads head rows of x[from ..] each rotated. */
  private void rotateRow(float[] x, int from, float[] y) {
    System.arraycopy(x, from, y, 0, y.length);
    for (int h = 0; h < layout.kvHeads(); h++) {
      rotation.rotate(y, h * layout.headDim());
    }
  }

  private void checkShape(String name, float[] x, int count, boolean batched) {
    if (x == null) {
      throw new IllegalArgumentException(name + " must not be null");
    }
    long expected = (long) count * layout.kvHeads() * layout.headDim();
    if (x.length != expected) {
      String what = batched ? "count*kvHeads*headDim" : "kvHeads*headDim";
      throw new IllegalArgumentException(
          name + " length differs from " + what + ": " + x.length + "!=" + expected);
    }
  }

  /**
   * One branch-free pass: the max of |x| is NaN or &ge; limit iff some element is not
   * representable (Math.max propagates NaN). C2 can vectorize this reduction; only a failure pays
   * for the second pass that finds the first bad index for the message.
   */
  private void checkValues(String name, float[] x, int layer, int position0) {
    float limit = layout.dtype().overflowLimit();
    float maxAbs = 0f;
    for (float e : x) {
      maxAbs = Math.max(maxAbs, Math.abs(e));
    }
    if (maxAbs < limit) {
      return;
    }
    int row = layout.kvHeads() * layout.headDim();
    for (int i = 0; i < x.length; i++) {
      if (!(Math.abs(x[i]) < limit)) {
        String problem = Float.isFinite(x[i])
            ? "value out of " + layout.dtype().id() + " range"
            : "non-finite value";
        throw new IllegalArgumentException(problem + " at " + name + "[" + i + "]=" + x[i]
            + " (layer=" + layer + ", position=" + (position0 + i / row) + ")");
      }
    }
    throw new AssertionError("max |x| not representable but no element is: " + maxAbs);
  }

  /** Writes validated rows at positions {@code position0 ..} of the layer (K and V, rotated first if so). */
  void write(int layer, int position0, int count, float[] k, float[] v) {
    if (rotation == null) {
      writeRows(at.keys, true, layer, position0, count, k);
      writeRows(at.values, false, layer, position0, count, v);
    } else {
      float[] y = rotated[layer];
      for (int t = 0; t < count; t++) {
        rotateRow(k, t * y.length, y);
        writeRows(at.keys, true, layer, position0 + t, 1, y);
        rotateRow(v, t * y.length, y);
        writeRows(at.values, false, layer, position0 + t, 1, y);
      }
    }
  }

  /**
   * x is (count, kvHeads, headDim); row (t, h) goes to position position0 + t of (layer, h) in
   * {@link TileLayout} order: a K row is written with a stride of 32 elements (one column of its
   * key block), a V row as one contiguous run per 32-channel block.
   */
  private void writeRows(MemorySegment seg, boolean isKey, int layer, int position0, int count,
      float[] x) {
    int kvHeads = layout.kvHeads();
    int d = layout.headDim();
    int tileTokens = layout.tileTokens();
    if (layout.dtype().quantized()) {
      writeQuantRows(seg, isKey, layer, position0, count, x);
      return;
    }
    long bytes = layout.dtype().bytes();
    boolean paired = TileLayout.paired(layout.dtype());
    int src = 0;
    for (int t = 0; t < count; t++) {
      int pos = position0 + t;
      int j = pos % tileTokens;
      for (int h = 0; h < kvHeads; h++) {
        long tileBase = at.tileOffset(layer, h, pos / tileTokens);
        if (isKey) {
          long at = tileBase + TileLayout.keyIndex(j, 0, d, layout.dtype()) * bytes;
          for (int c = 0; c < d; c++) {
            layout.dtype().write(seg, at + c * TileLayout.KEY_BLOCK * bytes, x[src + c]);
          }
        } else {
          for (int c0 = 0; c0 < d; c0 += TileLayout.CHANNEL_BLOCK) {
            int w = TileLayout.valueBlockWidth(c0 / TileLayout.CHANNEL_BLOCK, d);
            long at = tileBase + TileLayout.valueIndex(j, c0, d, tileTokens, layout.dtype()) * bytes;
            writeRow(seg, at, x, src + c0, w, w == TileLayout.CHANNEL_BLOCK && paired);
          }
        }
        src += d;
      }
    }
  }

  /** The block-dtype twin of {@link #writeRows}: each head row quantized block by block (QuantBlocks). */
  private void writeQuantRows(MemorySegment seg, boolean isKey, int layer, int position0, int count,
      float[] x) {
    DType t = layout.dtype();
    int d = layout.headDim();
    int tileTokens = layout.tileTokens();
    int src = 0;
    for (int r = 0; r < count; r++) {
      int pos = position0 + r;
      for (int h = 0; h < layout.kvHeads(); h++) {
        long tile = at.tileOffset(layer, h, pos / tileTokens);
        if (isKey) {
          QuantBlocks.quantizeKey(t, d, x, src, seg, tile, pos % tileTokens);
        } else {
          QuantBlocks.quantizeValue(t, d, tileTokens, x, src, seg, tile, pos % tileTokens);
        }
        src += d;
      }
    }
  }

  /** n values from x[src] into a V row at dst; {@code paired}: a full 32-wide 16-bit run, pair-wise. */
  private void writeRow(MemorySegment seg, long dst, float[] x, int src, int n, boolean paired) {
    if (paired) {
      for (int c = 0; c < n; c++) {
        short h = layout.dtype() == DType.F16 ? Float.floatToFloat16(x[src + c]) : DType.toBf16(x[src + c]);
        seg.set(DType.I16_LE, dst + 2L * TileLayout.lane(c, true), h);
      }
      return;
    }
    switch (layout.dtype()) {
      // bulk copy: no conversion needed, the JDK copies (and byte-swaps if big-endian) in one go
      case F32 -> MemorySegment.copy(x, src, seg, DType.F32_LE, dst, n);
      case BF16 -> {
        for (int c = 0; c < n; c++) {
          seg.set(DType.I16_LE, dst + 2L * c, DType.toBf16(x[src + c]));
        }
      }
      case F16 -> {
        // Float.floatToFloat16 is an intrinsic (vcvtps2ph on F16C hardware)
        for (int c = 0; c < n; c++) {
          seg.set(DType.I16_LE, dst + 2L * c, Float.floatToFloat16(x[src + c]));
        }
      }
      case Q8_0, Q4_0 -> throw new AssertionError("block dtypes are written by writeQuantRows");
    }
  }
}
