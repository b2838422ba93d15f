package hflash.cli;

import hflash.engine.AttentionMode;
import hflash.memory.DType;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
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
      "Errors are relative L2 over all heads of a row, against float64 attention recomputed from q, k, v."
    })
final class EvalCommand implements Callable<Integer> {

  @Option(names = "--trace", required = true, paramLabel = "FILE", description = "Trace file (.safetensors).")
  Path trace;

  @Option(
      names = "--mode",
      defaultValue = "exact",
      split = ",",
      converter = Converters.ModeConverter.class,
      description = "Attention mode(s), comma-separated (default ${DEFAULT-VALUE}).")
  List<AttentionMode> modes;

  @Option(
      names = "--dtype",
      defaultValue = "f32",
      converter = Converters.DTypeConverter.class,
      description = "KV cache element type: f32, bf16 or f16 (default ${DEFAULT-VALUE}).")
  DType dtype;

  @Option(names = "--threads", defaultValue = "1", description = "Decode threads (default ${DEFAULT-VALUE}).")
  int threads;

  @Option(names = "--tile", defaultValue = "64", description = "Tokens per cache tile (default ${DEFAULT-VALUE}).")
  int tile;

  @Option(names = "--json", description = "Print one JSON object instead of a table.")
  boolean json;

  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    UsageException.positive("--threads", threads);
    UsageException.positive("--tile", tile);
    if (!Files.isRegularFile(trace)) {
      throw new UsageException("no such trace file: " + trace);
    }
    Trace t = Trace.read(trace);
    List<TraceEval.ModeResult> results = new ArrayList<>();
    for (AttentionMode mode : modes) {
      results.add(TraceEval.run(t, mode, dtype, threads, tile));
    }
    PrintWriter out = spec.commandLine().getOut();
    if (json) {
      out.println(Format.json(toJson(t, dtype, results)));
    } else {
      out.println(describe(t) + ", " + dtype.id() + " cache");
      for (var r : results) {
        out.print(table(r));
      }
    }
    out.flush();
    return 0;
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
      Map<String, Object> e = stats(r.total());
      e.put("mode", r.mode().name().toLowerCase(Locale.ROOT));
      Map<String, Object> ordered = new LinkedHashMap<>();
      ordered.put("mode", e.remove("mode"));
      ordered.putAll(e);
      List<Map<String, Object>> layers = new ArrayList<>();
      for (int i = 0; i < r.layers().size(); i++) {
        Map<String, Object> l = new LinkedHashMap<>();
        l.put("layer", i);
        l.putAll(stats(r.layers().get(i)));
        layers.add(l);
      }
      ordered.put("perLayer", layers);
      rs.add(ordered);
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
    return m;
  }

  private static Map<String, Object> stats(TraceEval.Stats s) {
    Map<String, Object> e = new LinkedHashMap<>();
    e.put("relErrMean", Format.finite(s.mean()));
    e.put("relErrMax", Format.finite(s.max));
    e.put("keysFraction", s.keysFraction());
    e.put("bytesFraction", s.bytesFraction());
    e.put("rows", s.rows);
    if (s.hasStored) {
      e.put("relErrVsStoredMean", Format.finite(s.storedMean()));
      e.put("relErrVsStoredMax", Format.finite(s.storedMax));
      e.put("storedRelErrMax", Format.finite(s.storedVsRefMax));
    }
    return e;
  }

  static String table(TraceEval.ModeResult r) {
    boolean stored = r.total().hasStored;
    Format.Table table =
        stored
            ? new Format.Table("layer", "rows", "relErr mean", "relErr max", "vs stored o max", "stored o vs float64 max")
            : new Format.Table("layer", "rows", "relErr mean", "relErr max");
    for (int i = 0; i <= r.layers().size(); i++) {
      boolean all = i == r.layers().size();
      TraceEval.Stats s = all ? r.total() : r.layers().get(i);
      String name = all ? "all" : String.valueOf(i);
      if (stored) {
        table.row(name, s.rows, Format.sci(s.mean()), Format.sci(s.max), Format.sci(s.storedMax), Format.sci(s.storedVsRefMax));
      } else {
        table.row(name, s.rows, Format.sci(s.mean()), Format.sci(s.max));
      }
    }
    return "mode " + r.mode().name().toLowerCase(Locale.ROOT) + " (relErr = ||out - float64|| / ||float64|| per row; keys "
        + Format.fixed(r.total().keysFraction(), 3) + ", bytes " + Format.fixed(r.total().bytesFraction(), 3)
        + " of exact)\n" + table;
  }
}
