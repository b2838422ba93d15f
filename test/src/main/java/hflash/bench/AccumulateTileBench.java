package hflash.bench;

import hflash.memory.DType;
import hflash.tiles.TileKernels;
import hflash.tiles.TileKernelsProvider;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
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
public class AccumulateTileBench {

  /** Query heads per KV head (GQA group), the group size the kernels are blocked for. */
  static final int GROUP = 4;

  /** Kernel calls per invocation; the score is divided by it. */
  static final int CALLS = 256;

  @Param({"64", "80", "128"})
  int headDim;

  @Param({"f32", "f16", "bf16"})
  String dtype;

  @Param("64")
  int tileTokens;

  @Param({"16", "4096"})
  int tiles;

  private Arena arena;
  private MemorySegment v; // (tiles) V tiles back to back, each in TileLayout order
  private DType type;
  private long tileBytes;
  private float[] p; // (GROUP, tileTokens) softmax weights in [0, 1)
  private float[] acc; // (GROUP, headDim) accumulators
  private int next; // first tile of the next invocation
  private TileKernels scalar;
  private TileKernels vector;

  @Setup(Level.Trial)
  public void setup() {
    type = DType.parse(dtype);
    tileBytes = (long) tileTokens * headDim * type.bytes();
    arena = Arena.ofShared();
    v = arena.allocate(tileBytes * tiles, 64);
    BenchData.fill(v, type, BenchData.SEED);
    SplittableRandom rnd = new SplittableRandom(BenchData.SEED + 2);
    p = new float[GROUP * tileTokens];
    for (int i = 0; i < p.length; i++) {
      p[i] = (float) rnd.nextDouble();
    }
    acc = new float[GROUP * headDim];
    scalar = TileKernelsProvider.scalar();
    vector = TileKernelsProvider.get();
    checkFunctionsAgree();
  }

  /** Every tile into zeroed accumulators, scalar vs vector: max-norm relative difference at most 1e-4. */
  private void checkFunctionsAgree() {
    float[] expected = new float[acc.length];
    float[] actual = new float[acc.length];
    for (int t = 0; t < tiles; t++) {
      Arrays.fill(expected, 0f);
      Arrays.fill(actual, 0f);
      scalar.accumulate(p, tileTokens, GROUP, headDim, v, t * tileBytes, type, tileTokens,
          tileTokens, expected, 0);
      vector.accumulate(p, tileTokens, GROUP, headDim, v, t * tileBytes, type, tileTokens,
          tileTokens, actual, 0);
      double rel = BenchData.maxRelative(expected, actual, 0, expected.length);
      if (!(rel <= 1e-4)) {
        throw new IllegalStateException("accumulate: " + scalar.name() + " and " + vector.name()
            + " differ by " + rel + " (relative) at tile " + t + ", headDim=" + headDim
            + " dtype=" + dtype);
      }
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    arena.close();
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
      kernels.accumulate(p, tileTokens, GROUP, headDim, v, t * tileBytes, type, tileTokens,
          tileTokens, acc, 0);
      if (++t == tiles) {
        t = 0;
      }
    }
    next = t;
    return acc[0] + acc[acc.length - 1];
  }
}
