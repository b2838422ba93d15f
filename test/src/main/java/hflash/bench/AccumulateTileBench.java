package hflash.bench;

import hflash.tiles.TileKernels;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One {@link TileKernels#accumulate} call: a V tile of {@code tileTokens} keys weighted into the
 * accumulators of a group of 4 query heads, scalar reference vs the vector kernels of this JVM.
 *
 * <p>The score is microseconds per call. Each invocation zeroes the accumulators, then makes
 * {@value #CALLS} calls on consecutive tiles of a buffer of {@code tiles} V tiles, resuming where
 * the previous invocation stopped: {@code tiles=16} keeps the buffer in L2, {@code tiles=4096}
 * streams it from DRAM. Bytes read per call = {@code tileTokens * headDim * dtypeBytes}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 3, jvmArgsPrepend = "--add-modules=jdk.incubator.vector",
    jvmArgsAppend = {"-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
@Warmup(iterations = 4, time = 1)
@Measurement(iterations = 5, time = 1)
public class AccumulateTileBench extends TileBench {

  private float[] p; // (GROUP, tileTokens) softmax weights in [0, 1)
  private float[] acc; // (GROUP, headDim) accumulators

  @Override
  void prepare() {
    SplittableRandom rnd = new SplittableRandom(BenchData.SEED + 2);
    p = new float[GROUP * tileTokens];
    for (int i = 0; i < p.length; i++) {
      p[i] = (float) rnd.nextDouble();
    }
    acc = new float[GROUP * headDim];
  }

  /** Every tile into zeroed accumulators, scalar vs vector: max-norm relative difference at most 1e-4. */
  @Override
  void checkFunctionsAgree() {
    float[] expected = new float[acc.length];
    float[] actual = new float[acc.length];
    for (int t = 0; t < tiles; t++) {
      Arrays.fill(expected, 0f);
      Arrays.fill(actual, 0f);
      scalar.accumulate(p, tileTokens, GROUP, headDim, tileData, t * tileBytes, enc, tileTokens,
          tileTokens, expected, 0);
      vector.accumulate(p, tileTokens, GROUP, headDim, tileData, t * tileBytes, enc, tileTokens,
          tileTokens, actual, 0);
      checkTileAgrees("accumulate", expected, actual, t);
    }
  }

  @Benchmark
  @OperationsPerInvocation(CALLS)
  public float accumulateScalar() {
    return sweep(scalar);
  }

  @Benchmark
  @OperationsPerInvocation(CALLS)
  public float accumulateVector() {
    return sweep(vector);
  }

  /**
   * {@value #CALLS} calls on consecutive tiles. Zeroing first keeps the accumulators bounded over
   * a long run (GROUP * headDim stores, noise next to 256 calls). JMH forks per benchmark method,
   * so this call site only ever sees one kernel class in a measured JVM.
   */
  private float sweep(TileKernels kernels) {
    Arrays.fill(acc, 0f);
    int t = next;
    for (int i = 0; i < CALLS; i++) {
      kernels.accumulate(p, tileTokens, GROUP, headDim, tileData, t * tileBytes, enc, tileTokens,
          tileTokens, acc, 0);
      if (++t == tiles) {
        t = 0;
      }
    }
    next = t;
    return acc[0] + acc[acc.length - 1];
  }
}
