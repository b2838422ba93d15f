package hflash.cli;

import hflash.bench.ComputeProbe;
import hflash.bench.Format;
import hflash.bench.StreamProbe;
import hflash.io.UsageException;
import hflash.tiles.TileKernelsProvider;
import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code hflash probe}: the two halves of the roofline on their own, the streaming-read probe and
 * the compute probe, for checking them against the C yardsticks {@code ../shared/tools/readbw.c}
 * and {@code fmapeak.c} on the same machine.
 */
@Command(
    name = "probe",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Measure this machine's roofline as bench does: the fastest streaming read of an off-heap buffer",
      "(GB/s, 1e9 bytes/s) and the best fused multiply-add throughput of register-resident loops at",
      "the kernels' lane width (GFMA/s, 1e9 multiply-adds/s), both with --threads threads."
    })
final class ProbeCommand implements Callable<Integer> {

  @Option(names = "--threads", defaultValue = "1", description = "Threads of both probes (default ${DEFAULT-VALUE}).")
  int threads;

  @Option(names = "--bytes", defaultValue = "1073741824", description = "Stream probe buffer in bytes (default ${DEFAULT-VALUE}).")
  long bytes;

  @Mixin SharedOptions.Json jsonOption;

  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    UsageException.positive("--threads", threads);
    if (bytes <= 0 || bytes % 4096 != 0) {
      throw new UsageException("--bytes must be a positive multiple of 4096: " + bytes);
    }
    double gbps;
    String reader;
    try (StreamProbe probe = new StreamProbe(bytes, threads)) {
      gbps = probe.bestGBps(8, 300_000_000L);
      reader = probe.bestReader();
    }
    ComputeProbe.Result compute = ComputeProbe.measure(threads);
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("threads", threads);
    m.put("kernels", TileKernelsProvider.get().name());
    m.put("nativeLibrary", TileKernelsProvider.get().nativeVariant());
    m.put("nativeLibraryStatus", hflash.tiles.NativeKernels.status());
    m.put("probeGBps", Format.finite(gbps));
    m.put("probeReader", reader);
    m.put("probeBytes", bytes);
    m.put("computeProbeGFmas", Format.finite(compute.gfmas()));
    m.put("computeProbeShape", compute.shape());
    m.put("java", Runtime.version().toString());
    PrintWriter out = spec.commandLine().getOut();
    if (jsonOption.json) {
      out.print(JsonLine.of(m) + "\n");
    } else {
      out.print(new Format.Table("probe", "value")
          .row("kernels", TileKernelsProvider.get().name())
          .row("native decode kernel", hflash.tiles.NativeKernels.status())
          .row("stream read GB/s (" + reader + ", " + Format.bytes(bytes) + ", " + threads + " thread(s))", Format.fixed(gbps, 2))
          .row("FMA GFMA/s (" + compute.shape() + ", " + threads + " thread(s))", Format.fixed(compute.gfmas(), 1))
          + "\n");
    }
    out.flush();
    return 0;
  }
}
