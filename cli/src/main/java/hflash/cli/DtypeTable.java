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
 * {@code bench --dtype a,b,c}: the dtypes' caches timed in alternating iterations
 * ({@link BenchRunner#runDtypes}), so {@code speedupVsFirstDtype} is a same-window ratio; prints
 * every result (a JSON line each, or one table).
 */
final class DtypeTable {

  private DtypeTable() {}

  static void run(BenchRunner.Config base, List<DType> dtypes, boolean json, PrintWriter out,
      Consumer<String> progress) {
    List<BenchRunner.Result> first = null;
    Format.Table table = new Format.Table("dtype", "mode", "scheduler", "median ms", "vs first dtype",
        "bytes/token", "ratio to roofline", "relError");
    List<List<BenchRunner.Result>> all = BenchRunner.runDtypes(base, dtypes, progress);
    for (int di = 0; di < dtypes.size(); di++) {
      DType dt = dtypes.get(di);
      List<BenchRunner.Result> rs = all.get(di);
      if (first == null) {
        first = rs;
      }
      for (int i = 0; i < rs.size(); i++) {
        BenchRunner.Result r = rs.get(i);
        Map<String, Object> m = DtypeComparison.withDtypeFields(BenchCommand.toJson(r), r, first.get(i));
        m.put("dtypesTimedInTurn", dtypes.stream().map(DType::id).toList()); // one window: alternating iterations
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
