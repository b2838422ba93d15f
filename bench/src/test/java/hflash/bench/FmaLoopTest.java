package hflash.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.tiles.TileKernels;
import hflash.tiles.TileKernelsProvider;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The compute probe's loops do the work they claim: {@code run} returns exactly the sum a plain
 * recomputation of {@code a_i = fma(a_i, x, y)} gives, and {@code fmasPerIteration} is lanes times
 * accumulators. (Their speed is measured by {@code hflash probe} and {@code bench}, never here.)
 */
class FmaLoopTest {

  @Test
  void everyLoopComputesWhatItCounts() {
    TileKernels kernels = TileKernelsProvider.get();
    List<FmaLoop> loops = ComputeProbe.fmaLoops(kernels);
    assertFalse(loops.isEmpty());
    int lanes = kernels.bitSize() == 0 ? 1 : kernels.bitSize() / Float.SIZE;
    for (FmaLoop loop : loops) {
      String prefix = kernels.bitSize() == 0 ? "scalar-x" : "vector-" + kernels.bitSize() + "x";
      assertTrue(loop.name().startsWith(prefix), loop.name());
      int accumulators = Integer.parseInt(loop.name().substring(prefix.length()));
      assertEquals((long) lanes * accumulators, loop.fmasPerIteration(), loop.name());
      for (long iterations : new long[] {0, 1, 1023, 1024, 1025, 5000}) {
        float seed = 1e-3f;
        assertEquals(expected(accumulators, lanes, iterations, seed), loop.run(iterations, seed),
            loop.name() + " iterations=" + iterations);
      }
    }
  }

  /**
   * Accumulator i starts at (i + 1) seed (vector loops: a running float sum of seeds; scalar
   * loops: the product), each lane alike; lanes summed in order.
   */
  private static float expected(int accumulators, int lanes, long iterations, float seed) {
    float[] a = new float[accumulators];
    float start = 0f;
    for (int i = 0; i < accumulators; i++) {
      start = i == 0 ? seed : start + seed;
      a[i] = lanes == 1 ? (i + 1) * seed : start;
    }
    for (long n = 0; n < iterations; n++) {
      for (int i = 0; i < accumulators; i++) {
        a[i] = Math.fma(a[i], 0.999999f, 1e-7f);
      }
    }
    return combine(a, lanes);
  }

  /** The loops' own combination: a pairwise tree over accumulators, then the lanes in order. */
  private static float combine(float[] a, int lanes) {
    float lane;
    if (lanes == 1) { // scalar: a0 + a1 + ... left to right
      lane = 0f;
      for (int i = 0; i < a.length; i++) {
        lane = i == 0 ? a[0] : lane + a[i];
      }
      return lane;
    }
    lane = switch (a.length) {
      case 8 -> oct(a, 0);
      case 12 -> oct(a, 0) + quad(a, 8);
      default -> oct(a, 0) + oct(a, 8);
    };
    float sum = 0f;
    for (int i = 0; i < lanes; i++) {
      sum += lane;
    }
    return sum;
  }

  private static float quad(float[] a, int o) {
    return (a[o] + a[o + 1]) + (a[o + 2] + a[o + 3]);
  }

  private static float oct(float[] a, int o) {
    return quad(a, o) + quad(a, o + 4);
  }

  @Test
  void scalarKernelsGetScalarLoops() {
    for (FmaLoop loop : ComputeProbe.fmaLoops(TileKernelsProvider.scalar())) {
      assertTrue(loop.name().startsWith("scalar-x"), loop.name());
    }
  }

  @Test
  void kernelsOfAnotherWidthAreRefused() {
    TileKernels other = (TileKernels) java.lang.reflect.Proxy.newProxyInstance(
        TileKernels.class.getClassLoader(), new Class<?>[] {TileKernels.class},
        (proxy, method, args) -> switch (method.getName()) {
          case "bitSize" -> 96;
          case "name" -> "fake-96";
          default -> throw new UnsupportedOperationException(method.getName());
        });
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ComputeProbe.fmaLoops(other));
    assertTrue(e.getMessage().startsWith("no FMA probe loops for kernels fake-96"), e.getMessage());
  }
}
