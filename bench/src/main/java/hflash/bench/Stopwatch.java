package hflash.bench;

import java.util.ArrayList;
import java.util.List;

/**
 * JMH-style timing of one operation in a single JVM. An iteration calls the operation until at least
 * {@code minIterationNanos} have passed (so timer resolution and call overhead do not dominate small
 * shapes, and the call count follows the JIT as it warms up); its sample is the time per call.
 * Warm-up iterations run until the last three agree within {@link #STABLE} (at least
 * {@code minWarmup}, at most {@code maxWarmup}), then the measured iterations. Not a substitute for
 * the JMH benchmarks in {@code test/}: one fork, and the caller must consume its results.
 */
public final class Stopwatch {

  /** Relative spread of the last three warm-up iterations below which timing counts as stable. */
  public static final double STABLE = 0.03;

  /**
   * Warm-up lasts at least this long whatever the iteration counts say: with several threads the
   * workers' code reaches its final JIT tier only after many calls (W1 at 32k keys on 2 threads:
   * 10.6 ms per call after 25 calls, 7.5 ms after 200), and a slow tier can look stable.
   */
  public static final long MIN_WARMUP_NANOS =
      Long.getLong("hflash.minWarmupMs", 2000) * 1_000_000L; // tests shorten it: they check fields, not speed

  private final long minIterationNanos;
  private final int minWarmup;
  private final int maxWarmup;
  private final int measured;

  public Stopwatch(long minIterationNanos, int minWarmup, int maxWarmup, int measured) {
    this.minIterationNanos = minIterationNanos;
    this.minWarmup = minWarmup;
    this.maxWarmup = Math.max(minWarmup, maxWarmup);
    this.measured = measured;
  }

  /** What happened: the per-call samples, the warm-up iterations run, the calls of the last iteration. */
  public record Result(Samples samples, int warmupIterations, long callsPerIteration) {}

  public Result time(Runnable op) {
    List<Double> warm = new ArrayList<>();
    long[] calls = new long[1];
    long start = System.nanoTime();
    while (warm.size() < maxWarmup || System.nanoTime() - start < MIN_WARMUP_NANOS) {
      warm.add(iteration(op, calls));
      if (warm.size() >= minWarmup && stable(warm) && System.nanoTime() - start >= MIN_WARMUP_NANOS) {
        break;
      }
    }
    double[] samples = new double[measured];
    for (int i = 0; i < measured; i++) {
      samples[i] = iteration(op, calls);
    }
    return new Result(new Samples(samples), warm.size(), calls[0]);
  }

  /**
   * Times {@code a} and {@code b} alternately, iteration by iteration, with the same warm-up and
   * measured counts: warm-up goes on until both are stable (or {@code maxWarmup}), so drift of the
   * clock, the heat or other load hits both alike and their ratio is a same-run ratio.
   *
   * @return {result of a, result of b}
   */
  public Result[] timePair(Runnable a, Runnable b) {
    return timeAll(List.of(a, b)).toArray(Result[]::new);
  }

  /**
   * {@link #timePair} for any number of operations: one iteration of each in turn, round after
   * round, until all are stable (or {@code maxWarmup} rounds), then the measured rounds.
   *
   * @return one result per operation, in the order given
   */
  public List<Result> timeAll(List<Runnable> ops) {
    int m = ops.size();
    List<List<Double>> warm = new ArrayList<>();
    long[][] calls = new long[m][1];
    for (int i = 0; i < m; i++) {
      warm.add(new ArrayList<>());
    }
    long start = System.nanoTime();
    while (warm.get(0).size() < maxWarmup || System.nanoTime() - start < MIN_WARMUP_NANOS) {
      boolean stable = true;
      for (int i = 0; i < m; i++) {
        warm.get(i).add(iteration(ops.get(i), calls[i]));
        stable &= stable(warm.get(i));
      }
      if (warm.get(0).size() >= minWarmup && stable && System.nanoTime() - start >= MIN_WARMUP_NANOS) {
        break;
      }
    }
    double[][] samples = new double[m][measured];
    for (int r = 0; r < measured; r++) {
      for (int i = 0; i < m; i++) {
        samples[i][r] = iteration(ops.get(i), calls[i]);
      }
    }
    List<Result> results = new ArrayList<>();
    for (int i = 0; i < m; i++) {
      results.add(new Result(new Samples(samples[i]), warm.get(i).size(), calls[i][0]));
    }
    return results;
  }

  private double iteration(Runnable op, long[] calls) {
    long t0 = System.nanoTime();
    long n = 0;
    long t;
    do {
      op.run();
      n++;
      t = System.nanoTime() - t0;
    } while (t < minIterationNanos);
    calls[0] = n;
    return (double) t / n;
  }

  private static boolean stable(List<Double> warm) {
    if (warm.size() < 3) {
      return false;
    }
    double a = warm.get(warm.size() - 1), b = warm.get(warm.size() - 2), c = warm.get(warm.size() - 3);
    double min = Math.min(a, Math.min(b, c)), max = Math.max(a, Math.max(b, c));
    return (max - min) <= STABLE * min;
  }
}
