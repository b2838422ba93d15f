package hflash.bench;

import hflash.engine.AttentionReport;
import hflash.engine.DecodeAttention;
import hflash.engine.Scheduler;
import hflash.io.UsageException;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * One decode step over a cache filled by a {@link Workload}, timed in each requested mode and
 * scheduler, checked against the float64 reference on a sample of heads, and set next to a
 * streaming-read probe with the same thread count. For each mode, every scheduler's call and (for a
 * mode other than exact) every scheduler's exact call are timed together on the same cache and
 * query, one iteration of each in turn ({@link Stopwatch#timeAll}), so {@code speedupVsExact} and
 * the ratios between schedulers are same-run ratios. Shared by {@code bench} and the synthetic step
 * of {@code demo}.
 */
public final class BenchRunner {

  public record Config(
      List<ModeSpec> modes,
      String workload,
      int context,
      int heads,
      int kvHeads,
      int dim,
      DType dtype,
      int threads,
      List<Scheduler> schedulers,
      int tileTokens,
      long seed,
      int maxWarmup,
      int iterations,
      double oracleEpsilon,
      boolean hadamard) {

    public Config {
      ShapeChecks.checkPositive(context, heads, kvHeads, dim);
      UsageException.positive("--threads", threads);
      UsageException.positive("--tile", tileTokens);
      UsageException.positive("--iterations", iterations);
      ShapeChecks.checkGroups(heads, kvHeads);
      if (modes.isEmpty()) {
        throw new UsageException("no mode given");
      }
      if (schedulers.isEmpty()) {
        throw new UsageException("no scheduler given");
      }
      if (schedulers.contains(Scheduler.PIPELINE) && threads < 2) {
        throw new UsageException("--scheduler pipeline needs --threads >= 2: " + threads);
      }
      modes = List.copyOf(modes);
      schedulers = List.copyOf(schedulers);
      Workload.checkName(workload);
    }

    /** Exact mode only, oracle at epsilon 1e-3 (the demo). */
    public Config(String workload, int context, int heads, int kvHeads, int dim, DType dtype, int threads,
        Scheduler scheduler, int tileTokens, long seed, int maxWarmup, int iterations) {
      this(List.of(ModeSpec.EXACT), workload, context, heads, kvHeads, dim, dtype, threads, List.of(scheduler),
          tileTokens, seed, maxWarmup, iterations, 1e-3, false);
    }

    /** The K/V rotation of the cache ({@code --kv-rotation}), or null. */
    public hflash.memory.HadamardRotation rotation() {
      return ShapeChecks.rotation(hadamard, dim);
    }

    /** K plus V bytes of the filled cache: what exact attention reads. */
    public long kvBytes() {
      return 2L * context * kvHeads * dtype.rowBytes(dim);
    }

    /** The workload this config names, made for its shape. */
    public Workload makeWorkload(int positions) {
      return Workload.create(workload, new Workload.Shape(positions, heads, kvHeads, dim), seed);
    }

    /** A one-layer cache layout for {@code capacity} positions, or a usage error naming the engine's objection. */
    public KvCacheLayout layout(int capacity) {
      try {
        return new KvCacheLayout(1, kvHeads, dim, capacity, dtype, tileTokens);
      } catch (IllegalArgumentException e) {
        throw new UsageException("cache shape rejected: " + e.getMessage(), e);
      }
    }

    /** The softmax scale of every bench call: 1/sqrt(dim) as a float (what the structured queries assume). */
    public float scale() {
      return (float) (1.0 / Math.sqrt(dim));
    }
  }

  /**
   * One mode's figures under one scheduler.
   *
   * @param exactSamples exact mode timed in the same run (same scheduler), iteration by iteration
   *     with this mode (the same as {@code samples} for exact)
   * @param serialSamples the same mode under the serial scheduler in the same run, or null when
   *     serial was not asked for
   * @param bytesRead every byte of the call: K, V, summaries, samples
   * @param relError max over the checked KV head groups of ||out - ref|| / ||ref|| (the group's heads together)
   * @param relErrMax max over the checked heads of ||out_h - ref_h|| / ||ref_h||
   * @param bound max over the checked heads of errorBound(h) / ||ref_h|| (0 for exact and sampled)
   * @param oracleBytes K+V bytes the oracle (true tile maxima) opens at {@link Config#oracleEpsilon()}
   * @param tileBudget budgeted: tiles per KV head the budget allows, else -1
   * @param byHeadType structured workload: figures per head type, else empty
   */
  public record Result(
      Config config,
      ModeSpec spec,
      Scheduler scheduler,
      Samples samples,
      Samples exactSamples,
      Samples serialSamples,
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
      List<BenchReference.HeadTypeStats> byHeadType,
      long probeBytes,
      double probeGBps,
      double fillSeconds,
      long fmas,
      ComputeProbe.Result computeProbe,
      double coverage) {

    public double effectiveGBps() {
      return bytesRead / (samples.medianMs() * 1e6);
    }

    public double ratioToProbe() {
      return effectiveGBps() / probeGBps;
    }

    /** Least time the bytes can stream at the stream probe's rate, in ms. */
    public double memoryMs() {
      return BenchRunner.memoryMs(bytesRead, probeGBps);
    }

    /** Least time the multiply-adds take at the compute probe's rate, in ms. */
    public double computeMs() {
      return BenchRunner.computeMs(fmas, computeProbe);
    }

    /** The roofline: {@code max(bytesRead / streamProbe, fmas / computeProbe)}, in ms. */
    public double rooflineMs() {
      return Math.max(memoryMs(), computeMs());
    }

    /** Roofline over the measured median: 1 means the call ran at this machine's limit. */
    public double ratioToRoofline() {
      return rooflineMs() / samples.medianMs();
    }

    /** Which half of the roofline is the larger: {@code memory} or {@code compute}. */
    public String limitedBy() {
      return computeMs() > memoryMs() ? "compute" : "memory";
    }

    public double bytesFraction() {
      return (double) bytesRead / config.kvBytes();
    }

    public double oracleBytesFraction() {
      return (double) oracleBytes / config.kvBytes();
    }

    public double keysFraction() {
      return keysInContext == 0 ? 1 : (double) keysScored / keysInContext;
    }

    /** Exact median over this mode's median, both from the same run and scheduler. */
    public double speedupVsExact() {
      return exactSamples.medianMs() / samples.medianMs();
    }

    /** Serial median over this scheduler's median, same mode and run; NaN without serial. */
    public double speedupVsSerial() {
      return serialSamples == null ? Double.NaN : serialSamples.medianMs() / samples.medianMs();
    }
  }

  /** What one (mode, scheduler) measured before the shared probe runs. */
  private record Measured(
      ModeSpec spec, Scheduler scheduler, Stopwatch.Result timing, Samples exactSamples, Samples serialSamples,
      AttentionFigures figures, BenchReference.Errors errors, long oracleTiles, long oracleBytes, int tileBudget,
      List<BenchReference.HeadTypeStats> byHeadType) {}

  /** The report of one call, copied out (the engine reuses its report object). */
  public record AttentionFigures(long bytesRead, long kvBytesRead, long summaryBytesRead, long sampleBytesRead,
      long keysScored, long keysInContext, long tilesRead, long guardFirings, double maxEstimateMiss,
      double[] errorBound, double[] rho, long fmas) {

    public static AttentionFigures of(AttentionReport r, int heads) {
      double[] bounds = new double[heads];
      double[] rho = new double[heads];
      for (int h = 0; h < heads; h++) {
        bounds[h] = r.errorBound(h);
        rho[h] = r.rho(h);
      }
      return new AttentionFigures(r.bytesRead(), r.kvBytesRead(), r.summaryBytesRead(), r.sampleBytesRead(),
          r.keysScored(), r.keysInContext(), r.tilesRead(), r.guardFirings(), r.maxEstimateMiss(), bounds, rho,
          r.fmas());
    }
  }

  private BenchRunner() {}

  /** Runs every mode and scheduler of the config; {@code progress} receives short status lines (may be a no-op). */
  public static List<Result> run(Config c, Consumer<String> progress) {
    return runDtypes(c, List.of(c.dtype()), progress).get(0);
  }

  /**
   * The config's bench once per dtype (the config's own dtype is ignored), every dtype's cache
   * filled from the same workload and held at once, and every (dtype, scheduler) call timed in
   * alternating iterations in one {@link Stopwatch#timeAll} per mode: the ratios between dtypes
   * ({@code speedupVsFirstDtype}) are same-window ratios, as those between schedulers and modes are.
   * Returns one result list per dtype, in the order given.
   */
  public static List<List<Result>> runDtypes(Config base, List<DType> dtypes, Consumer<String> progress) {
    List<Lane> lanes = new ArrayList<>();
    try {
      for (DType dt : dtypes) {
        Config c = withDtype(base, dt);
        KvCacheLayout layout = c.layout(c.context());
        Resources.requireFits("the KV cache" + (dtypes.size() > 1 ? " (" + dt.id() + ")" : ""), layout);
        Lane lane = new Lane(c, c.makeWorkload(c.context()));
        lanes.add(lane);
        lane.open(progress);
      }
      Stopwatch stopwatch = new Stopwatch(10_000_000L, 3, base.maxWarmup(), base.iterations());
      int n = base.context();
      for (ModeSpec spec : base.modes()) {
        boolean exact = spec.isExact();
        List<Runnable> ops = new ArrayList<>();
        for (Lane lane : lanes) {
          for (DecodeAttention a : lane.attentions) {
            ops.add(() -> a.decode(0, lane.q, lane.out, n, spec.config()));
            if (!exact) {
              ops.add(() -> a.decode(0, lane.q, lane.exactOut, n, ModeSpec.EXACT.config()));
            }
          }
        }
        progress.accept("timing " + spec.label() + (exact ? "" : " and exact") + " under "
            + Schedulers.ids(base.schedulers()) + (lanes.size() > 1 ? " for " + lanes.size() + " dtypes" : "")
            + ", in turn (" + base.iterations() + " measured iterations each after warm-up)");
        List<Stopwatch.Result> timings = stopwatch.timeAll(ops);
        int per = (exact ? 1 : 2) * base.schedulers().size();
        for (int li = 0; li < lanes.size(); li++) {
          lanes.get(li).check(spec, timings.subList(li * per, li * per + per), progress);
        }
      }
    } finally {
      for (Lane lane : lanes) {
        lane.close();
      }
    }
    long probeBytes = StreamProbe.probeBytes(withDtype(base, dtypes.get(0)).kvBytes());
    progress.accept("streaming-read probe over " + Format.bytes(probeBytes) + " with " + base.threads() + " thread(s)");
    double probeGBps;
    try (StreamProbe probe = new StreamProbe(probeBytes, base.threads())) {
      probeGBps = probe.bestGBps(8, 300_000_000L);
    }
    progress.accept("compute probe (register-resident FMA loops) with " + base.threads() + " thread(s)");
    ComputeProbe.Result computeProbe = ComputeProbe.measure(base.threads());
    List<List<Result>> all = new ArrayList<>();
    for (Lane lane : lanes) {
      Config c = lane.c;
      List<Result> results = new ArrayList<>();
      for (Measured m : lane.measured) {
        AttentionFigures f = m.figures();
        results.add(new Result(
            c, m.spec(), m.scheduler(), m.timing().samples(), m.exactSamples(), m.serialSamples(),
            m.timing().warmupIterations(), m.timing().callsPerIteration(), f.bytesRead(), f.kvBytesRead(),
            f.summaryBytesRead(), f.sampleBytesRead(), f.keysScored(), f.keysInContext(), f.tilesRead(),
            f.guardFirings(), f.maxEstimateMiss(), m.errors().group(), m.errors().headMax(), m.errors().boundMax(),
            m.errors().heads(), m.oracleTiles(), m.oracleBytes(), m.tileBudget(), m.byHeadType(), probeBytes,
            probeGBps, lane.fillSeconds, f.fmas(), computeProbe, m.errors().coverage()));
      }
      all.add(results);
    }
    return all;
  }

  /** The same bench with another dtype. */
  static Config withDtype(Config c, DType dt) {
    return new Config(new ArrayList<>(c.modes()), c.workload(), c.context(), c.heads(), c.kvHeads(), c.dim(), dt,
        c.threads(), c.schedulers(), c.tileTokens(), c.seed(), c.maxWarmup(), c.iterations(), c.oracleEpsilon(),
        c.hadamard());
  }

  /** One dtype's cache, reference, attentions (one per scheduler) and what was measured on them. */
  private static final class Lane implements AutoCloseable {
    final Config c;
    final Workload workload;
    final float[] q; // (heads, dim)
    final float[] out; // (heads, dim) the mode's output
    final float[] exactOut; // (heads, dim)
    final List<DecodeAttention> attentions = new ArrayList<>();
    final List<Measured> measured = new ArrayList<>();
    KvCache cache;
    BenchReference refs;
    double fillSeconds;

    Lane(Config c, Workload workload) {
      this.c = c;
      this.workload = workload;
      this.q = workload.query();
      this.out = new float[c.heads() * c.dim()];
      this.exactOut = new float[c.heads() * c.dim()];
    }

    void open(Consumer<String> progress) {
      cache = KvCache.allocate(c.layout(c.context()), c.rotation());
      long t0 = System.nanoTime();
      workload.fill(cache, 0, progress);
      fillSeconds = (System.nanoTime() - t0) / 1e9;
      StructuredWorkload.HeadType[] types = BenchReference.headTypes(workload, c.kvHeads());
      refs = BenchReference.of(cache, c, q, types, progress);
      for (Scheduler s : c.schedulers()) {
        attentions.add(DecodeAttention.create(cache, c.heads(), c.threads(), c.scale(), s));
      }
    }

    /** The oracles and the float64 check of one mode, with its timings (per scheduler: the mode's, then exact's). */
    void check(ModeSpec spec, List<Stopwatch.Result> timings, Consumer<String> progress) {
      int n = c.context();
      int totalTiles = (n + c.tileTokens() - 1) / c.tileTokens();
      long tileBytes = 2L * c.tileTokens() * c.layout(n).rowBytes();
      int per = spec.isExact() ? 1 : 2;
      int serial = c.schedulers().indexOf(Scheduler.SERIAL);
      long oracleTiles = attentions.get(0).oracleTiles(0, q, n, c.oracleEpsilon());
      long oracleBytes = attentions.get(0).report().kvBytesRead();
      if (!Double.isNaN(spec.maxError())) { // an output-error target: the output-error oracle
        progress.accept("output-error oracle at maxError=" + spec.param());
        oracleBytes = OutputOracle.bytes(cache, 0, q, c.heads(), n, c.scale(), spec.maxError());
        oracleTiles = oracleBytes / tileBytes;
      }
      refs.replay(spec, progress);
      progress.accept("checking " + spec.id() + (c.dtype() == null ? "" : " (" + c.dtype().id() + ")")
          + " against the float64 reference");
      for (int i = 0; i < attentions.size(); i++) {
        DecodeAttention a = attentions.get(i);
        a.decode(0, q, out, n, spec.config());
        AttentionFigures f = AttentionFigures.of(a.report(), c.heads());
        BenchReference.Errors errors = refs.errors(out, f.errorBound(), spec.maxError());
        Stopwatch.Result timing = timings.get(i * per);
        measured.add(new Measured(spec, c.schedulers().get(i), timing,
            timings.get(i * per + per - 1).samples(), serial < 0 ? null : timings.get(serial * per).samples(),
            f, errors, oracleTiles, oracleBytes, spec.tileBudget(totalTiles, tileBytes, c.kvHeads()),
            refs.byHeadType(spec, errors, f)));
      }
    }

    @Override
    public void close() {
      for (DecodeAttention a : attentions) {
        a.close();
      }
      if (refs != null) {
        refs.close();
      }
      if (cache != null) {
        cache.close();
      }
    }
  }

  /** Least time {@code bytes} can stream at {@code gbps} (1e9 bytes/s), in ms: the roofline's memory side. */
  public static double memoryMs(double bytes, double gbps) {
    return bytes / (gbps * 1e6);
  }

  /** Least time {@code fmas} multiply-adds take at the compute probe's rate, in ms. */
  public static double computeMs(double fmas, ComputeProbe.Result probe) {
    return fmas / (probe.gfmas() * 1e6);
  }
}
