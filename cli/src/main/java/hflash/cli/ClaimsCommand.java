package hflash.cli;

import hflash.bench.ClaimsAnalysis;
import hflash.bench.ClaimsReport;
import hflash.io.Trace;
import hflash.io.UsageException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code hflash claims}: the design note's assumptions (locality, sampled max, concentration) measured on traces. */
@Command(
    name = "claims",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Measure the design note's assumptions on one or more traces, in float64, over every causal row",
      "(every layer, query head and query row; row t sees keys 0..t):",
      "  concentration: softmax mass in the top 1 %%, 5 %%, 10 %% of keys, and max - median score;",
      "  locality: |s_j - s_j+1| (median, p99, max) and each row's own L = max |s_j - s_j+1|;",
      "  sampled max: stride delta, exact refinement within +-r around the best sample; how often it",
      "  finds M, the miss M - m~ (p50, p99, max), and how often the miss stays within the margins 1",
      "  and 2 and within L*delta.",
      "Several --trace options give one table with the traces side by side. Traces written by",
      "'hflash gen' are also reported per head type, with the mass on sinks + window and on clusters."
    })
final class ClaimsCommand implements Callable<Integer> {

  @Option(names = "--trace", required = true, paramLabel = "FILE", description = "Trace file (.safetensors); repeatable.")
  List<Path> traces;

  @Option(names = "--delta", split = ",", defaultValue = "8,16", description = "Sampling strides (default ${DEFAULT-VALUE}).")
  int[] deltas;

  @Option(names = "--radius", split = ",", defaultValue = "32,64", description = "Refinement radii (default ${DEFAULT-VALUE}).")
  int[] radii;

  @Option(names = "--min-pos", defaultValue = "0", description = "Only rows at positions >= this (default ${DEFAULT-VALUE}).")
  int minPos;

  @Option(names = "--json", description = "Print one JSON object instead of tables.")
  boolean json;

  @Option(names = "--svg", paramLabel = "FILE", description = "Write a histogram of |s_j - s_j+1| (one curve per trace and head type).")
  Path svg;

  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    for (int d : deltas) {
      if (d < 1) {
        throw new UsageException("--delta must be >= 1: " + d);
      }
    }
    for (int r : radii) {
      if (r < 0) {
        throw new UsageException("--radius must be >= 0: " + r);
      }
    }
    if (minPos < 0) {
      throw new UsageException("--min-pos must be >= 0: " + minPos);
    }
    for (Path p : traces) {
      if (!Files.isRegularFile(p)) {
        throw new UsageException("no such trace file: " + p);
      }
    }
    if (svg != null && svg.toAbsolutePath().getParent() != null && !Files.isDirectory(svg.toAbsolutePath().getParent())) {
      throw new UsageException("--svg folder does not exist: " + svg.toAbsolutePath().getParent());
    }
    var config = new ClaimsAnalysis.Config(deltas.clone(), radii.clone(), minPos);
    List<ClaimsAnalysis.Result> results = new ArrayList<>();
    for (Path p : traces) {
      results.add(ClaimsAnalysis.analyze(Trace.read(p), config));
    }
    PrintWriter out = spec.commandLine().getOut();
    if (json) {
      out.println(JsonLine.of(toJson(results)));
    } else {
      out.print(ClaimsReport.text(results));
    }
    if (svg != null) {
      ClaimsReport.histogram(results).write(svg);
      if (!json) {
        out.println("wrote " + svg);
      }
    }
    out.flush();
    return 0;
  }

  static Map<String, Object> toJson(List<ClaimsAnalysis.Result> results) {
    Map<String, Object> m = new LinkedHashMap<>();
    List<Object> ts = new ArrayList<>();
    for (var r : results) {
      Map<String, Object> t = new LinkedHashMap<>();
      t.put("trace", r.trace().path().toString());
      t.put("layers", r.trace().layers());
      t.put("heads", r.trace().heads());
      t.put("kvHeads", r.trace().kvHeads());
      t.put("dim", r.trace().dim());
      t.put("positions", r.trace().positions());
      t.put("queryPositions", r.trace().qPositions());
      t.put("minPos", r.config().minPos());
      List<Object> gs = new ArrayList<>();
      for (var g : r.groups()) {
        gs.add(ClaimsReport.groupJson(g));
      }
      t.put("groups", gs);
      ts.add(t);
    }
    m.put("traces", ts);
    return m;
  }
}
