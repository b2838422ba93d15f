package hflash.bench;

import hflash.memory.DType;
import hflash.tiles.PrefillKernels;
import hflash.tiles.ScalarPrefillKernels;
import hflash.tiles.TileEncoding;
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
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One tile step of a tiled prefill block: the scores of {@code rows} query rows against one K tile
 * and the p.V of the same rows against its V tile (the softmax between them is left out), on the
 * prefill kernels (scalar twin and vector: {@code blockScalar}, {@code blockVector}) and on the
 * decode kernels with the rows as heads ({@code blockDecodeKernels}: what the tiled prefill ran
 * before the prefill kernels). Microseconds per tile step; ns per (row, key) = that * 1000 /
 * (rows * tileTokens), against {@code 2 * headDim} FMAs per (row, key) at the compute probe.
 * {@code tiles} K/V tile pairs are cycled (16: L2/L3). Setup checks that the three give the same bits.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsPrepend = "--add-modules=jdk.incubator.vector",
    jvmArgsAppend = {"-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 4, time = 1)
public class PrefillTileBench {

  @Param({"80", "128"})
  int headDim;

  @Param({"f32", "f16"})
  String dtype;

  /** Rows of a block: 64 positions x a GQA group of 4 (W1). */
  @Param("256")
  int rows;

  @Param("128")
  int tileTokens;

  @Param("16")
  int tiles;

  private Arena arena;
  private MemorySegment k; // (tiles) K tiles back to back
  private MemorySegment v; // (tiles) V tiles back to back
  private DType type;
  private TileEncoding enc;
  private long tileBytes;
  private int next;
  private float[] q; // (rows, headDim)
  private float[] p; // (rows, sStride) weights
  private float[] s; // (rows, sStride) scores
  private float[] acc; // (rows, headDim)
  private float[] partial; // (rows, headDim): the decode kernels' per-tile partial
  private float[] kf;
  private float[] vf;
  private int sStride;
  private TileKernels decode;
  private PrefillKernels vector;
  private PrefillKernels scalar;

  @Setup(Level.Trial)
  public void setup() {
    type = DType.parse(dtype);
    enc = TileEncoding.of(type.id());
    tileBytes = (long) tileTokens * headDim * type.bytes();
    arena = Arena.ofShared();
    k = BenchData.filled(arena, tileBytes * tiles, type);
    v = BenchData.filled(arena, tileBytes * tiles, type);
    SplittableRandom rnd = new SplittableRandom(BenchData.SEED + 3);
    sStride = PrefillKernels.roundUp(tileTokens);
    q = BenchData.uniform(rnd, rows * headDim);
    p = new float[rows * sStride];
    for (int i = 0; i < p.length; i++) {
      p[i] = (float) rnd.nextDouble();
    }
    s = new float[rows * sStride];
    acc = new float[rows * headDim];
    partial = new float[rows * headDim];
    kf = new float[PrefillKernels.keyScratch(tileTokens, headDim)];
    vf = new float[PrefillKernels.valueScratch(tileTokens, headDim)];
    decode = TileKernelsProvider.get();
    vector = PrefillKernels.of(decode);
    scalar = new ScalarPrefillKernels();
    float[] a = step(scalar, 0), b = step(vector, 0), c = stepDecode(0);
    if (!Arrays.equals(a, b) || !Arrays.equals(a, c)) {
      throw new IllegalStateException(vector.name() + ", " + scalar.name() + " and " + decode.name()
          + " give different bits, headDim=" + headDim + " dtype=" + dtype);
    }
  }

  /** One step from zeroed accumulators; returns scores and accumulators for the bit check. */
  private float[] step(PrefillKernels kernels, int t) {
    Arrays.fill(acc, 0f);
    kernels.widenKeys(k, t * tileBytes, enc, headDim, tileTokens, kf);
    kernels.scores(q, 0, rows, headDim, kf, tileTokens, s, sStride);
    kernels.widenValues(v, t * tileBytes, enc, headDim, tileTokens, tileTokens, vf);
    kernels.accumulate(p, sStride, rows, headDim, vf, tileTokens, tileTokens, acc, 0);
    return result();
  }

  private float[] stepDecode(int t) {
    Arrays.fill(acc, 0f);
    decodeStep(t);
    return result();
  }

  private float[] result() {
    float[] out = Arrays.copyOf(acc, acc.length + s.length);
    System.arraycopy(s, 0, out, acc.length, s.length);
    return out;
  }

  private void decodeStep(int t) {
    decode.scores(q, 0, rows, headDim, k, t * tileBytes, enc, tileTokens, s, sStride);
    Arrays.fill(partial, 0f);
    decode.accumulate(p, sStride, rows, headDim, v, t * tileBytes, enc, tileTokens, tileTokens, partial, 0);
    for (int i = 0; i < acc.length; i++) {
      acc[i] += partial[i];
    }
  }

  @Benchmark
  public float blockScalar() {
    return sweep(scalar);
  }

  @Benchmark
  public float blockVector() {
    return sweep(vector);
  }

  @Benchmark
  public float blockDecodeKernels() {
    int t = next;
    decodeStep(t);
    next = (t + 1) % tiles;
    return acc[0] + s[0];
  }

  private float sweep(PrefillKernels kernels) {
    int t = next;
    long off = t * tileBytes;
    kernels.widenKeys(k, off, enc, headDim, tileTokens, kf);
    kernels.scores(q, 0, rows, headDim, kf, tileTokens, s, sStride);
    kernels.widenValues(v, off, enc, headDim, tileTokens, tileTokens, vf);
    kernels.accumulate(p, sStride, rows, headDim, vf, tileTokens, tileTokens, acc, 0);
    next = (t + 1) % tiles;
    return acc[0] + s[0];
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    arena.close();
  }
}
