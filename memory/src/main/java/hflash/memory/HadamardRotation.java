package hflash.memory;

import java.util.SplittableRandom;

/**
 * A fixed orthonormal rotation of one head row: {@code R x = (1 / sqrt(d)) W (s * x)}, where s is a
 * seeded vector of random signs and W the d x d Walsh-Hadamard matrix (entries +-1, computed by the
 * fast transform in {@code d log2 d} additions). R is orthonormal, so {@code (R q) . (R k) = q . k}
 * and {@code R^T (sum_j p_j R v_j) = sum_j p_j v_j}: rotating K and V before they are stored and q
 * before it is scored, then rotating the output back, changes no attention result in exact
 * arithmetic. What it changes is what a block quantizer sees: one large channel (an outlier) is
 * spread over all d channels, so a block's scale, set by its largest magnitude, no longer drowns
 * the other channels (QuaRot, arXiv:2404.00456; llama.cpp's rotated KV quantization).
 *
 * <p>d must be a power of two. {@link #rotate} and {@link #rotateBack} work in place and allocate
 * nothing; the f32 arithmetic adds about {@code log2(d)} roundings per element, far below the
 * error of any quantized dtype. Immutable and thread-safe.
 */
public final class HadamardRotation {

  private final int d;
  private final long seed;
  private final float[] signs; // (d): +-1
  private final float norm; // 1 / sqrt(d)

  private HadamardRotation(int d, long seed) {
    this.d = d;
    this.seed = seed;
    this.signs = new float[d];
    SplittableRandom r = new SplittableRandom(seed);
    for (int c = 0; c < d; c++) {
      signs[c] = r.nextBoolean() ? 1f : -1f;
    }
    this.norm = (float) (1 / Math.sqrt(d));
  }

  /**
   * The rotation of head dimension d with the signs drawn from {@code seed}.
   *
   * @throws IllegalArgumentException if d is not a positive power of two
   */
  public static HadamardRotation of(int d, long seed) {
    if (d <= 0 || (d & (d - 1)) != 0) {
      throw new IllegalArgumentException("hadamard rotation needs a power-of-two head dim: " + d);
    }
    return new HadamardRotation(d, seed);
  }

  /** The default seed of {@code --kv-rotation hadamard}. */
  public static final long DEFAULT_SEED = 0x5eed_d1ceL;

  /** Head dimension d. */
  public int headDim() {
    return d;
  }

  /** The seed of the signs. */
  public long seed() {
    return seed;
  }

  /** {@code x[off .. off + d) = R x[off .. off + d)}. */
  public void rotate(float[] x, int off) {
    for (int c = 0; c < d; c++) {
      x[off + c] *= signs[c];
    }
    transform(x, off);
    for (int c = 0; c < d; c++) {
      x[off + c] *= norm;
    }
  }

  /** {@code x[off .. off + d) = R^T x[off .. off + d)}, the inverse of {@link #rotate}. */
  public void rotateBack(float[] x, int off) {
    transform(x, off);
    for (int c = 0; c < d; c++) {
      x[off + c] *= norm * signs[c];
    }
  }

  /** In-place unnormalized fast Walsh-Hadamard transform (butterflies of span 1, 2, 4, ...). */
  private void transform(float[] x, int off) {
    for (int h = 1; h < d; h *= 2) {
      for (int i = 0; i < d; i += 2 * h) {
        for (int j = off + i; j < off + i + h; j++) {
          float a = x[j], b = x[j + h];
          x[j] = a + b;
          x[j + h] = a - b;
        }
      }
    }
  }

  /** {@link #rotate} in double (for float64 reference computations). */
  public void rotate(double[] x, int off) {
    for (int c = 0; c < d; c++) {
      x[off + c] *= signs[c];
    }
    transform(x, off);
    for (int c = 0; c < d; c++) {
      x[off + c] /= Math.sqrt(d);
    }
  }

  /** {@link #rotateBack} in double (for float64 reference computations). */
  public void rotateBack(double[] x, int off) {
    transform(x, off);
    for (int c = 0; c < d; c++) {
      x[off + c] *= signs[c] / Math.sqrt(d);
    }
  }

  private void transform(double[] x, int off) {
    for (int h = 1; h < d; h *= 2) {
      for (int i = 0; i < d; i += 2 * h) {
        for (int j = off + i; j < off + i + h; j++) {
          double a = x[j], b = x[j + h];
          x[j] = a + b;
          x[j + h] = a - b;
        }
      }
    }
  }

  @Override
  public String toString() {
    return "HadamardRotation[d=" + d + ", seed=" + seed + "]";
  }
}
