package hflash.cli;

import hflash.engine.AttentionMode;
import hflash.engine.AttentionReport;
import hflash.engine.DecodeAttention;
import hflash.engine.ReferenceAttention;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * One decode step over a cache filled by a {@link Workload}, timed in each requested mode, checked
 * against the float64 reference on a sample of heads, and set next to a streaming-read probe with the
 * same thread count. A mode other than exact is timed together with exact on the same cache and
 * query, iteration by iteration ({@link Stopwatch#timePair}), so {@code speedupVsExact} is a
 * same-run ratio. Shared by {@code bench} and the synthetic step of {@code demo}.
 */
final class BenchRunner {

  /** Below this many multiply-adds per group the reference runs on every KV head group. */
  private static final long ALL_GROUPS_WORK = 1L << 26;

  record Config(
      List<ModeSpec> modes,
      String workload,
      int context,
      int heads,
      int kvHeads,
      int dim,
      DType dtype,
      int threads,
      int tileTokens,
      long seed,
      int maxWarmup,
      int iterations,
      double oracleEpsilon) {

    Config {
      UsageException.positive("--context", context);
      UsageException.positive("--heads", heads);
      UsageException.positive("--kv-heads", kvHeads);
      UsageException.positive("--dim", dim);
      UsageException.positive("--threads", threads);
      UsageException.positive("--tile", tileTokens);
      UsageException.positive("--iterations", iterations);
      if (heads % kvHeads != 0) {
        throw new UsageException("--heads must be a multiple of --kv-heads: " + heads + " % " + kvHeads + " != 0");
      }
      if (modes.isEmpty()) {
        throw new UsageException("no mode given");
      }
      modes = List.copyOf(modes);
      Workload.create(workload, new Workload.Shape(1, 1, 1, 1), seed); // rejects an unknown name early
    }

    /** Exact mode only, oracle at epsilon 1e-3 (the demo). */
    Config(String workload, int context, int heads, int kvHeads, int dim, DType dtype, int threads, int tileTokens,
        long seed, int maxWarmup, int iterations) {
      this(List.of(ModeSpec.EXACT), workload, context, heads, kvHeads, dim, dtype, threads, tileTokens, seed,
          maxWarmup, iterations, 1e-3);
    }

    /** K plus V bytes of the filled cache: what exact attention reads. */
    long kvBytes() {
      return 2L * context * kvHeads * dim * dtype.bytes();
    }
  }

  /**
   * One mode's figures.
   *
   * @param exactSamples exact mode timed in the same run, iteration by iteration with this mode
   *     (the same as {@code samples} for exact)
   * @param bytesRead every byte of the call: K, V, summaries, samples
   * @param relError max over the checked KV head groups of ||out - ref|| / ||ref|| (the group's heads together)
   * @param relErrMax max over the checked heads of ||out_h - ref_h|| / ||ref_h||
   * @param bound max over the checked heads of errorBound(h) / ||ref_h|| (0 for exact and sampled)
   * @param oracleBytes K+V bytes the oracle (true tile maxima) opens at {@link Config#oracleEpsilon()}
   * @param tileBudget budgeted: tiles per KV head the budget allows, else -1
   */
  record Result(
      Config config,
      ModeSpec spec,
      Samples samples,
      Samples exactSamples,
      int warmupIterations,
      long callsPerIteration,
      long bytesRead,
      long kvBytesRead,
      long summaryBytesRead,
      long sampleBytesRead,
      long keysScored,
      long keysInContext,
      long tilesRead,
      long guardFirings,
      double maxEstimateMiss,
      double relError,
      double relErrMax,
      double bound,
      int relErrorHeads,
      long oracleTiles,
      long oracleBytes,
      int tileBudget,
      long probeBytes,
      double probeGBps,
      double fillSeconds) {

    double effectiveGBps() {
      return bytesRead / (samples.medianMs() * 1e6);
    }

    double ratioToProbe() {
      return effectiveGBps() / probeGBps;
    }

    double bytesFraction() {
      return (double) bytesRead / config.kvBytes();
    }

    double oracleBytesFraction() {
      return (double) oracleBytes / config.kvBytes();
    }

    double keysFraction() {
      return keysInContext == 0 ? 1 : (double) keysScored / keysInContext;
    }

    /** Exact median over this mode's median, both from the same run. */
    double speedupVsExact() {
      return exactSamples.medianMs() / samples.medianMs();
    }
  }

  /** What one mode measured before the shared probe runs. */
  private record Measured(
      ModeSpec spec, Stopwatch.Result timing, Samples exactSamples, long bytesRead, long kvBytesRead,
      long summaryBytesRead, long sampleBytesRead, long keysScored, long keysInContext, long tilesRead,
      long guardFirings, double maxEstimateMiss, double[] errors, long oracleTiles, long oracleBytes,
      int tileBudget) {}

  private BenchRunner() {}

  /** Runs every mode of the config; {@code progress} receives short status lines (may be a no-op). */
  static List<Result> run(Config c, Consumer<String> progress) {
    KvCacheLayout layout;
    try {
      layout = new KvCacheLayout(1, c.kvHeads(), c.dim(), c.context(), c.dtype(), c.tileTokens());
    } catch (IllegalArgumentException e) {
      throw new UsageException("cache shape rejected: " + e.getMessage(), e);
    }
    Workload workload =
        Workload.create(c.workload(), new Workload.Shape(c.context(), c.heads(), c.kvHeads(), c.dim()), c.seed());
    float[] q = workload.query(); // (heads, dim)
    float[] out = new float[c.heads() * c.dim()]; // (heads, dim) the mode's output
    float[] exactOut = new float[c.heads() * c.dim()]; // (heads, dim)
    int n = c.context();
    int totalTiles = (n + c.tileTokens() - 1) / c.tileTokens();
    long tileBytes = 2L * c.tileTokens() * layout.rowBytes();
    List<Measured> measured = new ArrayList<>();
    double fillSeconds;
    try (KvCache cache = KvCache.allocate(layout)) {
      long t0 = System.nanoTime();
      workload.fill(cache, 0, progress);
      fillSeconds = (System.nanoTime() - t0) / 1e9;
      References refs = References.of(cache, c, q);
      try (DecodeAttention attention = DecodeAttention.create(cache, c.heads(), c.threads())) {
        Stopwatch stopwatch = new Stopwatch(10_000_000L, 3, c.maxWarmup(), c.iterations());
        Runnable exactOp = () -> attention.decode(0, q, exactOut, n, ModeSpec.EXACT.config());
        for (ModeSpec spec : c.modes()) {
          Stopwatch.Result timing;
          Samples exactSamples;
          if (spec.mode() == AttentionMode.EXACT) {
            progress.accept("timing exact decode (" + c.iterations() + " measured iterations after warm-up)");
            timing = stopwatch.time(exactOp);
            exactSamples = timing.samples();
          } else {
            progress.accept("timing " + spec.label() + " and exact, alternating (" + c.iterations()
                + " measured iterations each after warm-up)");
            Stopwatch.Result[] pair = stopwatch.timePair(() -> attention.decode(0, q, out, n, spec.config()), exactOp);
            timing = pair[0];
            exactSamples = pair[1].samples();
          }
          attention.decode(0, q, out, n, spec.config());
          AttentionReport r = attention.report();
          double[] bounds = new double[c.heads()];
          for (int h = 0; h < bounds.length; h++) {
            bounds[h] = r.errorBound(h);
          }
          long bytesRead = r.bytesRead(), kvBytes = r.kvBytesRead(), summaryBytes = r.summaryBytesRead();
          long sampleBytes = r.sampleBytesRead(), keysScored = r.keysScored(), keysInContext = r.keysInContext();
          long tilesRead = r.tilesRead(), guardFirings = r.guardFirings();
          double miss = r.maxEstimateMiss();
          long oracleTiles = attention.oracleTiles(0, q, n, c.oracleEpsilon());
          long oracleBytes = attention.report().kvBytesRead();
          progress.accept("checking " + spec.id() + " against the float64 reference");
          double[] errors = refs.errors(out, bounds);
          measured.add(new Measured(spec, timing, exactSamples, bytesRead, kvBytes, summaryBytes, sampleBytes,
              keysScored, keysInContext, tilesRead, guardFirings, miss, errors, oracleTiles, oracleBytes,
              spec.tileBudget(totalTiles, tileBytes, c.kvHeads())));
        }
      }
    }
    long probeBytes = StreamProbe.probeBytes(c.kvBytes());
    progress.accept("streaming-read probe over " + Format.bytes(probeBytes) + " with " + c.threads() + " thread(s)");
    double probeGBps;
    try (StreamProbe probe = new StreamProbe(probeBytes, c.threads())) {
      probeGBps = probe.bestGBps(8, 300_000_000L);
    }
    List<Result> results = new ArrayList<>();
    for (Measured m : measured) {
      results.add(new Result(
          c, m.spec(), m.timing().samples(), m.exactSamples(), m.timing().warmupIterations(),
          m.timing().callsPerIteration(), m.bytesRead(), m.kvBytesRead(), m.summaryBytesRead(), m.sampleBytesRead(),
          m.keysScored(), m.keysInContext(), m.tilesRead(), m.guardFirings(), m.maxEstimateMiss(), m.errors()[0],
          m.errors()[1], m.errors()[2], (int) m.errors()[3], m.oracleTiles(), m.oracleBytes(), m.tileBudget(),
          probeBytes, probeGBps, fillSeconds));
    }
    return results;
  }

  /**
   * Float64 attention over the stored (rounded) keys and values for the query heads of every KV
   * head group when cheap, else of the first and the last group; computed once, used by every mode.
   */
  private record References(int[] groups, int g, int d, List<double[]> refs) {

    static References of(KvCache cache, Config c, float[] q) {
      int g = c.heads() / c.kvHeads();
      int n = c.context(), d = c.dim();
      long work = (long) g * n * d;
      int[] groups =
          work * c.kvHeads() <= ALL_GROUPS_WORK
              ? java.util.stream.IntStream.range(0, c.kvHeads()).toArray()
              : (c.kvHeads() == 1 ? new int[] {0} : new int[] {0, c.kvHeads() - 1});
      float[] k = new float[n * d]; // (1, n, d): the stored keys of one KV head
      float[] v = new float[n * d]; // (1, n, d)
      float[] qg = new float[g * d]; // (g, d): the query heads of that group
      List<double[]> refs = new ArrayList<>();
      for (int kvHead : groups) {
        for (int pos = 0; pos < n; pos++) {
          for (int ch = 0; ch < d; ch++) {
            k[pos * d + ch] = cache.key(0, kvHead, pos, ch);
            v[pos * d + ch] = cache.value(0, kvHead, pos, ch);
          }
        }
        System.arraycopy(q, kvHead * g * d, qg, 0, g * d);
        refs.add(ReferenceAttention.decode(qg, k, v, g, 1, d, n, 1.0 / Math.sqrt(d)));
      }
      return new References(groups, g, d, refs);
    }

    /**
     * {relError (group-level max), relErrMax (per-head max), bound (per-head relative max), heads checked}
     * of {@code out} (heads, dim) with per-head absolute bounds {@code bounds}.
     */
    double[] errors(float[] out, double[] bounds) {
      double worstGroup = 0, worstHead = 0, worstBound = 0;
      float[] og = new float[g * d]; // (g, d)
      for (int i = 0; i < groups.length; i++) {
        int kvHead = groups[i];
        double[] ref = refs.get(i);
        System.arraycopy(out, kvHead * g * d, og, 0, g * d);
        double e = ReferenceAttention.relError(og, ref);
        worstGroup = Double.isNaN(e) ? Double.NaN : Math.max(worstGroup, e);
        for (int j = 0; j < g; j++) {
          double norm = TraceEval.norm(ref, j * d, d);
          double he = TraceEval.ratio(TraceEval.distance(og, ref, j * d, d), norm);
          worstHead = Double.isNaN(he) ? Double.NaN : Math.max(worstHead, he);
          worstBound = Math.max(worstBound, TraceEval.ratio(bounds[kvHead * g + j], norm));
        }
      }
      return new double[] {worstGroup, worstHead, worstBound, groups.length * g};
    }
  }
}
