package hflash.bench;

import hflash.io.Trace;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Tables, JSON and the |s_j - s_j+1| histogram for {@code hflash claims}. */
public final class ClaimsReport {

  private ClaimsReport() {}

  public static String text(List<ClaimsAnalysis.Result> results) {
    StringBuilder sb = new StringBuilder();
    for (var r : results) {
      Trace t = r.trace();
      sb.append(t.path().getFileName()).append(": ").append(t.layers()).append(" layers, ").append(t.heads())
          .append(" heads, ").append(t.kvHeads()).append(" kv heads, d=").append(t.dim()).append(", ")
          .append(t.positions()).append(" positions, ").append(t.qPositions()).append(" query rows per layer");
      if (r.config().minPos() > 0) {
        sb.append(", rows at positions >= ").append(r.config().minPos());
      }
      sb.append('\n');
    }
    boolean regions = results.stream().anyMatch(r -> r.groups().get(0).sinksWindow.size() > 0);
    Format.Table conc = regions
        ? new Format.Table("trace:group", "rows", "top1%", "top5%", "top10%", "max-median", "sinks+window", "clusters")
        : new Format.Table("trace:group", "rows", "top1%", "top5%", "top10%", "max-median");
    Format.Table loc = new Format.Table("trace:group", "|ds| median", "p99", "max", "L_row median");
    Format.Table est = new Format.Table("trace:group", "delta", "r", "finds M", "miss p50", "p99", "max",
        "miss<=1", "miss<=2", "miss<=L_row*delta");
    for (var r : results) {
      String name = r.trace().path().getFileName().toString().replaceFirst("\\.safetensors$", "");
      for (var g : r.groups()) {
        String label = name + ":" + g.name;
        List<Object> row = new ArrayList<>(List.of(label, g.rows, med(g.top1), med(g.top5), med(g.top10),
            Format.fixed(median(g.maxMinusMedian), 2)));
        if (regions) {
          row.add(g.sinksWindow.size() > 0 ? med(g.sinksWindow) : "-");
          row.add(g.clusterMass.size() > 0 ? med(g.clusterMass) : "-");
        }
        conc.row(row.toArray());
        double[] diffs = g.diffs.sorted();
        loc.row(label, num(ClaimsAnalysis.percentile(diffs, 50)), num(ClaimsAnalysis.percentile(diffs, 99)),
            num(diffs.length == 0 ? Double.NaN : diffs[diffs.length - 1]), num(median(g.lRow)));
        for (var e : g.sampled) {
          double[] miss = e.miss.sorted();
          est.row(label, e.delta, e.radius, pct(e.found, g.rows), num(ClaimsAnalysis.percentile(miss, 50)),
              num(ClaimsAnalysis.percentile(miss, 99)), num(miss.length == 0 ? Double.NaN : miss[miss.length - 1]),
              pct(e.withinMargin1, g.rows), pct(e.withinMargin2, g.rows), pct(e.withinLDelta, g.rows));
        }
      }
    }
    sb.append("\nconcentration (medians over rows; topX% = softmax mass of the top X % of keys)\n").append(conc);
    sb.append("\nlocality (|ds| = |s_j - s_j+1| pooled over rows; L_row = max |ds| of a row)\n").append(loc);
    sb.append("\nsampled max (stride delta, refine +-r; miss = M - m~; margins 1 and 2 are the note's delta)\n").append(est);
    return sb.toString();
  }

