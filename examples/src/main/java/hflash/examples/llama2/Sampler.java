package hflash.examples.llama2;

/**
 * Picks the next token from logits: argmax at temperature 0, otherwise a draw from softmax(logits / temperature)
 * with {@code run.c}'s xorshift64* generator, so a seed reproduces a run exactly. Not thread-safe (holds the RNG
 * state); one sampler per generation.
 */
public final class Sampler {

  /** Substitute for seed 0, which would leave xorshift stuck at 0 forever. */
  static final long ZERO_SEED_REPLACEMENT = 0x9E3779B97F4A7C15L;

  private final float temperature;
  private long state; // xorshift64* state, never 0

  /**
   * @param temperature 0 for greedy argmax, else the softmax temperature (finite, &gt; 0)
   * @param seed any value; 0 is replaced by a fixed non-zero constant
   */
  public Sampler(float temperature, long seed) {
    if (!(temperature >= 0f) || Float.isInfinite(temperature)) {
      throw new IllegalArgumentException("temperature must be finite and >= 0: " + temperature);
    }
    this.temperature = temperature;
    this.state = seed == 0 ? ZERO_SEED_REPLACEMENT : seed;
  }

  /**
   * Returns the next token id. At temperature &gt; 0 this overwrites {@code logits} with probabilities (the caller's
   * scratch buffer; no allocation).
   *
   * @param logits (vocab) raw scores, overwritten when sampling
   */
  public int sample(float[] logits) {
    if (temperature == 0f) {
      return argmax(logits);
    }
    for (int i = 0; i < logits.length; i++) {
      logits[i] /= temperature;
    }
    softmax(logits);
    float coin = nextFloat();
    float cdf = 0f;
    for (int i = 0; i < logits.length; i++) {
      cdf += logits[i];
      if (coin < cdf) {
        return i;
      }
    }
    return logits.length - 1; // rounding: cdf ended just below coin
  }

  /** Index of the largest value; the first one on ties (as run.c). */
  static int argmax(float[] v) {
    int best = 0;
    for (int i = 1; i < v.length; i++) {
      if (v[i] > v[best]) {
        best = i;
      }
    }
    return best;
  }

  /** In-place softmax, max-subtracted for stability. */
  static void softmax(float[] x) {
    float max = x[0];
    for (float v : x) {
      max = Math.max(max, v);
    }
    float sum = 0f;
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) Math.exp(x[i] - max);
      sum += x[i];
    }
    for (int i = 0; i < x.length; i++) {
      x[i] /= sum;
    }
  }

  /** run.c random_u32: xorshift64* keeping the high 32 bits. */
  int nextInt() {
    state ^= state >>> 12;
    state ^= state << 25;
    state ^= state >>> 27;
    return (int) ((state * 0x2545F4914F6CDD1DL) >>> 32);
  }

  /** run.c random_f32: uniform in [0, 1) from the top 24 bits. */
  float nextFloat() {
    return (nextInt() >>> 8) / 16777216.0f;
  }
}
