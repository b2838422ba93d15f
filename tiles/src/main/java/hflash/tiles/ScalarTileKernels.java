package hflash.tiles;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Reference kernels: plain loops written for clarity, the specification every vector kernel is
 * tested against. Elements are decoded one at a time with {@link TileEncoding#read}.
 */
public final class ScalarTileKernels implements TileKernels {

  private static final ValueLayout.OfFloat F32_LE =
      ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  @Override
  public String name() {
    return "scalar";
  }

  @Override
  public int bitSize() {
    return 0;
  }

  @Override
  public void scores(float[] q, int qOff, int g, int d, MemorySegment k, long kOff, TileEncoding dtype,
      int count, float[] s, int sStride) {
    assert g > 0 && d > 0 && count >= 0 && sStride >= count;
    if (dtype.quantized()) {
      ScalarQuantKernels.scores(q, qOff, g, d, k, kOff, dtype, count, s, sStride);
      return;
    }
    int bytes = dtype.bytes();
    for (int j = 0; j < count; j++) {
      for (int h = 0; h < g; h++) {
        int qh = qOff + h * d;
        float dot = 0f;
        for (int c = 0; c < d; c++) {
          dot = Math.fma(q[qh + c], dtype.read(k, kOff + (long) TileFormat.keyIndex(j, c, d, dtype) * bytes), dot);
        }
        s[h * sStride + j] = dot;
      }
    }
  }

  @Override
  public float max(float[] x, int off, int n) {
    float m = Float.NEGATIVE_INFINITY;
    for (int i = off; i < off + n; i++) {
      m = Math.max(m, x[i]);
    }
    return m;
  }

  @Override
  public float expSum(float[] x, int off, int n, float m) {
    float sum = 0f;
    for (int i = off; i < off + n; i++) {
      x[i] = (float) Math.exp(x[i] - m);
      sum += x[i];
    }
    return sum;
  }

  @Override
  public void accumulate(float[] p, int pStride, int g, int d, MemorySegment v, long vOff,
      TileEncoding dtype, int count, int tileTokens, float[] acc, int accOff) {
    assert g > 0 && d > 0 && count >= 0 && count <= tileTokens && pStride >= count;
    if (dtype.quantized()) {
      ScalarQuantKernels.accumulate(p, pStride, g, d, v, vOff, dtype, count, tileTokens, acc, accOff);
      return;
    }
    int bytes = dtype.bytes();
    for (int j = 0; j < count; j++) {
      for (int c = 0; c < d; c++) {
        float vc = dtype.read(v, vOff + (long) TileFormat.valueIndex(j, c, d, tileTokens, dtype) * bytes);
        for (int h = 0; h < g; h++) {
          int a = accOff + h * d + c;
          acc[a] = Math.fma(p[h * pStride + j], vc, acc[a]);
        }
      }
    }
  }

  @Override
  public void scale(float[] x, int off, int n, float a) {
    for (int i = off; i < off + n; i++) {
      x[i] *= a;
    }
  }

  @Override
  public void nodeBounds(float[] q, int qOff, int d, MemorySegment rec, long box, long ball,
      TileEncoding dtype, float[] out, int o) {
    out[o] = out[o + 1] = out[o + 2] = 0f;
    addNodeBounds(q, qOff, d, rec, box, ball, dtype.summaryEncoding(), 0, out, o);
  }

  /** Adds channels [from, d) of the three bound terms into out[o..o+2] (shared with the vector tail). */
  static void addNodeBounds(float[] q, int qOff, int d, MemorySegment rec, long boxOff, long ball,
      TileEncoding dtype, int from, float[] out, int o) {
    float box = out[o], magnitude = out[o + 1], dot = out[o + 2];
    int b = dtype.bytes();
    for (int c = from; c < d; c++) {
      float qc = q[qOff + c];
      float lo = dtype.read(rec, boxOff + (long) c * b);
      float hi = dtype.read(rec, boxOff + (long) (d + c) * b);
      float ce = rec.get(F32_LE, ball + (long) c * Float.BYTES);
      box += Math.max(qc * lo, qc * hi);
      magnitude += Math.abs(qc) * Math.max(Math.abs(lo), Math.abs(hi));
      dot = Math.fma(qc, ce, dot);
    }
    out[o] = box;
    out[o + 1] = magnitude;
    out[o + 2] = dot;
  }

  @Override
  public void rowScores(float[] q, int qOff, int g, int d, MemorySegment rows, long off,
      long rowStrideBytes, int count, float[] s, int sStride) {
    for (int j = 0; j < count; j++) {
      long row = off + j * rowStrideBytes;
      for (int h = 0; h < g; h++) {
        float dot = 0f;
        for (int c = 0; c < d; c++) {
          dot = Math.fma(q[qOff + h * d + c], rows.get(F32_LE, row + (long) c * Float.BYTES), dot);
        }
        s[h * sStride + j] = dot;
      }
    }
  }
}
