package hflash.cli;

import hflash.bench.BenchRunner;
import hflash.bench.Format;
import hflash.bench.Schedulers;
import hflash.bench.TraceEval;
import hflash.io.Trace;
import hflash.io.UsageException;
import hflash.memory.DType;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code hflash demo}: needs no arguments and no network. Exact attention on the embedded real trace
 * (error against float64 per layer), then one synthetic W1 decode step (32 query heads, 8 KV heads,
 * d = 128, n = 32768) with progress and timing, ending with a short table.
 */
@Command(
    name = "demo",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Exact decode attention on the embedded trace (first 256 tokens of stories260K on TinyStories text)",
      "with the error against float64 per layer, then one synthetic W1 decode step (32 query heads,",
      "8 KV heads, d=128, n=32768) with timing and a streaming-read probe. No arguments needed."
    })
final class DemoCommand implements Callable<Integer> {

  /** Class-path location of the embedded trace (copied from data/ into the jar by cli/pom.xml). */
  static final String TRACE_RESOURCE = "/hflash/data/stories260K-seq0-256.safetensors";

  @Option(names = "--context", defaultValue = "32768", description = "Positions of the synthetic step (default ${DEFAULT-VALUE}).")
  int context;

  @Option(
      names = "--dtype",
      defaultValue = "f16",
      converter = Converters.DTypeConverter.class,
      description = "KV element type of the synthetic step: f32, bf16, f16, q8_0 or q4_0 (default ${DEFAULT-VALUE}).")
  DType dtype;

  @Option(names = "--threads", description = "Threads of the synthetic step (default: available processors).")
  Integer threads;

  @Option(
      names = "--scheduler",
      defaultValue = Schedulers.DEFAULT,
      paramLabel = "S",
      description = "Scheduler of the synthetic step: serial, splitk or pipeline (needs 2+ threads) (default ${DEFAULT-VALUE}).")
  String scheduler;

  @Spec CommandSpec spec;

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    int t = threads == null ? Runtime.getRuntime().availableProcessors() : UsageException.positive("--threads", threads);
    var sched = Schedulers.one(scheduler, t);
    out.println("hflash demo: exact decode attention over an off-heap KV cache");
    out.println();

    Path tracePath = extractTrace();
    TraceEval.ModeResult real;
    Trace trace;
    try {
      trace = Trace.read(tracePath);
      out.println("[1/2] real trace: " + EvalCommand.describe(trace).replaceFirst("^[^:]*: ", "stories260K-seq0-256: "));
      out.println("      every query row decoded causally from an f32 cache, compared with float64 attention");
      out.flush();
      real = TraceEval.runExact(trace, DType.F32, 1, 64);
    } finally {
      Files.deleteIfExists(tracePath);
    }
    out.print(indent(EvalCommand.table(real)));
    out.println();

    var config =
        new BenchRunner.Config("random", context, 32, 8, 128, dtype, t, sched, 128, 42, 10, 15);
    out.println("[2/2] synthetic W1 decode step: 32 query heads, 8 KV heads, d=128, n=" + context + ", " + dtype.id()
        + " (" + Format.bytes(config.kvBytes()) + " of K and V), " + t + " thread(s)");
    out.flush();
    long t0 = System.nanoTime();
    BenchRunner.Result w1 =
        BenchRunner.run(
            config,
            line -> {
              out.println("      " + line + String.format(Locale.ROOT, "  [%.1f s]", (System.nanoTime() - t0) / 1e9));
              out.flush();
            }).get(0);
    out.print(indent(BenchCommand.table(w1)));
    out.println();

    out.println("summary");
    out.print(
        new Format.Table("step", "relErr vs float64", "time", "GB/s")
            .row("stories260K trace, " + real.total().rows() + " rows",
                Format.sci(real.total().max()) + " max", "-", "-")
            .row("W1 n=" + context + " " + dtype.id() + " x" + t + " thr",
                Format.sci(w1.relError()), Format.fixed(w1.samples().medianMs(), 2) + " ms",
                Format.fixed(w1.effectiveGBps(), 1) + " (" + Format.fixed(100 * w1.ratioToProbe(), 0) + "% of probe)"));
    out.println();
    out.println("next: ./hflash bench --help, ./hflash eval --trace FILE, ./hflash test");
    out.flush();
    return 0;
  }

  /** Copies the embedded trace to a temporary file (the reader maps files, not class-path streams). */
  static Path extractTrace() throws IOException {
    try (InputStream in = DemoCommand.class.getResourceAsStream(TRACE_RESOURCE)) {
      if (in == null) {
        throw new IllegalStateException("embedded trace missing from the jar: " + TRACE_RESOURCE + " (rebuild with ./hflash)");
      }
      Path tmp = Files.createTempFile("hflash-demo-", ".safetensors");
      Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
      return tmp;
    }
  }

  private static String indent(String text) {
    return text.replaceAll("(?m)^", "    ");
  }
}
