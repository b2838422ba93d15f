package hflash.bench;

import hflash.tiles.TileKernels;
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
 * One {@link TileKernels#scores} call: a K tile of {@code tileTokens} keys scored against a group
 * of 4 query heads, scalar reference vs the vector kernels of this JVM.
 *
 * <p>The score is microseconds per call. Each invocation makes {@value #CALLS} calls on
 * consecutive tiles of a buffer of {@code tiles} K tiles, resuming where the previous invocation
 * stopped: {@code tiles=16} keeps the buffer in L2 (128 KiB to 512 KiB), {@code tiles=4096} (32 MiB
 * to 128 MiB) streams it from DRAM. Bytes read per call = {@code tileTokens * headDim * dtypeBytes}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 3, jvmArgsPrepend = "--add-modules=jdk.incubator.vector",
    jvmArgsAppend = {"-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
@Warmup(iterations = 4, time = 1)
@Measurement(iterations = 5, time = 1)
public class ScoreTileBench extends TileBench {

  private float[] q; // (GROUP, headDim), already scaled
  private float[] s; // (GROUP, tileTokens) scores of the current tile

  @Override
  void prepare() {
    q = BenchData.uniform(new SplittableRandom(BenchData.SEED + 1), GROUP * headDim);
    s = new float[GROUP * tileTokens];
  }

  /** Every tile, scalar vs vector: max-norm relative difference at most 1e-4. */
  @Override
  void checkFunctionsAgree() {
    float[] expected = new float[s.length];
    float[] actual = new float[s.length];
    for (int t = 0; t < tiles; t++) {
      scalar.scores(q, 0, GROUP, headDim, tileData, t * tileBytes, enc, tileTokens, expected, tileTokens);
      vector.scores(q, 0, GROUP, headDim, tileData, t * tileBytes, enc, tileTokens, actual, tileTokens);
      checkTileAgrees("scores", expected, actual, t);
    }
  }

  @Benchmark
  @OperationsPerInvocation(CALLS)
  public float scoresScalar() {
    return sweep(scalar);
  }

  @Benchmark
  @OperationsPerInvocation(CALLS)
  public float scoresVector() {
    return sweep(vector);
  }

  /**
   * {@value #CALLS} calls on consecutive tiles. JMH forks per benchmark method, so this call site
   * only ever sees one kernel class in a measured JVM (the setup check uses other call sites).
   */
  private float sweep(TileKernels kernels) {
    float checksum = 0f;
    int t = next;
    for (int i = 0; i < CALLS; i++) {
      kernels.scores(q, 0, GROUP, headDim, tileData, t * tileBytes, enc, tileTokens, s, tileTokens);
      checksum += s[0];
      if (++t == tiles) {
        t = 0;
      }
    }
    next = t;
    return checksum;
  }
}
