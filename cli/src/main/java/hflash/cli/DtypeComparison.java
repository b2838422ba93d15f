package hflash.cli;

import hflash.memory.DType;
import hflash.memory.KvCache;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * {@code bench --dtype a,b,c}: the same bench (same workload, seed, modes, schedulers) run once per
 * dtype, in the order given, in one process. Each dtype's cache is filled from the same keys and
 * values (the workload is regenerated from the seed) and freed before the next one. Every JSON line
 * keeps the single-dtype fields and adds {@code speedupVsFirstDtype} (the first dtype's median of
 * the same mode and scheduler over this one's) and {@code bytesPerToken} (K and V bytes per
 * position per layer, sample store and summaries included: {@link KvCache#bytesPerPosition}).
 */
final class DtypeComparison {

  private DtypeComparison() {}

  static void run(BenchRunner.Config base, List<DType> dtypes, boolean json, PrintWriter out,
      Consumer<String> progress) {
    List<BenchRunner.Result> first = null;
    Format.Table table = new Format.Table("dtype", "mode", "scheduler", "median ms", "vs first dtype",
        "bytes/token", "ratio to roofline", "relError");
    for (DType dt : dtypes) {
      progress.accept("dtype " + dt.id());
      List<BenchRunner.Result> rs = BenchRunner.run(with(base, dt), progress);
      if (first == null) {
        first = rs;
      }
      for (int i = 0; i < rs.size(); i++) {
        BenchRunner.Result r = rs.get(i);
        Map<String, Object> m = withDtypeFields(BenchCommand.toJson(r), r, first.get(i));
        if (json) {
          out.print(Format.json(m) + "\n");
          out.flush();
        } else {
          table.row(dt.id(), r.spec().label(), r.scheduler().id(), Format.fixed(r.samples().medianMs(), 3),
              Format.fixed((Double) m.get("speedupVsFirstDtype"), 2) + "x",
              Format.fixed((Double) m.get("bytesPerToken"), 1), Format.fixed(r.ratioToRoofline(), 3),
              Format.sci(r.relError()));
        }
      }
    }
    if (!json) {
      var c = base;
      out.print("decode step by dtype, n=" + c.context() + " heads=" + c.heads() + " kvHeads=" + c.kvHeads() + " d="
          + c.dim() + " threads=" + c.threads() + " workload=" + c.workload()
          + "\nvs first dtype: first dtype's median / this median, same mode and scheduler; bytes/token: K+V per"
          + " position per layer, samples and summaries included\n" + table);
    }
  }

  /** Adds speedupVsFirstDtype (first's median / r's) and bytesPerToken to a bench JSON object. */
  static Map<String, Object> withDtypeFields(Map<String, Object> m, BenchRunner.Result r, BenchRunner.Result first) {
    m.put("speedupVsFirstDtype", Format.finite(first.samples().medianMs() / r.samples().medianMs()));
    m.put("bytesPerToken", KvCache.bytesPerPosition(r.config().layout(r.config().context())));
    m.put("kvRotation", r.config().hadamard() ? "hadamard" : "none");
    return m;
  }

  /** The same bench with another dtype. */
  static BenchRunner.Config with(BenchRunner.Config c, DType dt) {
    return new BenchRunner.Config(new ArrayList<>(c.modes()), c.workload(), c.context(), c.heads(), c.kvHeads(),
        c.dim(), dt, c.threads(), c.schedulers(), c.tileTokens(), c.seed(), c.maxWarmup(), c.iterations(),
        c.oracleEpsilon(), c.hadamard());
  }
}
