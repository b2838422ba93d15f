package hflash.cli;

import hflash.bench.ErrorBytesPlot;
import hflash.bench.Format;
import hflash.bench.ModeSpec;
import hflash.bench.Schedulers;
import hflash.bench.TraceEval;
import hflash.engine.AttentionMode;
import hflash.engine.Scheduler;
import hflash.io.Trace;
import hflash.io.UsageException;
import hflash.memory.DType;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code hflash eval}: causal decode of every query row of a trace, against float64 and the stored output. */
@Command(
    name = "eval",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Causal decode of every query position of every layer and head of a trace (safetensors: q",
      "[layers, heads, qpos, d], k and v [layers, kvHeads, pos, d], optional o; metadata scale, else",
      "1/sqrt(d)). When q holds fewer positions than k, its rows are the last positions of the context.",
      "relErr is relative L2 over all heads of a row, against float64 attention recomputed from q, k, v.",
      "Bounds and violations are per (row, head), against float64 over the values the cache stores:",
      "a violation is err > bound + 4*err_exact + 1e-5*||ref|| + 1e-7. The oracle opens the tiles a",
      "certified traversal with each tile's true max would open, at --epsilon, in every mode."
    })
final class EvalCommand implements Callable<Integer> {

  /** Tokens per tile unless --tile says otherwise: the shared traces have 512 positions, so 16 tiles. */
  static final int DEFAULT_TILE = TraceEval.DEFAULT_TILE;
  /** The --svg sweep: certified epsilons and budgeted shares. */
  static final List<String> SWEEP_EPSILON = List.of("1e-1", "3e-2", "1e-2", "3e-3", "1e-3", "1e-4");
  static final List<String> SWEEP_TILES = List.of("1%", "2%", "5%", "10%", "20%", "50%");
  /** The --svg sweep of the estimated mode over --max-error. */
  static final List<String> SWEEP_MAX_ERROR = List.of("3e-1", "1e-1", "3e-2", "1e-2", "1e-3");

  @Option(names = "--trace", required = true, paramLabel = "FILE", description = "Trace file (.safetensors).")
  Path trace;

  @Mixin ModeOptions modeOptions;

  @Mixin SharedOptions.Dtype dtypeOption;

  @Mixin SharedOptions.KvRotation rotationOption;

  @Option(names = "--threads", defaultValue = "1", description = "Decode threads (default ${DEFAULT-VALUE}).")
  int threads;

  @Option(
      names = "--scheduler",
      defaultValue = Schedulers.DEFAULT,
      paramLabel = "S",
      description = "serial, splitk or pipeline (needs --threads >= 2); the outputs do not depend on it beyond"
          + " float rounding (default ${DEFAULT-VALUE}).")
  String scheduler;

  @Option(
      names = "--tile",
      defaultValue = "" + DEFAULT_TILE,
      description = "Tokens per cache tile, a multiple of 32 (default ${DEFAULT-VALUE}: 16 tiles for 512 positions).")
  int tile;

  @Mixin SharedOptions.Json jsonOption;

  @Option(
      names = "--svg",
      paramLabel = "FILE",
      description = "Also write an SVG plot of relative error against the share of KV bytes read: every mode,"
          + " certified swept over epsilon " + "1e-1..1e-4, budgeted over 1%%..50%% of tiles, estimated over"
          + " --max-error 3e-1..1e-3.")
  Path svg;

  @Spec CommandSpec spec;

  @Override
  public Integer call() throws IOException {
    DType dtype = dtypeOption.dtype;
    UsageException.positive("--threads", threads);
    Scheduler sched = Schedulers.one(scheduler, threads);
    UsageException.positive("--tile", tile);
    List<ModeSpec> specs = modeOptions.specs();
    double epsilon = modeOptions.epsilon();
    if (!Files.isRegularFile(trace)) {
      throw new UsageException("no such trace file: " + trace);
    }
    if (svg != null) {
      SharedOptions.checkFolder("--svg", svg);
    }
    Trace t = Trace.read(trace);
    List<ModeSpec> all = new ArrayList<>(specs);
    List<ModeSpec> sweep = svg == null ? List.of() : sweep(modeOptions);
    all.addAll(sweep);
    List<TraceEval.ModeResult> results = TraceEval.run(t, all, epsilon, dtype, threads, sched, tile,
        SharedOptions.KvRotation.of(rotationOption.hadamard(), t.dim()));
    List<TraceEval.ModeResult> shown = results.subList(0, specs.size());
    if (svg != null) {
      String plot = plot(t, results.subList(specs.size(), results.size()));
      Files.writeString(svg, plot, StandardCharsets.UTF_8);
    }
    PrintWriter out = spec.commandLine().getOut();
    String warning = storedOutputWarning(t, results);
    if (warning != null) {
      PrintWriter err = spec.commandLine().getErr();
      err.println("hflash eval: warning: " + warning);
      err.flush();
    }
    if (jsonOption.json) {
      Map<String, Object> m = toJson(t, dtype, shown);
      m.put("tileTokens", tile);
      m.put("oracleEpsilon", epsilon);
      m.put("threads", threads);
      m.put("scheduler", sched.id());
      if (svg != null) {
        m.put("svg", svg.toString());
      }
      out.println(JsonLine.of(m));
    } else {
      out.println(describe(t) + ", " + dtype.id() + " cache, tiles of " + tile + ", " + threads + " thread(s), "
          + sched.id());
      out.println(masking(t));
      for (var r : shown) {
        out.print(table(r, epsilon));
      }
      if (svg != null) {
        out.println("wrote " + svg);
      }
    }
    out.flush();
    return 0;
  }

