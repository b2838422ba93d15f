package hflash.bench;

import hflash.engine.AttentionReport;
import hflash.engine.DecodeAttention;
import hflash.io.UsageException;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * {@code hflash bench --prefill N [--context C]}: one causal prefill call of N query rows after C
 * cached positions, timed in each requested mode, next to the row-by-row path (one decode call per
 * row, what {@code prefill} did before it was tiled) on the same data in the same process, one
 * iteration of each in turn. Above {@link #ROWS_TIMED} rows the row-by-row path is timed on the
 * first {@value #ROWS_TIMED} rows and scaled by the causal pairs (its cost per row grows with the
 * row's prefix, so it is scaled by sum of prefix lengths, not by the row count); the output says so.
 *
 * <p>Roofline accounting: {@code fmas} counts the causal multiply-adds only ({@code 2d + 8} per
 * attended query-head/key pair: score, p.V, exp; masked pairs excluded), {@code ratioToCompute}
 * sets them against the compute probe (register-resident FMA loops at the kernels' width, same
 * thread count), and the K/V bytes the call read against the streaming-read probe.
 */
public final class PrefillBench {

  /** Rows of the row-by-row path timed at most; longer prompts are scaled from these. */
  public static final int ROWS_TIMED = 8192;

  /** Rows whose output is checked against the float64 reference. */
  private static final int CHECKED_ROWS = 4;

  public record Config(List<ModeSpec> modes, int prefill, int context, int heads, int kvHeads, int dim, DType dtype,
      int threads, int tileTokens, long seed, int warmup, int iterations) {

    public Config {
      UsageException.positive("--prefill", prefill);
      if (context < 0) {
        throw new UsageException("--context must be >= 0: " + context);
      }
      ShapeChecks.checkPositive(1, heads, kvHeads, dim);
      ShapeChecks.checkGroups(heads, kvHeads);
      UsageException.positive("--threads", threads);
      UsageException.positive("--iterations", iterations);
      if ((long) context + prefill > Integer.MAX_VALUE / 2) {
        throw new UsageException("--context + --prefill too large: " + context + " + " + prefill);
      }
      modes = List.copyOf(modes);
    }

    /** {@link #ROWS_TIMED}, or {@code -Dhflash.prefillRowsTimed} (tests: the scaling without 8192 decode calls). */
    public int rowsTimed() {
      return Math.min(prefill, Integer.getInteger("hflash.prefillRowsTimed", ROWS_TIMED));
    }
  }

  /**
   * One mode's figures.
   *
   * @param rowsSamples the row-by-row path over the first {@code rowsTimed} rows
   * @param rowsMs the row-by-row path's median for all N rows (scaled when rowsTimed &lt; N)
   * @param relError max over the checked rows of ||out_row - ref_row|| / ||ref_row||, all heads of a row
   */
  public record Result(Config config, ModeSpec spec, Samples samples, Samples rowsSamples, int rowsTimed, double rowsMs,
      long fmas, long kvBytesRead, double relError, int checkedRows, long probeBytes, double probeGBps,
      ComputeProbe.Result computeProbe) {

    public double medianMs() {
      return samples.medianMs();
    }

    public double gflops() {
      return 2.0 * fmas / (medianMs() * 1e6);
    }

    public double ratioToCompute() {
      return fmas / (medianMs() * 1e6) / computeProbe.gfmas();
    }

    public double rowsRatioToCompute() {
      return fmas / (rowsMs * 1e6) / computeProbe.gfmas();
    }

    public double tokensPerSecond() {
      return config.prefill() / (medianMs() / 1e3);
    }

    public double speedupVsRows() {
      return rowsMs / medianMs();
    }

    public double memoryMs() {
      return BenchRunner.memoryMs(kvBytesRead, probeGBps);
    }

    public double computeMs() {
      return BenchRunner.computeMs(fmas, computeProbe);
    }

    public double rooflineMs() {
      return Math.max(memoryMs(), computeMs());
    }

    public boolean rowsScaled() {
      return rowsTimed < config.prefill();
    }
  }

  /** What one mode measured before the shared probes run. */
  private record Measured(ModeSpec spec, Samples samples, Samples rowsSamples, double rowsMs, long kvBytes,
      double relError, int checkedRows) {}

  private PrefillBench() {}

  /** Causal (query position, key) pairs of rows [0, rows) after {@code context} cached positions. */
  public static long pairs(int context, int rows) {
    return (long) rows * context + (long) rows * (rows + 1) / 2;
  }

  public static List<Result> run(Config c, Consumer<String> progress) {
    int n = c.context() + c.prefill();
    int row = c.heads() * c.dim();
    KvCacheLayout layout;
    try {
      layout = new KvCacheLayout(1, c.kvHeads(), c.dim(), n, c.dtype(), c.tileTokens());
    } catch (IllegalArgumentException e) {
      throw new UsageException("cache shape rejected: " + e.getMessage(), e);
    }
    float[] q = new float[Math.multiplyExact(c.prefill(), row)]; // (N, heads, dim)
    SplittableRandom random = new SplittableRandom(c.seed() ^ 0x5eed_f111L);
    for (int i = 0; i < q.length; i++) {
      q[i] = (float) (2 * random.nextDouble() - 1);
    }
    float[] out = new float[q.length];
    int rowsTimed = c.rowsTimed();
    float[] rowsOut = new float[rowsTimed * row];
    float[] qRow = new float[row], oRow = new float[row];
    List<Measured> measured = new ArrayList<>();
    long probeBytes = StreamProbe.probeBytes(2L * n * c.kvHeads() * c.dtype().rowBytes(c.dim()));
    Resources.requireFits("the KV cache", layout);
    try (KvCache cache = KvCache.allocate(layout);
        DecodeAttention a = DecodeAttention.create(cache, c.heads(), c.threads(), (float) (1.0 / Math.sqrt(c.dim())))) {
      Workload.create("random", new Workload.Shape(n, c.heads(), c.kvHeads(), c.dim()), c.seed())
          .fill(cache, 0, progress);
      int[] checked = checkedRows(c.prefill());
      double[][] refs = reference(cache, c, q, checked, progress);
      for (ModeSpec spec : c.modes()) {
        var config = spec.config();
        Runnable tiled = () -> a.prefill(0, q, out, c.context(), c.prefill(), config);
        Runnable rows = () -> {
          for (int i = 0; i < rowsTimed; i++) {
            System.arraycopy(q, i * row, qRow, 0, row);
            a.decode(0, qRow, oRow, c.context() + i + 1, config);
            System.arraycopy(oRow, 0, rowsOut, i * row, row);
          }
        };
        warmUp(a, c, q, config, progress);
        progress.accept("timing prefill " + spec.label() + " (" + c.prefill() + " rows) and the row-by-row path ("
            + rowsTimed + " rows) in turn, " + c.iterations() + " iteration(s)");
        double[] tiledNs = new double[c.iterations()], rowsNs = new double[c.iterations()];
        long kvBytes = 0;
        for (int it = 0; it < c.iterations(); it++) {
          tiledNs[it] = time(tiled);
          kvBytes = a.report().kvBytesRead(); // before the row path overwrites the report; out stays the prefill's
          rowsNs[it] = time(rows);
        }
        double err = 0;
        for (int i = 0; i < checked.length; i++) {
          err = Math.max(err, relError(out, checked[i] * row, refs[i]));
        }
        Samples rowsSamples = new Samples(rowsNs);
        double scale = (double) pairs(c.context(), c.prefill()) / pairs(c.context(), rowsTimed);
        measured.add(new Measured(spec, new Samples(tiledNs), rowsSamples, rowsSamples.medianMs() * scale, kvBytes,
            err, checked.length));
      }
    }
    progress.accept("streaming-read probe over " + Format.bytes(probeBytes) + " with " + c.threads() + " thread(s)");
    double probeGBps;
    try (StreamProbe probe = new StreamProbe(probeBytes, c.threads())) {
      probeGBps = probe.bestGBps(8, 300_000_000L);
    }
    progress.accept("compute probe (register-resident FMA loops) with " + c.threads() + " thread(s)");
    ComputeProbe.Result computeProbe = ComputeProbe.measure(c.threads());
    long fmas = pairs(c.context(), c.prefill()) * c.heads() * (2L * c.dim() + AttentionReport.EXP_FMAS);
    List<Result> results = new ArrayList<>();
    for (Measured m : measured) {
      results.add(new Result(c, m.spec(), m.samples(), m.rowsSamples(), rowsTimed, m.rowsMs(), fmas, m.kvBytes(),
          m.relError(), m.checkedRows(), probeBytes, probeGBps, computeProbe));
    }
    return results;
  }

  /**
   * JIT warm-up on a short prompt (the first 512 rows, and 32 rows of the row path): at least
   * {@code --warmup} rounds and at least {@link Stopwatch#MIN_WARMUP_NANOS} (2 s), at most 30 s. A
   * kernel is called once per tile, so a cold JVM spends its first seconds in slow tiers (measured:
   * the first 4096-row call 4-30x slower than the next); a full call of a long prompt as warm-up
   * would double a run of minutes.
   */
  private static void warmUp(DecodeAttention a, Config c, float[] q, hflash.engine.AttentionConfig config,
      Consumer<String> progress) {
    int rows = Math.min(c.prefill(), 512);
    int row = c.heads() * c.dim();
    float[] wq = java.util.Arrays.copyOf(q, rows * row), wo = new float[rows * row];
    float[] qRow = java.util.Arrays.copyOf(q, row), oRow = new float[row];
    progress.accept("warm-up on " + rows + " rows");
    long start = System.nanoTime();
    for (int round = 0; (round < c.warmup() || System.nanoTime() - start < Stopwatch.MIN_WARMUP_NANOS)
        && System.nanoTime() - start < 30_000_000_000L; round++) {
      a.prefill(0, wq, wo, c.context(), rows, config);
      for (int i = 0; i < Math.min(rows, 32); i++) {
        a.decode(0, qRow, oRow, c.context() + i + 1, config);
      }
    }
  }

  private static double time(Runnable op) {
    long t0 = System.nanoTime();
    op.run();
    return System.nanoTime() - t0;
  }

  /** First, last and two rows between (distinct): the last row has the longest prefix. */
  private static int[] checkedRows(int count) {
    return java.util.stream.IntStream.of(0, count / 3, 2 * count / 3 + 1, count - 1)
        .filter(i -> i < count).distinct().limit(CHECKED_ROWS).toArray();
  }

  /**
   * float64 attention of the checked rows over the values the cache stores, one KV head at a
   * time (its keys and values copied out once), so a long context needs one head's copy on the heap.
   *
   * @return per checked row (heads, dim)
   */
  private static double[][] reference(KvCache cache, Config c, float[] q, int[] checked, Consumer<String> progress) {
    progress.accept("float64 reference for " + checked.length + " rows");
    int d = c.dim(), g = c.heads() / c.kvHeads(), row = c.heads() * d;
    double scale = 1.0 / Math.sqrt(d);
    double[][] refs = new double[checked.length][row];
    int maxKeys = c.context() + checked[checked.length - 1] + 1;
    float[] k = new float[maxKeys * d], v = new float[maxKeys * d];
    double[] s = new double[maxKeys];
    for (int kh = 0; kh < c.kvHeads(); kh++) {
      for (int j = 0; j < maxKeys; j++) {
        for (int x = 0; x < d; x++) {
          k[j * d + x] = cache.key(0, kh, j, x);
          v[j * d + x] = cache.value(0, kh, j, x);
        }
      }
      for (int r = 0; r < checked.length; r++) {
        int keys = c.context() + checked[r] + 1;
        for (int h = kh * g; h < (kh + 1) * g; h++) {
          int qOff = checked[r] * row + h * d;
          double max = Double.NEGATIVE_INFINITY;
          for (int j = 0; j < keys; j++) {
            double dot = 0;
            for (int x = 0; x < d; x++) {
              dot += (double) q[qOff + x] * k[j * d + x];
            }
            s[j] = dot * scale;
            max = Math.max(max, s[j]);
          }
          double sum = 0;
          for (int j = 0; j < keys; j++) {
            s[j] = Math.exp(s[j] - max);
            sum += s[j];
          }
          for (int j = 0; j < keys; j++) {
            double p = s[j] / sum;
            for (int x = 0; x < d; x++) {
              refs[r][h * d + x] += p * v[j * d + x];
            }
          }
        }
      }
    }
    return refs;
  }

  private static double relError(float[] out, int off, double[] ref) {
    double num = 0, den = 0;
    for (int i = 0; i < ref.length; i++) {
      double e = out[off + i] - ref[i];
      num += e * e;
      den += ref[i] * ref[i];
    }
    return den == 0 ? (num == 0 ? 0 : Double.POSITIVE_INFINITY) : Math.sqrt(num / den);
  }

  /** The contract fields first, in the order, then extras. */
  public static Map<String, Object> toJson(Result r) {
    Config c = r.config();
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("mode", r.spec().id());
    m.put("prefill", c.prefill());
    m.put("context", c.context());
    m.put("heads", c.heads());
    m.put("kvHeads", c.kvHeads());
    m.put("dim", c.dim());
    m.put("dtype", c.dtype().id());
    m.put("threads", c.threads());
    m.put("medianMs", r.medianMs());
    m.put("fmas", r.fmas());
    m.put("gflops", Format.finite(r.gflops()));
    m.put("computeProbeGFmas", Format.finite(r.computeProbe().gfmas()));
    m.put("ratioToCompute", Format.finite(r.ratioToCompute()));
    m.put("tokensPerSecond", Format.finite(r.tokensPerSecond()));
    m.put("relError", Format.finite(r.relError()));
    m.put("speedupVsRows", Format.finite(r.speedupVsRows()));
    m.put("p10Ms", r.samples().p10Ms());
    m.put("p90Ms", r.samples().p90Ms());
    m.put("rowsMs", Format.finite(r.rowsMs()));
    m.put("rowsTimed", r.rowsTimed());
    m.put("rowsTimedMedianMs", r.rowsSamples().medianMs());
    m.put("rowsScaled", r.rowsScaled());
    m.put("rowsRatioToCompute", Format.finite(r.rowsRatioToCompute()));
    m.put("kvBytesRead", r.kvBytesRead());
    m.put("probeGBps", Format.finite(r.probeGBps()));
    m.put("memoryMs", Format.finite(r.memoryMs()));
    m.put("computeMs", Format.finite(r.computeMs()));
    m.put("rooflineMs", Format.finite(r.rooflineMs()));
    m.put("ratioToRoofline", Format.finite(r.rooflineMs() / r.medianMs()));
    m.put("limitedBy", r.computeMs() > r.memoryMs() ? "compute" : "memory");
    m.put("checkedRows", r.checkedRows());
    m.put("label", r.spec().label());
    m.put("tileTokens", c.tileTokens());
    m.put("blockRows", r.spec().config().prefillBlockRows());
    m.put("seed", c.seed());
    m.put("iterations", r.samples().count());
    m.put("probeBytes", r.probeBytes());
    m.put("computeProbeShape", r.computeProbe().shape());
    m.put("kernels", hflash.tiles.TileKernelsProvider.get().name());
    m.put("kernelShape", hflash.tiles.TileKernelsProvider.get().shape());
    hflash.tiles.PrefillKernels pk =
        hflash.tiles.PrefillKernels.select(hflash.tiles.TileKernelsProvider.get(), hflash.tiles.TileEncoding.of(c.dtype().id()));
    m.put("prefillKernels", pk == null ? "decode" : pk.name()); // null: the decode kernels
    m.put("java", Runtime.version().toString());
    return m;
  }

  public static String table(Result r) {
    Config c = r.config();
    String shape = "N=" + c.prefill() + " after C=" + c.context() + " heads=" + c.heads() + " kvHeads=" + c.kvHeads()
        + " d=" + c.dim() + " " + c.dtype().id() + " threads=" + c.threads() + " mode=" + r.spec().label();
    Format.Table t = new Format.Table("metric", "value")
        .row("median ms (p10, p90)", Format.fixed(r.medianMs(), 1) + " (" + Format.fixed(r.samples().p10Ms(), 1)
            + ", " + Format.fixed(r.samples().p90Ms(), 1) + ")")
        .row("prompt tokens/s", Format.fixed(r.tokensPerSecond(), 1))
        .row("causal multiply-adds (1e9)", Format.fixed(r.fmas() / 1e9, 2))
        .row("GFLOP/s (2 per multiply-add)", Format.fixed(r.gflops(), 1))
        .row("compute probe GFMA/s (" + r.computeProbe().shape() + ")", Format.fixed(r.computeProbe().gfmas(), 1))
        .row("ratio to compute", Format.fixed(r.ratioToCompute(), 3))
        .row("K/V bytes read, probe GB/s", Format.bytes(r.kvBytesRead()) + ", " + Format.fixed(r.probeGBps(), 2))
        .row("roofline ms (memory, compute)", Format.fixed(r.rooflineMs(), 1) + " (" + Format.fixed(r.memoryMs(), 1)
            + ", " + Format.fixed(r.computeMs(), 1) + ")")
        .row("row-by-row ms" + (r.rowsScaled() ? " (scaled)" : ""), Format.fixed(r.rowsMs(), 1))
        .row("speedup vs row-by-row", Format.fixed(r.speedupVsRows(), 2) + "x")
        .row("relError vs float64 (" + r.checkedRows() + " rows)", Format.sci(r.relError()));
    String note = r.rowsScaled()
        ? "\nrow-by-row path timed on the first " + r.rowsTimed() + " rows (" + Format.fixed(r.rowsSamples().medianMs(), 1)
            + " ms) and scaled by causal pairs to all " + c.prefill() + " rows\n"
        : "\n";
    return "prefill, " + shape + "\n" + t + note;
  }
}
