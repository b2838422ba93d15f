package hflash.bench;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.tiles.TileEncoding;
import hflash.tiles.TileKernels;
import hflash.tiles.TileKernelsProvider;
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
 * The vector score and p.V kernels of this JVM per key row, for every cache dtype (the float ones
 * and the block dtypes q8_0 and q4_0): nanoseconds per key of a tile, for a GQA group of 4 query
 * heads. The tiles are written through {@link KvCache#append}, so every dtype is in the cache's real
 * placement. {@code tiles} K/V tile pairs are cycled; the default 16 keeps them in L2 (at most
 * 512 KiB), so the figure is the kernel's compute cost, where a spilled accumulator would show.
 * Setup checks the vector kernels against the scalar reference to the bit on every tile.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = 3, jvmArgsPrepend = "--add-modules=jdk.incubator.vector",
    jvmArgsAppend = {"-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 4, time = 1)
public class KernelRowBench {

  /** Query heads per KV head (GQA group). */
  static final int GROUP = 4;

  /** Kernel calls per invocation. */
  static final int CALLS = 64;

  /** Keys per tile; with {@link #CALLS} this is the divisor that makes the score ns per key row. */
  static final int TILE = 64;

  @Param({"128"})
  int headDim;

  @Param({"f32", "bf16", "f16", "q8_0", "q4_0"})
  String dtype;

  @Param("16")
  int tiles;

  private KvCache cache;
  private MemorySegment keys;
  private MemorySegment values;
  private long[] tileOff;
  private DType type;
  private TileEncoding enc;
  private float[] q; // (GROUP, headDim)
  private float[] p; // (GROUP, TILE) weights in [0, 1)
  private float[] s; // (GROUP, TILE)
  private float[] acc; // (GROUP, headDim)
  private int next;
  private TileKernels vector;

  @Setup(Level.Trial)
  public void setup() {
    type = DType.parse(dtype);
    enc = TileEncoding.of(type.id());
    cache = KvCache.allocate(new KvCacheLayout(1, 1, headDim, tiles * TILE, type, TILE));
    SplittableRandom rnd = new SplittableRandom(BenchData.SEED + 4);
    float[] k = BenchData.uniform(rnd, tiles * TILE * headDim);
    float[] v = BenchData.uniform(rnd, tiles * TILE * headDim);
    cache.append(0, tiles * TILE, k, v);
    keys = cache.keys();
    values = cache.values();
    tileOff = new long[tiles];
    for (int t = 0; t < tiles; t++) {
      tileOff[t] = cache.layout().tileOffset(0, 0, t);
    }
    q = BenchData.uniform(rnd, GROUP * headDim);
    p = new float[GROUP * TILE];
    for (int i = 0; i < p.length; i++) {
      p[i] = (float) rnd.nextDouble();
    }
    s = new float[GROUP * TILE];
    acc = new float[GROUP * headDim];
    vector = TileKernelsProvider.get();
    TileKernels scalar = TileKernelsProvider.scalar();
    float[] s2 = new float[s.length];
    float[] a1 = new float[acc.length];
    float[] a2 = new float[acc.length];
    for (int t = 0; t < tiles; t++) {
      scalar.scores(q, 0, GROUP, headDim, keys, tileOff[t], enc, TILE, s2, TILE);
      vector.scores(q, 0, GROUP, headDim, keys, tileOff[t], enc, TILE, s, TILE);
      scalar.accumulate(p, TILE, GROUP, headDim, values, tileOff[t], enc, TILE, TILE, a1, 0);
      vector.accumulate(p, TILE, GROUP, headDim, values, tileOff[t], enc, TILE, TILE, a2, 0);
      if (!Arrays.equals(s, s2) || !Arrays.equals(a1, a2)) {
        throw new IllegalStateException(vector.name() + " and " + scalar.name()
            + " give different bits at tile " + t + ", headDim=" + headDim + " dtype=" + dtype);
      }
    }
  }

  @Benchmark
  @OperationsPerInvocation(CALLS * TILE)
  public float scoresVector() {
    float checksum = 0f;
    int t = next;
    for (int i = 0; i < CALLS; i++) {
      vector.scores(q, 0, GROUP, headDim, keys, tileOff[t], enc, TILE, s, TILE);
      checksum += s[0];
      if (++t == tiles) {
        t = 0;
      }
    }
    next = t;
    return checksum;
  }

  @Benchmark
  @OperationsPerInvocation(CALLS * TILE)
  public float accumulateVector() {
    Arrays.fill(acc, 0f);
    int t = next;
    for (int i = 0; i < CALLS; i++) {
      vector.accumulate(p, TILE, GROUP, headDim, values, tileOff[t], enc, TILE, TILE, acc, 0);
      if (++t == tiles) {
        t = 0;
      }
    }
    next = t;
    return acc[0] + acc[acc.length - 1];
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    cache.close();
  }
}
