package hflash.tiles;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Reference score and p.V kernels over q8_0/q4_0 tiles ({@link TileFormat} placement): the spec
 * that {@code VectorQuantKernels} is held bit-equal to. They read the blocks directly, never a
 * dequantized copy: a code is widened to a float and the block's f16 scale is folded in once per
 * block, not once per element.
 *
 * <pre>
 * score(h, j) = sum over blocks b, in order:  fma(blk_b, scale_jb, score)    (score starts at +0)
 *   blk_b     = sum over channels e of the block, in order:  fma(q[h, bB + e], code_jbe, blk)
 * acc[h, c]  += over keys j, in order:  fma(p[h, j] * scale_jb, code_jbe, acc[h, c])    c = bB + e
 * </pre>
 *
 * Here {@code code} is the signed code ({@code q} for q8_0, {@code q - 8} for q4_0): every product
 * scale * code of the dequantized value is exact in f32, so the kernels differ from float64 over
 * the dequantized values only by f32 rounding of the sums (docs/KERNELS.md).
 */
final class ScalarQuantKernels {

  private static final ValueLayout.OfShort I16_LE =
      ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  private ScalarQuantKernels() {}

  /** The scale of a block as a float. */
  static float scale(MemorySegment seg, long at) {
    return Float.float16ToFloat(seg.get(I16_LE, at));
  }

  /** Signed code of element e of a block of len channels, code bytes at codeAt + i * stride. */
  static float code(TileEncoding t, MemorySegment seg, long codeAt, long stride, int len, int e) {
    if (t == TileEncoding.Q8_0) {
      return seg.get(ValueLayout.JAVA_BYTE, codeAt + e * stride);
    }
    int half = (len + 1) / 2;
    int b = seg.get(ValueLayout.JAVA_BYTE, codeAt + (e % half) * stride) & 0xff;
    return (e < half ? b & 15 : b >>> 4) - 8;
  }

  /** {@link TileKernels#scores} for a block dtype. */
  static void scores(float[] q, int qOff, int g, int d, MemorySegment k, long kOff, TileEncoding t, int count,
      float[] s, int sStride) {
    int len = TileFormat.blockLength(d);
    for (int j = 0; j < count; j++) {
      for (int h = 0; h < g; h++) {
        s[h * sStride + j] = score(q, qOff + h * d, d, k, kOff, t, len, j);
      }
    }
  }

  private static float score(float[] q, int qh, int d, MemorySegment k, long kOff, TileEncoding t, int len, int j) {
    float score = 0f;
    for (int b = 0; b < d / len; b++) {
      long codeAt = kOff + TileFormat.keyCodeOffset(t, d, j, b);
      float blk = 0f;
      for (int e = 0; e < len; e++) {
        blk = Math.fma(q[qh + b * len + e], code(t, k, codeAt, TileFormat.GROUP, len, e), blk);
      }
      score = Math.fma(blk, scale(k, kOff + TileFormat.keyScaleOffset(t, d, j, b)), score);
    }
    return score;
  }

  /** {@link TileKernels#accumulate} for a block dtype. */
  static void accumulate(float[] p, int pStride, int g, int d, MemorySegment v, long vOff, TileEncoding t,
      int count, int tileTokens, float[] acc, int accOff) {
    int len = TileFormat.blockLength(d);
    for (int b = 0; b < d / len; b++) {
      accumulateChannels(p, pStride, g, d, v, vOff, t, count, tileTokens, acc, accOff, b, 0, len);
    }
  }

  /**
   * Channels {@code [bB + from, bB + to)} of block column b: every key in order, so a vector
   * kernel may hand any channel range here and keep the bits of {@link #accumulate}.
   */
  static void accumulateChannels(float[] p, int pStride, int g, int d, MemorySegment v, long vOff,
      TileEncoding t, int count, int tileTokens, float[] acc, int accOff, int b, int from, int to) {
    if (from >= to) {
      return;
    }
    int len = TileFormat.blockLength(d);
    for (int j = 0; j < count; j++) {
      long at = vOff + TileFormat.valueBlockOffset(t, d, tileTokens, j, b);
      float scale = scale(v, at);
      for (int h = 0; h < g; h++) {
        float w = p[h * pStride + j] * scale;
        int a = accOff + h * d + b * len;
        for (int e = from; e < to; e++) {
          acc[a + e] = Math.fma(w, code(t, v, at + 2, 1, len, e), acc[a + e]);
        }
      }
    }
  }
}
