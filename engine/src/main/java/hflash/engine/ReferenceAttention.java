package hflash.engine;

import hflash.memory.HadamardRotation;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;

/**
 * The float64 oracle: naive three-pass softmax attention (scores, max, normalised sum), as
 * llama3.java writes it, computed entirely in double. Slow and allocating by design; tests,
 * {@code eval} and {@code bench --json} compare the engine against it.
 */
public final class ReferenceAttention {

  private ReferenceAttention() {}

  /**
   * Attention of every query head over the first {@code keys} positions of {@code layer}, using
   * the values as the cache stores them (so a 16-bit cache's rounding is part of the input).
   *
   * @return (numHeads, headDim) row-major
   */
  public static double[] decode(KvCache cache, int layer, float[] q, int numHeads, int keys,
      double scale) {
    KvCacheLayout lay = cache.layout();
    int d = lay.headDim();
    int kvHeads = lay.kvHeads();
    float[] k = new float[kvHeads * keys * d];
    float[] v = new float[kvHeads * keys * d];
    for (int kh = 0; kh < kvHeads; kh++) {
      for (int j = 0; j < keys; j++) {
        for (int c = 0; c < d; c++) {
          int i = (kh * keys + j) * d + c;
          k[i] = cache.key(layer, kh, j, c);
          v[i] = cache.value(layer, kh, j, c);
        }
      }
    }
    HadamardRotation rotation = cache.rotation();
    if (rotation == null) {
      return decode(q, k, v, numHeads, kvHeads, d, keys, scale);
    }
    // the cache holds R k and R v: score R q against them, rotate the output back, all in double
    double[] qr = new double[q.length];
    for (int i = 0; i < q.length; i++) {
      qr[i] = q[i];
    }
    for (int h = 0; h < numHeads; h++) {
      rotation.rotate(qr, h * d);
    }
    double[] out = decode(qr, k, v, numHeads, kvHeads, d, keys, scale);
    for (int h = 0; h < numHeads; h++) {
      rotation.rotateBack(out, h * d);
    }
    return out;
  }

  /**
   * Attention over raw arrays.
   *
   * @param q (numHeads, headDim)
   * @param k (kvHeads, n, headDim)
   * @param v (kvHeads, n, headDim)
   * @return (numHeads, headDim); zeros for n == 0
   */
  public static double[] decode(float[] q, float[] k, float[] v, int numHeads, int kvHeads,
      int headDim, int n, double scale) {
    double[] qd = new double[q.length];
    for (int i = 0; i < q.length; i++) {
      qd[i] = q[i];
    }
    return decode(qd, k, v, numHeads, kvHeads, headDim, n, scale);
  }

  private static double[] decode(double[] q, float[] k, float[] v, int numHeads, int kvHeads,
      int headDim, int n, double scale) {
    if (numHeads % kvHeads != 0) {
      throw new IllegalArgumentException("numHeads must be a multiple of numKvHeads: "
          + numHeads + " % " + kvHeads + " != 0");
    }
    int g = numHeads / kvHeads;
    double[] out = new double[numHeads * headDim];
    double[] s = new double[n];
    for (int h = 0; h < numHeads; h++) {
      int kh = h / g;
      double max = Double.NEGATIVE_INFINITY;
      for (int j = 0; j < n; j++) {
        double dot = 0;
        for (int c = 0; c < headDim; c++) {
          dot += q[h * headDim + c] * k[(kh * n + j) * headDim + c];
        }
        s[j] = scale * dot;
        max = Math.max(max, s[j]);
      }
      double sum = 0;
      for (int j = 0; j < n; j++) {
        s[j] = Math.exp(s[j] - max);
        sum += s[j];
      }
      for (int j = 0; j < n; j++) {
        double p = s[j] / sum;
        for (int c = 0; c < headDim; c++) {
          out[h * headDim + c] += p * v[(kh * n + j) * headDim + c];
        }
      }
    }
    return out;
  }

  /** {@code ||out - ref|| / ||ref||} in the 2-norm; 0 when both are zero, +inf when only ref is. */
  public static double relError(float[] out, double[] ref) {
    if (out.length != ref.length) {
      throw new IllegalArgumentException("lengths differ: " + out.length + "!=" + ref.length);
    }
    double num = 0, den = 0;
    for (int i = 0; i < ref.length; i++) {
      double e = out[i] - ref[i];
      num += e * e;
      den += ref[i] * ref[i];
    }
    if (den == 0) {
      return num == 0 ? 0 : Double.POSITIVE_INFINITY;
    }
    return Math.sqrt(num / den);
  }
}