  /** The --svg points: exact and sampled once, certified per epsilon, budgeted per share. */
  static List<ModeSpec> sweep(ModeOptions options) {
    List<ModeSpec> sweep = new ArrayList<>();
    for (ModeSpec s : options.specsOf("exact", "sampled")) {
      sweep.add(s);
    }
    for (String e : SWEEP_EPSILON) {
      sweep.add(ModeOptions.certified(e));
    }
    for (String k : SWEEP_TILES) {
      sweep.add(ModeOptions.budgeted(k, null));
    }
    for (String e : SWEEP_MAX_ERROR) {
      sweep.add(ModeOptions.estimated(e, options.confidence));
    }
    return sweep;
  }

  static String plot(Trace t, List<TraceEval.ModeResult> points) {
    Map<AttentionMode, ErrorBytesPlot.Series> series = new LinkedHashMap<>();
    for (var r : points) {
      var s = series.computeIfAbsent(r.mode(), m -> new ErrorBytesPlot.Series(m.id(), ErrorBytesPlot.color(m)));
      String label = r.spec().pointLabel();
      boolean bounded = r.spec().config().modeConfig().hasErrorBound();
      s.points().add(new ErrorBytesPlot.Point(r.total().bytesFraction(), r.total().headErrMean(),
          bounded ? r.total().boundMean() : Double.NaN, label));
    }
    String title = "relative error vs KV bytes read: " + t.path().getFileName();
    String subtitle = t.layers() + " layers x " + t.qPositions() + " rows, " + t.heads() + " heads, d=" + t.dim()
        + "; solid: measured mean ||out_h - ref_h|| / ||ref_h||, dashed: mean stated bound";
    return ErrorBytesPlot.render(title, subtitle, new ArrayList<>(series.values()));
  }

  /** How much the stored o may differ from the float64 reference before eval warns (relative L2 per row). */
  static final double STORED_TOLERANCE = 1e-3;

  /** The masking line of the text output: which keys each query row attends to, and why. */
  static String masking(Trace t) {
    return t.bidirectional()
        ? "attention: bidirectional (metadata attention=" + t.metadata().get(Trace.ATTENTION_KEY).strip()
            + "): every query row attends to every key"
        : "attention: causal: each query row attends to the keys up to its own position";
  }

  /**
   * One line when the trace's stored o differs from float64 attention of its own q, k, v by more
   * than {@link #STORED_TOLERANCE} in some row (a masking the trace does not declare, or a recording
   * problem), else null. The difference is the same in every mode; the first result carries it.
   */
  static String storedOutputWarning(Trace t, List<TraceEval.ModeResult> results) {
    if (results.isEmpty() || !results.get(0).total().hasStored()) {
      return null;
    }
    double worst = results.get(0).total().storedVsRefMax();
    if (!(worst > STORED_TOLERANCE) && !Double.isNaN(worst)) {
      return null;
    }
    return "the stored o differs from the float64 reference by up to " + Format.sci(worst) + " (relative, > "
        + Format.sci(STORED_TOLERANCE) + ") under " + t.attention() + " masking: the trace's attention may differ"
        + (t.bidirectional() ? "" : " (a bidirectional trace declares metadata attention=bidirectional)")
        + ", so errors against the stored o mean little";
  }

  static String describe(Trace t) {
    return t.path().getFileName() + ": " + t.layers() + " layers, " + t.heads() + " heads, " + t.kvHeads()
        + " kv heads, d=" + t.dim() + ", " + t.positions() + " positions, " + t.qPositions() + " query rows per layer";
  }

