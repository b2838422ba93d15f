package hflash.cli;

import hflash.bench.BenchRunner;
import hflash.bench.DtypeComparison;
import hflash.bench.Format;
import hflash.memory.DType;
import java.io.PrintWriter;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * {@code bench --dtype a,b,c}: runs {@link DtypeComparison}'s benches one dtype after another and
 * prints each result as it comes (a JSON line, or a row of one table at the end).
 */
final class DtypeTable {

  private DtypeTable() {}

  static void run(BenchRunner.Config base, List<DType> dtypes, boolean json, PrintWriter out,
      Consumer<String> progress) {
    List<BenchRunner.Result> first = null;
    Format.Table table = new Format.Table("dtype", "mode", "scheduler", "median ms", "vs first dtype",
        "bytes/token", "ratio to roofline", "relError");
    for (DType dt : dtypes) {
      progress.accept("dtype " + dt.id());
      List<BenchRunner.Result> rs = BenchRunner.run(DtypeComparison.with(base, dt), progress);
      if (first == null) {
        first = rs;
      }
      for (int i = 0; i < rs.size(); i++) {
        BenchRunner.Result r = rs.get(i);
        Map<String, Object> m = DtypeComparison.withDtypeFields(BenchCommand.toJson(r), r, first.get(i));
        if (json) {
          out.print(JsonLine.of(m) + "\n");
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
}
