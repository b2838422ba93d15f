package hflash.bench;

import hflash.engine.DecodeAttention;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.tiles.TileKernelsProvider;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One {@link DecodeAttention#decode(int, float[], float[])} call over a full layer of the W1 shape
 * (32 query heads, 8 KV heads, headDim 128, tiles of 64 keys): scalar reference kernels vs the
 * vector kernels of this JVM, on 1 or 2 threads (split-K).
 *
 * <p>The score is microseconds per call. Bytes per call (checked against
 * {@code report().kvBytesRead()} in setup) = {@code 2 * kvLen * 8 * 128 * dtypeBytes}; GB/s =
 * bytes / time, see docs/JMH.md. kvLen 131072 is not a default (a 1 GiB f32 cache and about 4 s of
 * setup per trial); run it with {@code -p kvLen=131072}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 3, jvmArgsPrepend = "--add-modules=jdk.incubator.vector",
    jvmArgsAppend = {"-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
@Warmup(iterations = 4, time = 1)
@Measurement(iterations = 5, time = 1)
public class DecodeBench {

  static final int NUM_HEADS = 32;
  static final int KV_HEADS = 8;
  static final int HEAD_DIM = 128;
  static final int TILE_TOKENS = 64;

  /** Positions per batched append while filling: 4 MiB of floats per K or V batch. */
  private static final int APPEND_BATCH = 1024;

  @Param({"127", "4096", "32768"})
  int kvLen;

  @Param({"f32", "f16"})
  String dtype;

  @Param({"1", "2"})
  int threads;

  private KvCache cache;
  private DecodeAttention scalar;
  private DecodeAttention vector;
  private float[] q; // (NUM_HEADS, HEAD_DIM)
  private float[] out; // (NUM_HEADS, HEAD_DIM)

  @Setup(Level.Trial)
  public void setup() {
    DType type = DType.parse(dtype);
    cache = KvCache.allocate(new KvCacheLayout(1, KV_HEADS, HEAD_DIM, kvLen, type, TILE_TOKENS));
    SplittableRandom rnd = new SplittableRandom(BenchData.SEED);
    for (int pos = 0; pos < kvLen; pos += APPEND_BATCH) {
      int count = Math.min(APPEND_BATCH, kvLen - pos);
      int n = count * KV_HEADS * HEAD_DIM;
      cache.append(0, count, BenchData.uniform(rnd, n), BenchData.uniform(rnd, n));
    }
    q = BenchData.uniform(rnd, NUM_HEADS * HEAD_DIM);
    out = new float[NUM_HEADS * HEAD_DIM];
    float scale = (float) (1.0 / Math.sqrt(HEAD_DIM));
    scalar = DecodeAttention.create(cache, NUM_HEADS, threads, scale, TileKernelsProvider.scalar());
    vector = DecodeAttention.create(cache, NUM_HEADS, threads, scale, TileKernelsProvider.get());
    checkFunctionsAgree(type);
  }

  /** Scalar vs vector output: relative L2 below 1e-5; and the byte count docs/JMH.md uses. */
  private void checkFunctionsAgree(DType type) {
    float[] expected = new float[out.length];
    float[] actual = new float[out.length];
    scalar.decode(0, q, expected);
    vector.decode(0, q, actual);
    double rel = BenchData.l2Relative(expected, actual);
    if (!(rel < 1e-5)) {
      throw new IllegalStateException("decode: " + scalar.kernels().name() + " and "
          + vector.kernels().name() + " differ by " + rel + " (relative L2), kvLen=" + kvLen
          + " dtype=" + dtype + " threads=" + threads);
    }
    long bytes = 2L * kvLen * KV_HEADS * HEAD_DIM * type.bytes();
    if (vector.report().kvBytesRead() != bytes) {
      throw new IllegalStateException("kvBytesRead " + vector.report().kvBytesRead()
          + " != 2 * kvLen * kvHeads * headDim * dtypeBytes = " + bytes);
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    scalar.close();
    vector.close();
    cache.close();
  }

  @Benchmark
  public float[] decodeScalar() {
    scalar.decode(0, q, out);
    return out;
  }

  @Benchmark
  public float[] decodeVector() {
    vector.decode(0, q, out);
    return out;
  }
}