  static Map<String, Object> toJson(Trace t, DType dtype, List<TraceEval.ModeResult> results) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("trace", t.path().toString());
    m.put("rows", (long) t.layers() * t.qPositions());
    List<Map<String, Object>> rs = new ArrayList<>();
    for (var r : results) {
      Map<String, Object> e = new LinkedHashMap<>();
      e.put("mode", r.spec().id());
      e.putAll(stats(r.total()));
      e.put("label", r.spec().label());
      e.put("maxErrorTarget", Format.finite(r.spec().maxError()));
      e.putAll(r.spec().parameters());
      List<Map<String, Object>> layers = new ArrayList<>();
      for (int i = 0; i < r.layers().size(); i++) {
        Map<String, Object> l = new LinkedHashMap<>();
        l.put("layer", i);
        l.putAll(stats(r.layers().get(i)));
        layers.add(l);
      }
      e.put("perLayer", layers);
      rs.add(e);
    }
    m.put("results", rs);
    m.put("dtype", dtype.id());
    m.put("layers", t.layers());
    m.put("heads", t.heads());
    m.put("kvHeads", t.kvHeads());
    m.put("dim", t.dim());
    m.put("positions", t.positions());
    m.put("queryPositions", t.qPositions());
    m.put("scale", t.scale());
    m.put("hasStoredOutput", t.o() != null);
    m.put("attention", t.attention());
    if (!results.isEmpty() && results.get(0).total().hasStored()) {
      double worst = results.get(0).total().storedVsRefMax();
      m.put("storedVsReferenceMax", Format.finite(worst));
      m.put("storedOutputAgrees", worst <= STORED_TOLERANCE);
    }
    return m;
  }

  /** The contract fields in the order, then extras. */
  private static Map<String, Object> stats(TraceEval.Stats s) {
    Map<String, Object> e = new LinkedHashMap<>();
    e.put("relErrMean", Format.finite(s.mean()));
    e.put("relErrMax", Format.finite(s.max()));
    e.put("boundMean", Format.finite(s.boundMean()));
    e.put("boundMax", Format.finite(s.boundMax()));
    e.put("violations", s.violations());
    e.put("keysFraction", s.keysFraction());
    e.put("bytesFraction", s.bytesFraction());
    e.put("oracleBytesFraction", s.oracleBytesFraction());
    e.put("guardFirings", s.guardFirings());
    e.put("errorBoundMax", Format.finite(s.boundMax()));
    e.put("coverage", s.coverage());
    e.put("oracleRatioMedian", Format.finite(s.oracleRatioMedian()));
    e.put("rows", s.rows());
    e.put("headRelErrMean", Format.finite(s.headErrMean()));
    e.put("headRelErrMax", Format.finite(s.headErrMax()));
    e.put("estimateMissMax", Format.finite(s.missMax()));
    if (s.hasStored()) {
      e.put("relErrVsStoredMean", Format.finite(s.storedMean()));
      e.put("relErrVsStoredMax", Format.finite(s.storedMax()));
      e.put("storedRelErrMax", Format.finite(s.storedVsRefMax()));
    }
    return e;
  }

  /** As {@link #table(TraceEval.ModeResult, double)} without the oracle's epsilon (the demo: exact). */
  static String table(TraceEval.ModeResult r) {
    return table(r, Double.NaN);
  }

  static String table(TraceEval.ModeResult r, double oracleEpsilon) {
    boolean stored = r.total().hasStored();
    boolean approx = !r.spec().isExact();
    List<String> header = new ArrayList<>(List.of("layer", "rows", "relErr mean", "relErr max"));
    if (approx) {
      header.addAll(List.of("bound max", "violations", "bytes", "oracle bytes"));
    }
    if (stored) {
      header.addAll(List.of("vs stored o max", "stored o vs float64 max"));
    }
    Format.Table table = new Format.Table(header.toArray(String[]::new));
    for (int i = 0; i <= r.layers().size(); i++) {
      boolean all = i == r.layers().size();
      TraceEval.Stats s = all ? r.total() : r.layers().get(i);
      List<Object> row = new ArrayList<>(List.of(all ? "all" : String.valueOf(i), s.rows(), Format.sci(s.mean()),
          Format.sci(s.max())));
      if (approx) {
        row.addAll(List.of(Format.sci(s.boundMax()), s.violations(), Format.fixed(s.bytesFraction(), 3),
            Format.fixed(s.oracleBytesFraction(), 3)));
      }
      if (stored) {
        row.addAll(List.of(Format.sci(s.storedMax()), Format.sci(s.storedVsRefMax())));
      }
      table.row(row.toArray());
    }
    TraceEval.Stats t = r.total();
    String head = "mode " + r.spec().label() + " (relErr = ||out - float64|| / ||float64|| per row; keys "
        + Format.fixed(t.keysFraction(), 3) + ", bytes " + Format.fixed(t.bytesFraction(), 3) + " of exact";
    if (approx) {
      String oracle = !Double.isNaN(r.spec().maxError()) ? "output-error oracle at maxError=" + r.spec().param()
          : "oracle at eps=" + ModeSpec.trim(oracleEpsilon);
      head += "; " + oracle + " " + Format.fixed(t.oracleBytesFraction(), 3)
          + ", K+V read / oracle's median over rows " + Format.fixed(t.oracleRatioMedian(), 3)
          + "; bound mean " + Format.sci(t.boundMean()) + " per head; " + t.violations() + " violations; "
          + t.guardFirings() + " guard firings; coverage " + Format.fixed(t.coverage(), 4);
    }
    return head + ")\n" + table;
  }
}
