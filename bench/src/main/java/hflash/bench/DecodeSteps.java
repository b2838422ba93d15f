package hflash.bench;

import hflash.engine.DecodeAttention;
import hflash.engine.Scheduler;
import hflash.io.UsageException;
import hflash.memory.DType;
import hflash.memory.KvCache;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * {@code bench --decode-steps N}: what one generated token costs as the context grows. The workload
 * is made for {@code context + N} positions; its first {@code context} positions are appended as a
 * prefill (one batched append), then each of N steps appends the next position (one K and V row
 * per KV head, from the same generator stream) and attends to every position so far in each mode
 * and scheduler, as a runtime's decode loop does for one layer. The query is the workload's decode
 * query, the same at every step (only the cache grows).
 *
 * <p>Each call is timed once (a runtime makes one call per token and layer), the modes in a
 * rotating order so none always runs first after the append. Before the first step every mode is
 * warmed up on the prefilled cache as {@code bench} warms up ({@link Stopwatch}: iterations of at
 * least 10 ms until three agree within 3 %, at most {@code --warmup}).
 * Every {@code max(1, N / 10)} steps, and at the last, a sample reports the median of the steps
 * since the previous sample. The append is timed apart ({@code appendMs}: K/V rows plus the
 * summaries and samples the cache keeps current); generating the keys is not timed.
 */
public final class DecodeSteps {

  /**
   * One sample of one mode and scheduler.
   *
   * @param step steps done (1 = the first token after the prefill)
   * @param context positions attended at that step: prefill + step
   * @param ms median milliseconds per call over the steps since the previous sample
   * @param appendMs median milliseconds of the one-position append over the same steps
   * @param windowSteps steps the medians cover
   */
  public record Sample(int step, int context, ModeSpec spec, Scheduler scheduler, double ms, double appendMs,
      int windowSteps) {}

  /** Everything measured; {@code samples} ordered by step, then mode, then scheduler. */
  public record Outcome(BenchRunner.Config config, int steps, List<Sample> samples, double prefillSeconds) {}

  private DecodeSteps() {}

  /**
   * {@code --dtype a,b --decode-steps N}: {@link #run} once per dtype, in the order given, each from
   * the same workload (regenerated from the seed), one cache at a time.
   */
  public static List<Outcome> runEach(BenchRunner.Config c, List<DType> dtypes, int steps, Consumer<String> progress) {
    List<Outcome> out = new ArrayList<>();
    for (DType dt : dtypes) {
      if (dtypes.size() > 1) {
        progress.accept("dtype " + dt.id());
      }
      out.add(run(DtypeComparison.with(c, dt), steps, progress));
    }
    return out;
  }

  /**
   * Adds {@code speedupVsFirstDtype} (the first dtype's ms of the same step, mode and scheduler over
   * this one's) and {@code bytesPerToken} to sample i's JSON object, as plain bench does.
   */
  public static Map<String, Object> withDtypeFields(Map<String, Object> m, Outcome o, Outcome first, int i) {
    m.put("speedupVsFirstDtype", Format.finite(first.samples().get(i).ms() / o.samples().get(i).ms()));
    m.put("bytesPerToken", KvCache.bytesPerPosition(o.config().layout(o.config().context() + o.steps())));
    return m;
  }

  public static Outcome run(BenchRunner.Config c, int steps, Consumer<String> progress) {
    if (steps < 1) {
      throw new UsageException("--decode-steps must be positive: " + steps);
    }
    long capacity = (long) c.context() + steps;
    if (capacity > Integer.MAX_VALUE) {
      throw new UsageException("--context + --decode-steps is too large: " + capacity);
    }
    Workload workload = c.makeWorkload((int) capacity);
    float[] q = workload.query(); // (heads, dim)
    float[] out = new float[c.heads() * c.dim()]; // (heads, dim)
    List<ModeSpec> modes = c.modes();
    List<Scheduler> schedulers = c.schedulers();
    int combos = modes.size() * schedulers.size();
    long[][] nanos = new long[combos][steps]; // (mode x scheduler, step)
    long[] appendNanos = new long[steps];
    double prefillSeconds;
    Resources.requireFits("the KV cache", c.layout((int) capacity));
    try (KvCache cache = KvCache.allocate(c.layout((int) capacity), c.rotation())) {
      Workload.Stream stream = workload.stream();
      progress.accept("prefill: " + c.context() + " positions of the " + workload.name() + " workload");
      long t0 = System.nanoTime();
      stream.append(cache, 0, c.context());
      prefillSeconds = (System.nanoTime() - t0) / 1e9;
      List<DecodeAttention> attentions = new ArrayList<>();
      try {
        for (Scheduler s : schedulers) {
          attentions.add(DecodeAttention.create(cache, c.heads(), c.threads(), c.scale(), s));
        }
        progress.accept("warm-up: every mode on the prefilled cache");
        Stopwatch warmup = new Stopwatch(10_000_000L, 3, c.maxWarmup(), 1);
        for (int i = 0; i < combos; i++) {
          DecodeAttention a = attentions.get(i % schedulers.size());
          ModeSpec spec = modes.get(i / schedulers.size());
          warmup.time(() -> a.decode(0, q, out, c.context(), spec.config()));
        }
        progress.accept(steps + " decode steps, " + combos + " call(s) per step");
        for (int s = 0; s < steps; s++) {
          long a0 = System.nanoTime();
          stream.append(cache, 0, 1);
          appendNanos[s] = System.nanoTime() - a0;
          int keys = c.context() + s + 1;
          for (int j = 0; j < combos; j++) {
            int i = (j + s) % combos; // rotate: no mode always runs first after the append
            DecodeAttention a = attentions.get(i % schedulers.size());
            ModeSpec spec = modes.get(i / schedulers.size());
            long d0 = System.nanoTime();
            a.decode(0, q, out, keys, spec.config());
            nanos[i][s] = System.nanoTime() - d0;
          }
        }
      } finally {
        for (DecodeAttention a : attentions) {
          a.close();
        }
      }
    }
    int every = Math.max(1, steps / 10);
    List<Sample> samples = new ArrayList<>();
    int from = 0;
    for (int s = 0; s < steps; s++) {
      if ((s + 1) % every != 0 && s != steps - 1) {
        continue;
      }
      double appendMs = medianMs(appendNanos, from, s + 1);
      for (int i = 0; i < combos; i++) {
        samples.add(new Sample(s + 1, c.context() + s + 1, modes.get(i / schedulers.size()),
            schedulers.get(i % schedulers.size()), medianMs(nanos[i], from, s + 1), appendMs, s + 1 - from));
      }
      from = s + 1;
    }
    return new Outcome(c, steps, samples, prefillSeconds);
  }