  public static Map<String, Object> groupJson(ClaimsAnalysis.Group g) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("group", g.name);
    m.put("rows", g.rows);
    Map<String, Object> c = new LinkedHashMap<>();
    c.put("top1", spread(g.top1));
    c.put("top5", spread(g.top5));
    c.put("top10", spread(g.top10));
    c.put("maxMinusMedian", spread(g.maxMinusMedian));
    if (g.sinksWindow.size() > 0) {
      c.put("sinksWindow", spread(g.sinksWindow));
      c.put("clusters", spread(g.clusterMass));
    }
    m.put("concentration", c);
    double[] diffs = g.diffs.sorted();
    Map<String, Object> l = new LinkedHashMap<>();
    l.put("pairs", diffs.length);
    l.put("diffMedian", Format.finite(ClaimsAnalysis.percentile(diffs, 50)));
    l.put("diffP99", Format.finite(ClaimsAnalysis.percentile(diffs, 99)));
    l.put("diffMax", diffs.length == 0 ? null : diffs[diffs.length - 1]);
    l.put("lRow", spread(g.lRow));
    m.put("locality", l);
    List<Object> es = new ArrayList<>();
    for (var e : g.sampled) {
      double[] miss = e.miss.sorted();
      Map<String, Object> x = new LinkedHashMap<>();
      x.put("delta", e.delta);
      x.put("radius", e.radius);
      x.put("foundFraction", frac(e.found, g.rows));
      x.put("missP50", Format.finite(ClaimsAnalysis.percentile(miss, 50)));
      x.put("missP99", Format.finite(ClaimsAnalysis.percentile(miss, 99)));
      x.put("missMax", miss.length == 0 ? null : miss[miss.length - 1]);
      x.put("withinMargin1", frac(e.withinMargin1, g.rows));
      x.put("withinMargin2", frac(e.withinMargin2, g.rows));
      x.put("withinLRowDelta", frac(e.withinLDelta, g.rows));
      es.add(x);
    }
    m.put("sampled", es);
    return m;
  }

  /**
   * Histogram of |s_j - s_j+1| over log-spaced bins, one curve per trace (per head type too when there
   * is one trace), the margins 1 and 2 marked.
   */
  public static Svg histogram(List<ClaimsAnalysis.Result> results) {
    double lo = Double.POSITIVE_INFINITY;
    double hi = 0;
    List<String> names = new ArrayList<>();
    List<double[]> data = new ArrayList<>();
    for (var r : results) {
      String name = r.trace().path().getFileName().toString().replaceFirst("\\.safetensors$", "");
      for (var g : r.groups()) {
        double[] d = g.diffs.sorted();
        if (d.length == 0 || (results.size() > 1 && !g.name.equals("all"))) {
          continue; // head types get their own curves only when one trace is plotted
        }
        lo = Math.min(lo, Math.max(ClaimsAnalysis.percentile(d, 0.1), 1e-6));
        hi = Math.max(hi, d[d.length - 1]);
        names.add(r.groups().size() == 1 ? name : name + ":" + g.name);
        data.add(d);
      }
    }
    Svg svg = new Svg("neighbour score differences |s_j - s_j+1|", "|s_j - s_j+1| (log bins, 10 per decade)",
        "fraction of neighbour pairs").xAxis(Svg.Axis.LOG);
    if (data.isEmpty()) {
      return svg;
    }
    double a = Math.floor(Math.log10(lo));
    double b = Math.ceil(Math.log10(Math.max(hi, lo * 10)));
    int bins = (int) Math.round((b - a) * 10);
    for (int i = 0; i < data.size(); i++) {
      double[] d = data.get(i);
      double[] x = new double[bins];
      double[] y = new double[bins];
      int at = 0;
      // values below the first edge (zeros, tiny differences) are counted in the first bin
      for (int k = 0; k < bins; k++) {
        double edge = Math.pow(10, a + (k + 1) / 10.0);
        int start = at;
        while (at < d.length && (d[at] < edge || k == bins - 1)) {
          at++;
        }
        x[k] = Math.pow(10, a + (k + 0.5) / 10.0);
        y[k] = (at - start) / (double) d.length;
      }
      svg.line(names.get(i), x, y);
    }
    svg.marker(1, "1").marker(2, "2");
    return svg;
  }

  private static Map<String, Object> spread(ClaimsAnalysis.DoubleList list) {
    double[] s = list.sorted();
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("p10", Format.finite(ClaimsAnalysis.percentile(s, 10)));
    m.put("p50", Format.finite(ClaimsAnalysis.percentile(s, 50)));
    m.put("p90", Format.finite(ClaimsAnalysis.percentile(s, 90)));
    m.put("max", s.length == 0 ? null : s[s.length - 1]);
    return m;
  }

  private static double median(ClaimsAnalysis.DoubleList list) {
    return ClaimsAnalysis.percentile(list.sorted(), 50);
  }

  private static String med(ClaimsAnalysis.DoubleList list) {
    return Format.fixed(median(list), 3);
  }

  private static String num(double v) {
    return Double.isNaN(v) ? "-" : Math.abs(v) >= 100 ? Format.fixed(v, 1) : Math.abs(v) >= 1 ? Format.fixed(v, 3)
        : String.format(java.util.Locale.ROOT, "%.3g", v);
  }

  private static String pct(int count, int rows) {
    return rows == 0 ? "-" : Format.fixed(100.0 * count / rows, 1) + "%";
  }

  private static Double frac(int count, int rows) {
    return rows == 0 ? null : count / (double) rows;
  }
}
