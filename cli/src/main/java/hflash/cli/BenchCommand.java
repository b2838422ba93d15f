package hflash.cli;

import hflash.engine.AttentionMode;
import hflash.memory.DType;
import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
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
      "iterations), then --iterations measured; reports median, p10 and p90."
    })
final class BenchCommand implements Callable<Integer> {

  @Option(names = "--context", defaultValue = "32768", description = "Cached positions n (default ${DEFAULT-VALUE}).")
  int context;

  @Option(names = "--heads", defaultValue = "32", description = "Query heads (default ${DEFAULT-VALUE}).")
  int heads;

  @Option(names = "--kv-heads", defaultValue = "8", description = "KV heads (default ${DEFAULT-VALUE}).")
  int kvHeads;

  @Option(names = "--dim", defaultValue = "128", description = "Head dimension d (default ${DEFAULT-VALUE}).")
  int dim;

  @Option(
      names = "--dtype",
      defaultValue = "f32",
      converter = Converters.DTypeConverter.class,
      description = "KV cache element type: f32, bf16 or f16 (default ${DEFAULT-VALUE}).")
  DType dtype;

  @Option(names = "--threads", defaultValue = "1", description = "Decode and probe threads (default ${DEFAULT-VALUE}).")
  int threads;

  @Option(
      names = "--mode",
      defaultValue = "exact",
      converter = Converters.ModeConverter.class,
      description = "Attention mode (default ${DEFAULT-VALUE}).")
  AttentionMode mode;

  @Option(names = "--workload", defaultValue = "random", description = "Key/value generator (default ${DEFAULT-VALUE}).")
  String workload;

  @Option(names = "--tile", defaultValue = "64", description = "Tokens per cache tile (default ${DEFAULT-VALUE}).")
  int tile;

  @Option(names = "--seed", defaultValue = "42", description = "Seed for keys, values and query (default ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--warmup", defaultValue = "10", description = "Most warm-up iterations (default ${DEFAULT-VALUE}).")
  int warmup;

  @Option(names = "--iterations", defaultValue = "15", description = "Measured iterations (default ${DEFAULT-VALUE}).")
  int iterations;

  @Option(names = "--json", description = "Print one JSON object instead of a table.")
  boolean json;

  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    var config =
        new BenchRunner.Config(
            mode, workload, context, heads, kvHeads, dim, dtype, threads, tile, seed, warmup, iterations);
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    BenchRunner.Result r =
        BenchRunner.run(
            config,
            line -> {
              if (!json) {
                err.println("  " + line);
                err.flush();
              }
            });
    if (json) {
      out.println(Format.json(toJson(r)));
    } else {
      out.print(table(r));
    }
    out.flush();
    return 0;
  }

  /** The contract fields first, in the order the issue lists them, then extras. */
  static Map<String, Object> toJson(BenchRunner.Result r) {
    var c = r.config();
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("mode", c.mode().name().toLowerCase(Locale.ROOT));
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
    m.put("tileTokens", c.tileTokens());
    m.put("seed", c.seed());
    m.put("iterations", r.samples().count());
    m.put("warmupIterations", r.warmupIterations());
    m.put("callsPerIteration", r.callsPerIteration());
    m.put("keysScored", r.keysScored());
    m.put("tilesRead", r.tilesRead());
    m.put("probeBytes", r.probeBytes());
    m.put("relErrorHeads", r.relErrorHeads());
    m.put("kernels", hflash.tiles.TileKernelsProvider.get().name());
    m.put("java", Runtime.version().toString());
    return m;
  }

  static String table(BenchRunner.Result r) {
    var c = r.config();
    String shape =
        "n=" + c.context() + " heads=" + c.heads() + " kvHeads=" + c.kvHeads() + " d=" + c.dim() + " " + c.dtype().id()
            + " threads=" + c.threads() + " mode=" + c.mode().name().toLowerCase(Locale.ROOT);
    return "decode step, " + shape + "\n"
        + new Format.Table("metric", "value")
            .row("median ms (p10, p90)",
                Format.fixed(r.samples().medianMs(), 3) + " (" + Format.fixed(r.samples().p10Ms(), 3) + ", "
                    + Format.fixed(r.samples().p90Ms(), 3) + ")")
            .row("KV bytes read", Format.bytes(r.bytesRead()))
            .row("effective GB/s", Format.fixed(r.effectiveGBps(), 2))
            .row("probe GB/s (" + Format.bytes(r.probeBytes()) + ")", Format.fixed(r.probeGBps(), 2))
            .row("ratio to probe", Format.fixed(r.ratioToProbe(), 3))
            .row("relError vs float64 (" + r.relErrorHeads() + " heads)", Format.sci(r.relError()));
  }
}