  private static double medianMs(long[] x, int from, int to) {
    long[] w = Arrays.copyOfRange(x, from, to);
    Arrays.sort(w);
    int n = w.length;
    double median = n % 2 == 1 ? w[n / 2] : (w[n / 2 - 1] + w[n / 2]) / 2.0;
    return median / 1e6;
  }

  /** "exact", or "exact/pipeline" when several schedulers run. */
  public static String curve(Sample s, int schedulers) {
    return schedulers > 1 ? s.spec().id() + "/" + s.scheduler().id() : s.spec().id();
  }

  /** The samples as a table: one row per sampled step, one column per mode (and scheduler). */
  public static String table(Outcome o) {
    var c = o.config();
    int schedulers = c.schedulers().size();
    int combos = c.modes().size() * schedulers;
    List<String> header = new ArrayList<>(List.of("step", "context"));
    for (int i = 0; i < combos; i++) {
      header.add(curve(o.samples().get(i), schedulers) + " ms");
    }
    header.add("append ms");
    Format.Table t = new Format.Table(header.toArray(String[]::new));
    for (int r = 0; r < o.samples().size(); r += combos) {
      List<Object> row = new ArrayList<>();
      Sample first = o.samples().get(r);
      row.add(first.step());
      row.add(first.context());
      for (int i = 0; i < combos; i++) {
        row.add(Format.fixed(o.samples().get(r + i).ms(), 3));
      }
      row.add(Format.fixed(first.appendMs(), 4));
      t.row(row.toArray());
    }
    String shape = "heads=" + c.heads() + " kvHeads=" + c.kvHeads() + " d=" + c.dim() + " " + c.dtype().id()
        + " threads=" + c.threads() + " scheduler=" + Schedulers.ids(c.schedulers()) + " workload=" + c.workload();
    return "decode loop: prefill " + c.context() + " positions, then " + o.steps() + " steps of append + attend, "
        + shape + "\nms per step: median of the steps since the previous row\n" + t;
  }

  /** Latency against context, one line per mode (and scheduler, and dtype when several ran). */
  public static Svg plot(List<Outcome> runs) {
    var c = runs.get(0).config();
    int schedulers = c.schedulers().size();
    int combos = c.modes().size() * schedulers;
    StringBuilder dtypes = new StringBuilder();
    for (Outcome o : runs) {
      dtypes.append(dtypes.length() == 0 ? "" : ",").append(o.config().dtype().id());
    }
    Svg svg = new Svg("decode step latency, " + c.heads() + "/" + c.kvHeads() + " heads, d=" + c.dim() + ", "
        + dtypes + ", " + c.threads() + " thread(s), " + c.workload(), "context (positions attended)",
        "ms per step (median)");
    for (Outcome o : runs) {
      int rows = o.samples().size() / combos;
      for (int i = 0; i < combos; i++) {
        double[] x = new double[rows];
        double[] y = new double[rows];
        for (int r = 0; r < rows; r++) {
          Sample s = o.samples().get(r * combos + i);
          x[r] = s.context();
          y[r] = s.ms();
        }
        String curve = curve(o.samples().get(i), schedulers);
        svg.line(runs.size() > 1 ? o.config().dtype().id() + " " + curve : curve, x, y);
      }
    }
    return svg;
  }
}
