package hflash.engine;

import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.Random;

/** Seeded inputs and float32 baselines shared by the engine tests. */
final class TestData {

  private TestData() {}

  /** Appends {@code n} positions of Gaussian keys and values to {@code layer}. */
  static void fill(KvCache cache, int layer, int n, Random r) {
    KvCacheLayout lay = cache.layout();
    int row = lay.kvHeads() * lay.headDim();
    int batch = 512;
    for (int p = 0; p < n; p += batch) {
      int count = Math.min(batch, n - p);
      float[] k = new float[count * row];
      float[] v = new float[count * row];
      for (int i = 0; i < k.length; i++) {
        k[i] = (float) r.nextGaussian();
        v[i] = (float) r.nextGaussian();
      }
      cache.append(layer, count, k, v);
    }
  }

  /**
   * A query whose scores against unit-Gaussian keys have standard deviation about
   * {@code magnitude} (so the largest of a few thousand reach several times that).
   */
  static float[] queryWithScoreMagnitude(int numHeads, int d, float magnitude, Random r) {
    float[] q = new float[numHeads * d];
    // s = q.k / sqrt(d) with k ~ N(0, I): std(s) = |q| / sqrt(d), so |q| = magnitude * sqrt(d)
    for (int h = 0; h < numHeads; h++) {
      double sq = 0;
      for (int c = 0; c < d; c++) {
        q[h * d + c] = (float) r.nextGaussian();
        sq += q[h * d + c] * q[h * d + c];
      }
      double f = magnitude * Math.sqrt(d) / Math.sqrt(sq);
      for (int c = 0; c < d; c++) {
        q[h * d + c] = (float) (q[h * d + c] * f);
      }
    }
    return q;
  }

  /** Naive three-pass attention in float32 over the stored values: the tolerance baseline. */
  static float[] naiveFloat(KvCache cache, int layer, float[] q, int numHeads, int n, float scale) {
    KvCacheLayout lay = cache.layout();
    int d = lay.headDim();
    int g = numHeads / lay.kvHeads();
    float[] out = new float[numHeads * d];
    float[] s = new float[n];
    for (int h = 0; h < numHeads; h++) {
      int kh = h / g;
      float max = Float.NEGATIVE_INFINITY;
      for (int j = 0; j < n; j++) {
        float dot = 0;
        for (int c = 0; c < d; c++) {
          dot += q[h * d + c] * cache.key(layer, kh, j, c);
        }
        s[j] = scale * dot;
        max = Math.max(max, s[j]);
      }
      float sum = 0;
      for (int j = 0; j < n; j++) {
        s[j] = (float) Math.exp(s[j] - max);
        sum += s[j];
      }
      for (int j = 0; j < n; j++) {
        float p = s[j] / sum;
        for (int c = 0; c < d; c++) {
          out[h * d + c] += p * cache.value(layer, kh, j, c);
        }
      }
    }
    return out;
  }

  /** Largest |score| over the heads and the first n keys, in double. */
  static double maxAbsScore(KvCache cache, int layer, float[] q, int numHeads, int n, double scale) {
    KvCacheLayout lay = cache.layout();
    int d = lay.headDim();
    int g = numHeads / lay.kvHeads();
    double m = 0;
    for (int h = 0; h < numHeads; h++) {
      for (int j = 0; j < n; j++) {
        double dot = 0;
        for (int c = 0; c < d; c++) {
          dot += (double) q[h * d + c] * cache.key(layer, h / g, j, c);
        }
        m = Math.max(m, Math.abs(scale * dot));
      }
    }
    return m;
  }

  static double maxAbsError(float[] out, double[] ref) {
    double m = 0;
    for (int i = 0; i < ref.length; i++) {
      m = Math.max(m, Math.abs(out[i] - ref[i]));
    }
    return m;
  }

  static double maxAbs(double[] ref) {
    double m = 0;
    for (double x : ref) {
      m = Math.max(m, Math.abs(x));
    }
    return m;
  }

  /**
   * A prefill row against its decode call. With the Java kernels: the same bits (prefill is the
   * decode computation over blocks of rows). With a native decode kernel, which only decode uses,
   * the two paths round differently (FMA order, the kernel's exp polynomial), so within float32
   * rounding: every element within {@code 4e-6 * max|expected|} (about 64 ulps of the row's largest
   * value; each path is separately held to {@code 3e-6} relative error against float64).
   */
  static void assertDecodeBits(hflash.tiles.TileKernels kernels, float[] expected, float[] actual, String what) {
    if (kernels.nativeVariant() == null) {
      org.junit.jupiter.api.Assertions.assertArrayEquals(expected, actual, what);
      return;
    }
    double max = 0;
    for (float x : expected) {
      max = Math.max(max, Math.abs(x));
    }
    for (int i = 0; i < expected.length; i++) {
      double diff = Math.abs(expected[i] - actual[i]);
      org.junit.jupiter.api.Assertions.assertTrue(diff <= 4e-6 * max,
          what + " [" + i + "]: " + expected[i] + " vs " + actual[i] + " (native " + kernels.nativeVariant() + ")");
    }
  }
}
