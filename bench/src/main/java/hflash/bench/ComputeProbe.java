package hflash.bench;

import hflash.io.UsageException;
import hflash.tiles.TileKernels;
import hflash.tiles.TileKernelsProvider;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The compute probe: the fused multiply-add throughput of register-resident loops
 * ({@link #fmaLoops}) at the lane width of the kernels in use, on
 * {@code threads} threads at once, best of a few loop shapes and several timed runs. It is the
 * arithmetic half of the roofline {@code max(bytes / streamProbe, fmas / computeProbe)}, as
 * {@link StreamProbe} is the memory half; {@code ../shared/tools/fmapeak.c} is its C yardstick.
 */
public final class ComputeProbe {

  /**
   * @param gfmas best throughput in 1e9 fused multiply-adds per second, all threads together
   * @param shape the loop that gave it, e.g. {@code vector-512x12}
   * @param threads threads that ran at once
   */
  public record Result(double gfmas, String shape, int threads) {}

  /** Timed runs per shape after the calibration; the best counts. */
  private static final int RUNS = 5;
  /**
   * A run lasts at least this long once calibrated: long against thread start-up (a pool thread
   * that wakes 0.1 ms late costs 0.1 % here, but 5 % of a 2 ms run: the first version calibrated on
   * interpreted runs, timed 2-3 ms compiled ones and reported 70-82 GFMA/s on two threads where the
   * same loop in one 300 ms run gives 110-114).
   */
  private static final long RUN_NANOS = 100_000_000L;
  /** Warm-up per shape before calibrating, so the calibration times compiled code. */
  private static final long WARMUP_NANOS = 200_000_000L;

  private static volatile double sink;

  /**
   * Results of this process by kernels and thread count: the FMA peak is a property of the machine
   * and the JIT, not of a call, so a process that benches several configurations (the tests, a
   * multi-mode run) measures it once per width and thread count; about 3 s each.
   */
  private static final Map<String, Result> MEASURED = new ConcurrentHashMap<>();

  private ComputeProbe() {}

  /** The kernels of this JVM ({@link TileKernelsProvider#get()}) on {@code threads} threads. */
  public static Result measure(int threads) {
    return measure(TileKernelsProvider.get(), threads);
  }

  /** The loops at the width of {@code kernels} on {@code threads} threads, measured once. */
  public static Result measure(TileKernels kernels, int threads) {
    UsageException.positive("--threads", threads);
    String key = kernels.name() + "/" + threads;
    return MEASURED.computeIfAbsent(key, k -> measureNow(kernels, threads));
  }

  /**
   * The compute probe's loops at the lane width of {@code kernels}: register-resident FMA loops of
   * a few shapes (accumulator counts), the scalar ones for the scalar kernels. The probe times them
   * all and keeps the fastest: the arithmetic ceiling those kernels can approach on this CPU.
   *
   * @throws IllegalArgumentException for vector kernels of a width other than this JVM's kernels
   */
  public static List<FmaLoop> fmaLoops(TileKernels kernels) {
    if (kernels.bitSize() == 0) {
      return ScalarFmaLoops.all();
    }
    if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()
        || kernels.bitSize() != TileKernelsProvider.get().bitSize()) {
      throw new IllegalArgumentException("no FMA probe loops for kernels " + kernels.name()
          + " in this JVM (vector loops run at " + System.getProperty(TileKernelsProvider.BIT_SIZE_PROPERTY, "the preferred")
          + " bits)");
    }
    // VectorFmaLoops is loaded only here: its species is the width of this JVM's vector kernels
    return VectorFmaLoops.all();
  }

  private static Result measureNow(TileKernels kernels, int threads) {
    List<FmaLoop> loops = fmaLoops(kernels);
    ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
      Thread t = new Thread(r, "hflash-fma-probe");
      t.setDaemon(true);
      return t;
    });
    try {
      double best = 0;
      String bestShape = "none";
      for (FmaLoop loop : loops) {
        long iterations = 1 << 16;
        for (long start = System.nanoTime(); System.nanoTime() - start < WARMUP_NANOS; ) {
          time(pool, loop, iterations, threads); // the JIT compiles the loop (OSR, then whole)
        }
        while (time(pool, loop, iterations, threads) < RUN_NANOS && iterations < (1L << 40)) {
          iterations *= 2;
        }
        for (int run = 0; run < RUNS; run++) {
          long nanos = time(pool, loop, iterations, threads);
          double g = (double) iterations * loop.fmasPerIteration() * threads / nanos;
          if (g > best) {
            best = g;
            bestShape = loop.name();
          }
        }
      }
      return new Result(best, bestShape, threads);
    } finally {
      pool.shutdownNow();
    }
  }

  /** Wall time of {@code threads} concurrent runs of {@code iterations} each. */
  private static long time(ExecutorService pool, FmaLoop loop, long iterations, int threads) {
    List<Future<Float>> parts = new ArrayList<>(threads);
    long t0 = System.nanoTime();
    for (int i = 0; i < threads; i++) {
      float seed = 1e-3f * (i + 1);
      parts.add(pool.submit(() -> loop.run(iterations, seed)));
    }
    double sum = ProbeTasks.join(parts, "compute probe");
    long nanos = Math.max(1, System.nanoTime() - t0);
    if (!Double.isFinite(sum)) {
      throw new IllegalStateException("compute probe sum is not finite: " + sum);
    }
    sink += sum;
    return nanos;
  }
}
