package hflash.cli;

import hflash.bench.BenchReference;
import hflash.bench.BenchRunner;
import hflash.bench.DecodeSteps;
import hflash.bench.DtypeComparison;
import hflash.bench.Format;
import hflash.bench.ModeSpec;
import hflash.bench.PrefillBench;
import hflash.bench.Schedulers;
import hflash.bench.SequencesBench;
import hflash.bench.Workload;
import hflash.engine.Scheduler;
import hflash.io.UsageException;
import hflash.memory.DType;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code hflash bench}: one decode step timed over random keys and values, next to a streaming-read probe. */
@Command(
    name = "bench",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Time one decode step (all query heads of one layer) over a cache of seeded random keys and values,",
      "and in the same run the fastest streaming read over an off-heap buffer (at least 1 GiB or 4x the KV",
      "size, whichever is smaller) with the same thread count. Warm-up until stable (at most --warmup",
      "iterations), then --iterations measured; reports median, p10 and p90. A mode other than exact is",
      "timed together with exact (alternating iterations, same cache and query): speedupVsExact is a",
      "same-run ratio. Several modes (or --mode all) print one result each (--json: one object per line).",
      "Several schedulers (--scheduler all) are timed in turn in the same run and printed as one table,",
      "one row per mode and scheduler. --decode-steps N instead runs a decode loop: a prefill of --context",
      "positions, then N steps that each append one position and attend to all of them in each mode;",
      "it prints ms per step against the context (a row every N/10 steps) and --svg plots it."
    })
final class BenchCommand implements Callable<Integer> {

  @Option(names = "--context", defaultValue = "32768", description = "Cached positions n (default ${DEFAULT-VALUE}).")
  int context;

  @Mixin SharedOptions.Shape shape;

  @Option(
      names = "--dtype",
      defaultValue = "f32",
      split = ",",
      paramLabel = "T",
      converter = Converters.DTypeConverter.class,
      description = "KV cache element type: f32, bf16, f16, q8_0 or q4_0, several comma-separated: filled with the same"
          + " keys and values and timed in turn in the same run (default ${DEFAULT-VALUE}).")
  List<DType> dtypes;

  @Mixin SharedOptions.KvRotation rotationOption;

  @Option(names = "--threads", defaultValue = "1", description = "Decode and probe threads (default ${DEFAULT-VALUE}).")
  int threads;

  @Option(
      names = "--scheduler",
      defaultValue = Schedulers.DEFAULT,
      split = ",",
      paramLabel = "S",
      description = "serial, splitk or pipeline (needs --threads >= 2), several comma-separated, or all: timed in"
          + " turn in the same run (default ${DEFAULT-VALUE}).")
  List<String> scheduler;

  @Mixin ModeOptions modeOptions;

  @Option(
      names = "--workload",
      defaultValue = "random",
      description = "Key, value and query generator: " + Workload.NAMES + " (default ${DEFAULT-VALUE}).")
  String workload;

  @Option(names = "--tile", defaultValue = "128", description = "Tokens per cache tile, a multiple of 32 (default ${DEFAULT-VALUE}: measured fastest for W1 among 32-512; finer tiles prune better in the bounded modes).")
  int tile;

  @Option(names = "--seed", defaultValue = "42", description = "Seed for keys, values and query (default ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--warmup", defaultValue = "10", description = "Most warm-up iterations (default ${DEFAULT-VALUE}).")
  int warmup;

  @Option(names = "--iterations", defaultValue = "15", description = "Measured iterations (default ${DEFAULT-VALUE}).")
  int iterations;

  @Mixin SharedOptions.Json jsonOption;

  @Option(
      names = "--decode-steps",
      arity = "0..1",
      fallbackValue = "" + DEFAULT_DECODE_STEPS,
      paramLabel = "N",
      description = "Decode loop: prefill --context positions, then N steps of append + attend, timed per step"
          + " (N defaults to " + DEFAULT_DECODE_STEPS + " when the flag has no value).")
  Integer decodeSteps;

  @Option(
      names = "--svg",
      paramLabel = "FILE",
      description = "With --decode-steps: also write an SVG plot of ms per step against the context, one line per mode"
          + " (and dtype).")
  Path svg;

