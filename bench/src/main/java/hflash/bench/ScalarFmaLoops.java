package hflash.bench;

import java.util.List;

/**
 * The compute probe's loops for the scalar kernels: 8 and 12 independent float accumulators
 * updated with {@link Math#fma} (a scalar FMA instruction where the CPU has one), the arithmetic
 * ceiling of {@link ScalarTileKernels}.
 */
final class ScalarFmaLoops {

  private static final int INNER = 1024;

  private ScalarFmaLoops() {}

  static List<FmaLoop> all() {
    return List.of(loop(8), loop(12));
  }

  private static FmaLoop loop(int accumulators) {
    return new FmaLoop() {
      @Override
      public String name() {
        return "scalar-x" + accumulators;
      }

      @Override
      public long fmasPerIteration() {
        return accumulators;
      }

      @Override
      public float run(long iterations, float seed) {
        return accumulators == 8 ? run8(iterations, seed) : run12(iterations, seed);
      }
    };
  }

  private static float run8(long iterations, float seed) {
    float x = 0.999999f, y = 1e-7f;
    float a0 = seed, a1 = 2 * seed, a2 = 3 * seed, a3 = 4 * seed;
    float a4 = 5 * seed, a5 = 6 * seed, a6 = 7 * seed, a7 = 8 * seed;
    for (long n = 0; n < iterations; n += INNER) {
      int m = (int) Math.min(INNER, iterations - n);
      for (int i = 0; i < m; i++) {
        a0 = Math.fma(a0, x, y);
        a1 = Math.fma(a1, x, y);
        a2 = Math.fma(a2, x, y);
        a3 = Math.fma(a3, x, y);
        a4 = Math.fma(a4, x, y);
        a5 = Math.fma(a5, x, y);
        a6 = Math.fma(a6, x, y);
        a7 = Math.fma(a7, x, y);
      }
    }
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
  }

  private static float run12(long iterations, float seed) {
    float x = 0.999999f, y = 1e-7f;
    float a0 = seed, a1 = 2 * seed, a2 = 3 * seed, a3 = 4 * seed;
    float a4 = 5 * seed, a5 = 6 * seed, a6 = 7 * seed, a7 = 8 * seed;
    float a8 = 9 * seed, a9 = 10 * seed, a10 = 11 * seed, a11 = 12 * seed;
    for (long n = 0; n < iterations; n += INNER) {
      int m = (int) Math.min(INNER, iterations - n);
      for (int i = 0; i < m; i++) {
        a0 = Math.fma(a0, x, y);
        a1 = Math.fma(a1, x, y);
        a2 = Math.fma(a2, x, y);
        a3 = Math.fma(a3, x, y);
        a4 = Math.fma(a4, x, y);
        a5 = Math.fma(a5, x, y);
        a6 = Math.fma(a6, x, y);
        a7 = Math.fma(a7, x, y);
        a8 = Math.fma(a8, x, y);
        a9 = Math.fma(a9, x, y);
        a10 = Math.fma(a10, x, y);
        a11 = Math.fma(a11, x, y);
      }
    }
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  }
}
