package hflash.bench;

import hflash.tiles.TileKernelsProvider;
import java.util.List;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The compute probe's loops at the lane width of the kernels of this JVM: 8, 12 and 16
 * independent vector accumulators, each updated {@code a = a * x + y} per iteration. Eight hide a
 * four-cycle FMA latency on two pipes; twelve (what fmapeak.c uses) leave slack; sixteen overflow
 * AVX2's 16 registers once x and y are counted, so on such a CPU the 12-accumulator shape wins.
 * Written out per shape: accumulators must be locals for C2 to keep them in registers.
 */
final class VectorFmaLoops {

  /** The kernels' width, fixed per JVM: a static final species is a constant to C2, so the loops compile to SIMD. */
  private static final VectorSpecies<Float> F =
      VectorSpecies.of(float.class, VectorShape.forBitSize(TileKernelsProvider.get().bitSize()));
  private static final int L = F.length();
  private static final int INNER = 1024; // int-counted inner loop: C2 unrolls it without long-loop overhead

  private VectorFmaLoops() {}

  static List<FmaLoop> all() {
    return List.of(loop(8), loop(12), loop(16));
  }

  private static FmaLoop loop(int accumulators) {
    return new FmaLoop() {
      @Override
      public String name() {
        return "vector-" + F.vectorBitSize() + "x" + accumulators;
      }

      @Override
      public long fmasPerIteration() {
        return (long) L * accumulators;
      }

      @Override
      public float run(long iterations, float seed) {
        return switch (accumulators) {
          case 8 -> run8(iterations, seed);
          case 12 -> run12(iterations, seed);
          default -> run16(iterations, seed);
        };
      }
    };
  }

  private static float run8(long iterations, float seed) {
    FloatVector x = FloatVector.broadcast(F, 0.999999f), y = FloatVector.broadcast(F, 1e-7f);
    FloatVector a0 = FloatVector.broadcast(F, seed), a1 = a0.add(seed), a2 = a1.add(seed), a3 = a2.add(seed);
    FloatVector a4 = a3.add(seed), a5 = a4.add(seed), a6 = a5.add(seed), a7 = a6.add(seed);
    for (long n = 0; n < iterations; n += INNER) {
      int m = (int) Math.min(INNER, iterations - n);
      for (int i = 0; i < m; i++) {
        a0 = a0.fma(x, y);
        a1 = a1.fma(x, y);
        a2 = a2.fma(x, y);
        a3 = a3.fma(x, y);
        a4 = a4.fma(x, y);
        a5 = a5.fma(x, y);
        a6 = a6.fma(x, y);
        a7 = a7.fma(x, y);
      }
    }
    return sumLanes(a0.add(a1).add(a2.add(a3)).add(a4.add(a5).add(a6.add(a7))));
  }

  private static float run12(long iterations, float seed) {
    FloatVector x = FloatVector.broadcast(F, 0.999999f), y = FloatVector.broadcast(F, 1e-7f);
    FloatVector a0 = FloatVector.broadcast(F, seed), a1 = a0.add(seed), a2 = a1.add(seed), a3 = a2.add(seed);
    FloatVector a4 = a3.add(seed), a5 = a4.add(seed), a6 = a5.add(seed), a7 = a6.add(seed);
    FloatVector a8 = a7.add(seed), a9 = a8.add(seed), a10 = a9.add(seed), a11 = a10.add(seed);
    for (long n = 0; n < iterations; n += INNER) {
      int m = (int) Math.min(INNER, iterations - n);
      for (int i = 0; i < m; i++) {
        a0 = a0.fma(x, y);
        a1 = a1.fma(x, y);
        a2 = a2.fma(x, y);
        a3 = a3.fma(x, y);
        a4 = a4.fma(x, y);
        a5 = a5.fma(x, y);
        a6 = a6.fma(x, y);
        a7 = a7.fma(x, y);
        a8 = a8.fma(x, y);
        a9 = a9.fma(x, y);
        a10 = a10.fma(x, y);
        a11 = a11.fma(x, y);
      }
    }
    FloatVector s = a0.add(a1).add(a2.add(a3)).add(a4.add(a5).add(a6.add(a7)));
    return sumLanes(s.add(a8.add(a9).add(a10.add(a11))));
  }

  private static float run16(long iterations, float seed) {
    FloatVector x = FloatVector.broadcast(F, 0.999999f), y = FloatVector.broadcast(F, 1e-7f);
    FloatVector a0 = FloatVector.broadcast(F, seed), a1 = a0.add(seed), a2 = a1.add(seed), a3 = a2.add(seed);
    FloatVector a4 = a3.add(seed), a5 = a4.add(seed), a6 = a5.add(seed), a7 = a6.add(seed);
    FloatVector a8 = a7.add(seed), a9 = a8.add(seed), a10 = a9.add(seed), a11 = a10.add(seed);
    FloatVector a12 = a11.add(seed), a13 = a12.add(seed), a14 = a13.add(seed), a15 = a14.add(seed);
    for (long n = 0; n < iterations; n += INNER) {
      int m = (int) Math.min(INNER, iterations - n);
      for (int i = 0; i < m; i++) {
        a0 = a0.fma(x, y);
        a1 = a1.fma(x, y);
        a2 = a2.fma(x, y);
        a3 = a3.fma(x, y);
        a4 = a4.fma(x, y);
        a5 = a5.fma(x, y);
        a6 = a6.fma(x, y);
        a7 = a7.fma(x, y);
        a8 = a8.fma(x, y);
        a9 = a9.fma(x, y);
        a10 = a10.fma(x, y);
        a11 = a11.fma(x, y);
        a12 = a12.fma(x, y);
        a13 = a13.fma(x, y);
        a14 = a14.fma(x, y);
        a15 = a15.fma(x, y);
      }
    }
    FloatVector s = a0.add(a1).add(a2.add(a3)).add(a4.add(a5).add(a6.add(a7)));
    FloatVector t = a8.add(a9).add(a10.add(a11)).add(a12.add(a13).add(a14.add(a15)));
    return sumLanes(s.add(t));
  }

  /** Sum of the lanes in lane order (reduceLanes' order differs between the interpreter and C2). */
  private static float sumLanes(FloatVector v) {
    float[] lanes = v.toArray();
    float sum = 0f;
    for (float x : lanes) {
      sum += x;
    }
    return sum;
  }
}