  @Option(
      names = "--prefill",
      paramLabel = "N",
      description = "Prompt processing: one causal prefill call of N rows after --context cached positions (default 0"
          + " with this flag), timed next to the row-by-row path (one decode call per row; timed on the first "
          + PrefillBench.ROWS_TIMED + " rows and scaled by causal pairs above that). --iterations counts full calls.")
  Integer prefill;

  @Option(
      names = "--sequences",
      paramLabel = "B",
      description = "Many sequences in one page pool: one sequence of --shared-prefix positions forked B times, --suffix"
          + " positions appended to each, then one batched exact decode step of all B (a cascade: shared pages read"
          + " once) timed in turn with B separate decode calls.")
  Integer sequences;

  @Option(names = "--shared-prefix", paramLabel = "P", defaultValue = "32768",
      description = "With --sequences: positions of the shared prefix (default ${DEFAULT-VALUE}).")
  int sharedPrefix;

  @Option(names = "--suffix", paramLabel = "S", defaultValue = "512",
      description = "With --sequences: private positions appended to each fork (default ${DEFAULT-VALUE}).")
  int suffix;

  @Option(names = "--page-tokens", paramLabel = "N", defaultValue = "0",
      description = "With --sequences: positions per pool page, a multiple of lcm(--tile, 512) (default: that lcm).")
  int pageTokens;

