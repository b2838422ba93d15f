package hflash.bench;

import hflash.memory.DType;
import hflash.tiles.TileKernelsProvider;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
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
 * The bandwidth probe's stream readers ({@code hflash.bench.StreamProbe#streamReaders}) over an off-heap buffer ({@link Arena#ofShared()}, 1 GiB by
 * default): the single-thread streaming-read bandwidth Java reaches on this machine, the ceiling to
 * put next to {@link DecodeBench}'s GB/s. The scalar loop vs the vector reader at the kernels' lane width.
 *
 * <p>The score is milliseconds per pass over the whole buffer; GB/s = {@code mib * 2^20} bytes /
 * time. The buffer is far larger than any cache, so every pass reads DRAM.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 3, jvmArgsPrepend = "--add-modules=jdk.incubator.vector",
    jvmArgsAppend = {"-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
@Warmup(iterations = 4, time = 1)
@Measurement(iterations = 5, time = 1)
public class StreamReadBench {

  private static final ValueLayout.OfFloat F32_LE =
      ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  /** Buffer size in MiB. */
  @Param("1024")
  int mib;

  private Arena arena;
  private MemorySegment buf; // (mib * 2^18) little-endian floats in [-1, 1)
  private long floats;
  private hflash.bench.StreamReader scalar;
  private hflash.bench.StreamReader vector;

  @Setup(Level.Trial)
  public void setup() {
    long bytes = (long) mib << 20;
    floats = bytes / Float.BYTES;
    arena = Arena.ofShared();
    buf = BenchData.filled(arena, bytes, DType.F32);
    java.util.List<hflash.bench.StreamReader> readers = hflash.bench.StreamProbe.streamReaders();
    scalar = readers.get(readers.size() - 1);
    String width = "vector-" + TileKernelsProvider.get().bitSize();
    vector = readers.stream().filter(r -> r.name().equals(width)).findFirst().orElse(scalar);
    checkFunctionsAgree();
  }

  /**
   * Scalar vs vector sum: the difference is at most 1e-4 of {@code sum |x|}. A reordered sum's
   * error bound scales with {@code sum |x|}, not with the sum, which may cancel to near zero.
   */
  private void checkFunctionsAgree() {
    double expected = scalar.sum(buf, 0, floats);
    double actual = vector.sum(buf, 0, floats);
    double magnitude = 0;
    for (long i = 0; i < floats; i++) {
      magnitude += Math.abs(buf.get(F32_LE, i * Float.BYTES));
    }
    double rel = Math.abs(actual - expected) / magnitude;
    if (!(rel <= 1e-4)) {
      throw new IllegalStateException("stream sum: " + scalar.name() + "=" + expected + " and "
          + vector.name() + "=" + actual + " differ by " + rel + " of sum |x|");
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    arena.close();
  }

  @Benchmark
  public double streamScalar() {
    return scalar.sum(buf, 0, floats);
  }

  @Benchmark
  public double streamVector() {
    return vector.sum(buf, 0, floats);
  }
}