  /** N of a bare {@code --decode-steps}: a few seconds at the default context. */
  static final int DEFAULT_DECODE_STEPS = 64;

  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    List<ModeSpec> modes = modeOptions.specs();
    UsageException.positive("--threads", threads);
    List<Scheduler> schedulers = Schedulers.many(scheduler, threads);
    if (sequences != null) {
      return sequences();
    }
    if (prefill != null) {
      return prefill(modes);
    }
    if (decodeSteps != null) {
      UsageException.positive("--decode-steps", decodeSteps);
    }
    if (svg != null && decodeSteps == null) {
      throw new UsageException("--svg needs --decode-steps (the plot is latency against context)");
    }
    if (svg != null) {
      SharedOptions.checkFolder("--svg", svg);
    }
    boolean json = jsonOption.json;
    var config =
        new BenchRunner.Config(
            modes, workload, context, shape.heads, shape.kvHeads, shape.dim, dtypes.get(0), threads, schedulers,
            tile, seed, warmup, iterations, modeOptions.epsilon(), rotationOption.hadamard());
    config.rotation(); // a usage error now, not after the fill, when the head dim is not a power of two
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    java.util.function.Consumer<String> progress =
        line -> {
          if (!json) {
            err.println("  " + line);
            err.flush();
          }
        };
    if (decodeSteps != null) {
      List<DecodeSteps.Outcome> runs = DecodeSteps.runEach(config, dtypes, decodeSteps, progress);
      if (svg != null) {
        DecodeSteps.plot(runs).write(svg);
      }
      for (DecodeSteps.Outcome o : runs) {
        if (json) {
          for (int i = 0; i < o.samples().size(); i++) {
            out.print(JsonLine.of(DecodeSteps.withDtypeFields(toJson(o, o.samples().get(i)), o, runs.get(0), i)) + "\n");
          }
        } else {
          out.print(DecodeSteps.table(o));
        }
      }
      out.flush();
      return 0;
    }
    if (dtypes.size() > 1) {
      DtypeTable.run(config, dtypes, json, out, progress);
      out.flush();
      return 0;
    }
    List<BenchRunner.Result> results = BenchRunner.run(config, progress);
    if (json) {
      for (BenchRunner.Result r : results) {
        // one object per mode and scheduler, one per line (JSON Lines when there are several)
        out.print(JsonLine.of(DtypeComparison.withDtypeFields(toJson(r), r, r)) + "\n");
      }
    } else if (schedulers.size() > 1) {
      out.print(compareTable(results));
    } else {
      for (BenchRunner.Result r : results) {
        out.print(table(r));
      }
    }
    out.flush();
    return 0;
  }

  /** {@code --prefill N}: {@link PrefillBench}, one result per mode (--json: one object per line). */
  private Integer prefill(List<ModeSpec> modes) {
    var parsed = spec.commandLine().getParseResult();
    for (String other : List.of("--decode-steps", "--svg", "--scheduler", "--workload", "--kv-rotation")) {
      if (parsed.hasMatchedOption(other)) {
        throw new UsageException(other + " does not apply to --prefill");
      }
    }
    if (dtypes.size() > 1) {
      throw new UsageException("--prefill takes one --dtype: " + dtypes.size() + " given");
    }
    int cached = parsed.hasMatchedOption("--context") ? context : 0;
    var config = new PrefillBench.Config(modes, prefill, cached, shape.heads, shape.kvHeads, shape.dim,
        dtypes.get(0), threads, tile, seed, warmup, iterations);
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    boolean json = jsonOption.json;
    for (PrefillBench.Result r : PrefillBench.run(config, line -> {
      if (!json) {
        err.println("  " + line);
        err.flush();
      }
    })) {
      out.print(json ? JsonLine.of(PrefillBench.toJson(r)) + "\n" : PrefillBench.table(r));
    }
    out.flush();
    return 0;
  }

  /** {@code --sequences B}: {@link SequencesBench}, exact mode, one result. */
  private Integer sequences() {
    var parsed = spec.commandLine().getParseResult();
    for (String other : List.of("--decode-steps", "--svg", "--workload", "--kv-rotation", "--prefill",
        "--context", "--mode")) {
      if (parsed.hasMatchedOption(other)) {
        throw new UsageException(other + " does not apply to --sequences");
      }
    }
    if (dtypes.size() > 1) {
      throw new UsageException("--sequences takes one --dtype: " + dtypes.size() + " given");
    }
    if (scheduler.size() != 1) {
      throw new UsageException("--sequences takes one --scheduler: " + scheduler.size() + " given");
    }
    var config = new SequencesBench.Config(sequences, sharedPrefix, suffix, shape.heads, shape.kvHeads, shape.dim,
        dtypes.get(0), threads, tile, pageTokens, seed, warmup, iterations, Schedulers.one(scheduler.get(0), threads));
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    boolean json = jsonOption.json;
    SequencesBench.Result r = SequencesBench.run(config, line -> {
      if (!json) {
        err.println("  " + line);
        err.flush();
      }
    });
    out.print(json ? JsonLine.of(SequencesBench.toJson(r)) + "\n" : SequencesBench.table(r));
    out.flush();
    return 0;
  }

  /** One decode-loop sample: the fields bench --decode-steps promises first, then the shape. */
  static Map<String, Object> toJson(DecodeSteps.Outcome o, DecodeSteps.Sample s) {
    var c = o.config();
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("step", s.step());
    m.put("context", s.context());
    m.put("mode", s.spec().id());
    m.put("ms", s.ms());
    m.put("scheduler", s.scheduler().id());
    m.put("label", s.spec().label());
    m.put("appendMs", s.appendMs());
    m.put("windowSteps", s.windowSteps());
    m.put("steps", o.steps());
    m.put("prefill", c.context());
    m.put("heads", c.heads());
    m.put("kvHeads", c.kvHeads());
    m.put("dim", c.dim());
    m.put("dtype", c.dtype().id());
    m.put("threads", c.threads());
    m.put("workload", c.workload());
    m.put("tileTokens", c.tileTokens());
    m.put("seed", c.seed());
    return m;
  }

  /** Several schedulers: one row per mode and scheduler, timed in turn in the same run. */
  static String compareTable(List<BenchRunner.Result> results) {
    var c = results.get(0).config();
    String shape =
        "n=" + c.context() + " heads=" + c.heads() + " kvHeads=" + c.kvHeads() + " d=" + c.dim() + " " + c.dtype().id()
            + " threads=" + c.threads() + " workload=" + c.workload();
    Format.Table t = new Format.Table("mode", "scheduler", "median ms", "p10", "p90", "GB/s", "vs serial",
        "vs exact", "relErrMax");
    for (BenchRunner.Result r : results) {
      t.row(r.spec().label(), r.scheduler().id(), Format.fixed(r.samples().medianMs(), 3),
          Format.fixed(r.samples().p10Ms(), 3), Format.fixed(r.samples().p90Ms(), 3),
          Format.fixed(r.effectiveGBps(), 2),
          Double.isNaN(r.speedupVsSerial()) ? "-" : Format.fixed(r.speedupVsSerial(), 2) + "x",
          Format.fixed(r.speedupVsExact(), 2) + "x", Format.sci(r.relErrMax()));
    }
    return "decode step by scheduler, " + shape + " (probe " + Format.fixed(results.get(0).probeGBps(), 2)
        + " GB/s)\nvs serial: serial median / this median, same mode; vs exact: exact median / this median, same scheduler\n"
        + t;
  }

  /** The contract fields first, in the order the issues list them, then extras. */
  static Map<String, Object> toJson(BenchRunner.Result r) {
    var c = r.config();
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("mode", r.spec().id());
    m.put("context", c.context());
    m.put("heads", c.heads());
    m.put("kvHeads", c.kvHeads());
    m.put("dim", c.dim());
    m.put("dtype", c.dtype().id());
    m.put("threads", c.threads());
    m.put("medianMs", r.samples().medianMs());
    m.put("p10Ms", r.samples().p10Ms());
    m.put("p90Ms", r.samples().p90Ms());
    m.put("bytesRead", r.bytesRead());
    m.put("effectiveGBps", Format.finite(r.effectiveGBps()));
    m.put("probeGBps", Format.finite(r.probeGBps()));
    m.put("ratioToProbe", Format.finite(r.ratioToProbe()));
    m.put("relError", Format.finite(r.relError()));
    m.put("workload", c.workload());
    m.put("epsilon", Double.isNaN(r.spec().epsilon()) ? c.oracleEpsilon() : r.spec().epsilon());
    m.put("tiles", r.tileBudget() >= 0 ? r.tileBudget() : null);
    m.put("bytesFraction", r.bytesFraction());
    m.put("oracleBytesFraction", r.oracleBytesFraction());
    m.put("speedupVsExact", Format.finite(r.speedupVsExact()));
    m.put("relErrMax", Format.finite(r.relErrMax()));
    m.put("bound", Format.finite(r.bound()));
    m.put("fmas", r.fmas());
    m.put("computeProbeGFmas", Format.finite(r.computeProbe().gfmas()));
    m.put("rooflineMs", Format.finite(r.rooflineMs()));
    m.put("ratioToRoofline", Format.finite(r.ratioToRoofline()));
    m.put("limitedBy", r.limitedBy());
    m.put("maxErrorTarget", Format.finite(r.spec().maxError()));
    m.put("errorBoundMax", Format.finite(r.bound()));
    m.put("coverage", r.coverage());
    m.put("scheduler", r.scheduler().id());
    m.put("speedupVsSerial", Format.finite(r.speedupVsSerial()));
    if (!r.byHeadType().isEmpty()) {
      Map<String, Object> types = new LinkedHashMap<>();
      for (BenchReference.HeadTypeStats t : r.byHeadType()) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("kvHeads", t.kvHeads());
        e.put("checkedKvHeads", t.checkedKvHeads());
        e.put("bytesFraction", Format.finite(t.bytesFraction()));
        e.put("relErrMax", Format.finite(t.relErrMax()));
        e.put("bound", Format.finite(t.bound()));
        e.put("errorBoundMax", Format.finite(t.errorBoundMax()));
        e.put("rhoMax", Format.finite(t.rhoMax()));
        types.put(t.type(), e);
      }
      m.put("byHeadType", types);
    }
    m.put("label", r.spec().label());
    m.put("exactMedianMs", r.exactSamples().medianMs());
    m.put("keysFraction", r.keysFraction());
    m.put("kvBytesRead", r.kvBytesRead());
    m.put("summaryBytesRead", r.summaryBytesRead());
    m.put("sampleBytesRead", r.sampleBytesRead());
    m.put("oracleTiles", r.oracleTiles());
    m.put("guardFirings", r.guardFirings());
    m.put("maxEstimateMiss", Format.finite(r.maxEstimateMiss()));
    if (r.spec().budgetSpelling() != null) {
      m.put("tilesSpec", r.spec().budgetSpelling());
    }
    m.put("tileTokens", c.tileTokens());
    m.put("seed", c.seed());
    m.put("iterations", r.samples().count());
    m.put("warmupIterations", r.warmupIterations());
    m.put("callsPerIteration", r.callsPerIteration());
    m.put("keysScored", r.keysScored());
    m.put("tilesRead", r.tilesRead());
    m.put("probeBytes", r.probeBytes());
    m.put("computeProbeShape", r.computeProbe().shape());
    m.put("memoryMs", Format.finite(r.memoryMs()));
    m.put("computeMs", Format.finite(r.computeMs()));
    m.put("relErrorHeads", r.relErrorHeads());
    m.put("kernels", hflash.tiles.TileKernelsProvider.get().name());
    m.put("kernelShape", hflash.tiles.TileKernelsProvider.get().shape());
    // the native decode kernel's variant (exact's tile runs, the opened tiles of the bounded and estimated
    // modes), or null; the status line says why not
    m.put("nativeLibrary", hflash.tiles.TileKernelsProvider.get().nativeVariant());
    m.put("nativeLibraryStatus", hflash.tiles.NativeKernels.status());
    m.put("java", Runtime.version().toString());
    return m;
  }

  static String table(BenchRunner.Result r) {
    var c = r.config();
    String shape =
        "n=" + c.context() + " heads=" + c.heads() + " kvHeads=" + c.kvHeads() + " d=" + c.dim() + " " + c.dtype().id()
            + " threads=" + c.threads() + " scheduler=" + r.scheduler().id() + " workload=" + c.workload()
            + " mode=" + r.spec().label();
    Format.Table table = new Format.Table("metric", "value")
            .row("median ms (p10, p90)",
                Format.fixed(r.samples().medianMs(), 3) + " (" + Format.fixed(r.samples().p10Ms(), 3) + ", "
                    + Format.fixed(r.samples().p90Ms(), 3) + ")")
            .row("KV bytes read", Format.bytes(r.bytesRead()))
            .row("effective GB/s", Format.fixed(r.effectiveGBps(), 2))
            .row("probe GB/s (" + Format.bytes(r.probeBytes()) + ")", Format.fixed(r.probeGBps(), 2))
            .row("ratio to probe", Format.fixed(r.ratioToProbe(), 3))
            .row("multiply-adds (1e9)", Format.fixed(r.fmas() / 1e9, 4))
            .row("compute probe GFMA/s (" + r.computeProbe().shape() + ")", Format.fixed(r.computeProbe().gfmas(), 1))
            .row("roofline ms (memory, compute)", Format.fixed(r.rooflineMs(), 3) + " (" + Format.fixed(r.memoryMs(), 3)
                + ", " + Format.fixed(r.computeMs(), 3) + "), limited by " + r.limitedBy())
            .row("ratio to roofline", Format.fixed(r.ratioToRoofline(), 3))
            .row("relError vs float64 (" + r.relErrorHeads() + " heads)", Format.sci(r.relError()));
    if (!r.spec().isExact()) {
      table
          .row("exact median ms, same run", Format.fixed(r.exactSamples().medianMs(), 3))
          .row("speedup vs exact", Format.fixed(r.speedupVsExact(), 2) + "x")
          .row("bytes read / exact", Format.fixed(r.bytesFraction(), 4))
          .row("oracle bytes / exact (eps=" + ModeSpec.trim(c.oracleEpsilon()) + ")",
              Format.fixed(r.oracleBytesFraction(), 4))
          .row("keys scored / exact", Format.fixed(r.keysFraction(), 4))
          .row("max head relErr, stated bound", Format.sci(r.relErrMax()) + ", " + Format.sci(r.bound()));
      if (r.spec().config().modeConfig().readsSamples()) {
        table.row("guard firings, max estimate miss", r.guardFirings() + ", " + Format.fixed(r.maxEstimateMiss(), 3));
      }
    }
    for (BenchReference.HeadTypeStats t : r.byHeadType()) {
      table.row(t.type() + " heads (" + t.kvHeads() + " KV, " + t.checkedKvHeads() + " checked): bytes / exact, relErr, bound",
          Format.fixed(t.bytesFraction(), 4) + ", " + Format.sci(t.relErrMax()) + ", " + Format.sci(t.bound()));
    }
    return "decode step, " + shape + "\n" + table;
  }
}
