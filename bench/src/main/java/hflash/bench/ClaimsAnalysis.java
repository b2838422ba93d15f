package hflash.bench;

import hflash.io.Trace;
import hflash.io.UsageException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The design note's assumptions measured on a trace, in float64, row by row (every layer, query head
 * and query row at or after {@code minPos}; row t sees keys 0..t). Per row, with
 * {@code s_j = scale * q . k_j}:
 *
 * <ul>
 *   <li>concentration: softmax mass of the top ceil(1 %), ceil(5 %), ceil(10 %) of the row's keys, and
 *       {@code max - median} of s;
 *   <li>locality: every {@code |s_j - s_{j+1}|} (pooled over rows) and the row's own constant
 *       {@code L_row = max_j |s_j - s_{j+1}|};
 *   <li>the note's estimator for each (delta, radius): samples at keys 0, delta, 2 delta, ... &le; t,
 *       the first best sample j*, the exact max m~ over [j* - r, j* + r]; whether m~ = M, the miss
 *       {@code M - m~}, and whether the miss stays within the margins 1 and 2 and within
 *       {@code L_row * delta}.
 * </ul>
 *
 * Percentiles interpolate linearly between order statistics (numpy's default), so the numbers are
 * comparable with {@code ../shared/data/traces/trace_stats.py}. Traces written by {@code hflash gen}
 * carry their head types and workload parameters: rows are then also grouped by head type and the
 * mass on the sinks + recent window and on the clusters is reported.
 */
public final class ClaimsAnalysis {

  /** The analysis settings. */
  public record Config(int[] deltas, int[] radii, int minPos) {}

  /** Statistics of one group of rows. */
  public static final class Group {
    final String name;
    int rows;
    final DoubleList top1 = new DoubleList();
    final DoubleList top5 = new DoubleList();
    final DoubleList top10 = new DoubleList();
    final DoubleList maxMinusMedian = new DoubleList();
    final DoubleList sinksWindow = new DoubleList(); // generated traces only
    final DoubleList clusterMass = new DoubleList(); // generated traces only
    final DoubleList diffs = new DoubleList(); // every |s_j - s_{j+1}|
    final DoubleList lRow = new DoubleList();
    final Sampled[] sampled;

    public Group(String name, Config c) {
      this.name = name;
      this.sampled = new Sampled[c.deltas().length * c.radii().length];
      int i = 0;
      for (int d : c.deltas()) {
        for (int r : c.radii()) {
          sampled[i++] = new Sampled(d, r);
        }
      }
    }
  }

  /** The estimator's record for one (delta, radius). */
  public static final class Sampled {
    final int delta;
    final int radius;
    int found;
    int withinMargin1;
    int withinMargin2;
    int withinLDelta;
    final DoubleList miss = new DoubleList();

    public Sampled(int delta, int radius) {
      this.delta = delta;
      this.radius = radius;
    }
  }

  /** Groups of one trace: "all" first, then one per head type when the trace names them. */
  public record Result(Trace trace, Config config, List<Group> groups) {}

  private ClaimsAnalysis() {}

  public static Result analyze(Trace t, Config c) {
    String[] headTypes = headTypes(t);
    StructuredWorkload workload = workload(t);
    Map<String, Group> groups = new LinkedHashMap<>();
    groups.put("all", new Group("all", c));
    if (headTypes != null) {
      for (StructuredWorkload.HeadType ht : StructuredWorkload.HeadType.values()) {
        if (Arrays.asList(headTypes).contains(ht.id())) {
          groups.put(ht.id(), new Group(ht.id(), c));
        }
      }
    }
    int group = t.heads() / t.kvHeads();
    int d = t.dim();
    float[] q = new float[t.heads() * d];
    double[] s = new double[t.positions()];
    double[] sorted = new double[t.positions()];
    for (int layer = 0; layer < t.layers(); layer++) {
      for (int row = 0; row < t.qPositions(); row++) {
        int pos = t.position(row);
        if (pos < c.minPos()) {
          continue;
        }
        t.query(layer, row, q);
        for (int h = 0; h < t.heads(); h++) {
          int g = h / group;
          int n = t.keys(row);
          scores(t, layer, g, q, h * d, n, s);
          Group typed = headTypes == null ? null : groups.get(headTypes[g]);
          RowRegions regions = workload == null ? null : new RowRegions(workload, g);
          addRow(groups.get("all"), s, n, sorted, regions);
          if (typed != null) {
            addRow(typed, s, n, sorted, regions);
          }
        }
      }
    }
    return new Result(t, c, new ArrayList<>(groups.values()));
  }

  /** s[0..n) = scale * q_h . k_j over KV head g of the layer, in float64. */
  private static void scores(Trace t, int layer, int g, float[] q, int qOff, int n, double[] s) {
    int d = t.dim();
    float[] k = t.k();
    int base = (layer * t.kvHeads() + g) * t.positions() * d;
    for (int j = 0; j < n; j++) {
      double acc = 0;
      int ko = base + j * d;
      for (int c = 0; c < d; c++) {
        acc += (double) q[qOff + c] * k[ko + c];
      }
      s[j] = acc * t.scale();
    }
  }

  /** Which keys of a generated trace's KV head are sinks/recent or cluster keys. */
  private record RowRegions(StructuredWorkload w, int g) {}

  private static void addRow(Group grp, double[] s, int n, double[] sorted, RowRegions regions) {
    grp.rows++;
    double max = Double.NEGATIVE_INFINITY;
    for (int j = 0; j < n; j++) {
      max = Math.max(max, s[j]);
    }
    // concentration: sort the scores; exp is monotone, so the top keys are the last ones
    System.arraycopy(s, 0, sorted, 0, n);
    Arrays.sort(sorted, 0, n);
    double median = n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    grp.maxMinusMedian.add(max - median);
    double z = 0;
    double top1 = 0;
    double top5 = 0;
    double top10 = 0;
    int k1 = topCount(n, 0.01);
    int k5 = topCount(n, 0.05);
    int k10 = topCount(n, 0.10);
    for (int i = 0; i < n; i++) { // ascending, so small terms are summed first
      double p = Math.exp(sorted[i] - max);
      z += p;
      int fromTop = n - i; // 1 for the largest
      if (fromTop <= k10) {
        top10 += p;
        if (fromTop <= k5) {
          top5 += p;
          if (fromTop <= k1) {
            top1 += p;
          }
        }
      }
    }
    grp.top1.add(top1 / z);
    grp.top5.add(top5 / z);
    grp.top10.add(top10 / z);
    if (regions != null) {
      double sw = 0;
      double cl = 0;
      for (int j = 0; j < n; j++) {
        StructuredWorkload.Region r = regions.w().region(regions.g(), j);
        double p = Math.exp(s[j] - max);
        if (r == StructuredWorkload.Region.SINK || r == StructuredWorkload.Region.RECENT) {
          sw += p;
        } else if (r == StructuredWorkload.Region.CLUSTER) {
          cl += p;
        }
      }
      grp.sinksWindow.add(sw / z);
      grp.clusterMass.add(cl / z);
    }
    // locality
    double lRow = 0;
    for (int j = 0; j + 1 < n; j++) {
      double dif = Math.abs(s[j] - s[j + 1]);
      grp.diffs.add(dif);
      lRow = Math.max(lRow, dif);
    }
    grp.lRow.add(lRow);
    // the note's estimator
    for (Sampled e : grp.sampled) {
      int jStar = 0;
      for (int j = e.delta; j < n; j += e.delta) {
        if (s[j] > s[jStar]) { // strict: the first best sample, as numpy's argmax
          jStar = j;
        }
      }
      double est = Double.NEGATIVE_INFINITY;
      for (int j = Math.max(0, jStar - e.radius); j <= Math.min(n - 1, jStar + e.radius); j++) {
        est = Math.max(est, s[j]);
      }
      double miss = max - est;
      e.miss.add(miss);
      if (est == max) {
        e.found++;
      }
      if (miss <= 1) {
        e.withinMargin1++;
      }
      if (miss <= 2) {
        e.withinMargin2++;
      }
      if (miss <= lRow * e.delta) {
        e.withinLDelta++;
      }
    }
  }

  /** Keys in the top share {@code f} of a row of n keys: ceil(f * n), at least 1. */
  public static int topCount(int n, double f) {
    return Math.max(1, (int) Math.ceil(f * n - 1e-9));
  }

  /** Head type per KV head from the metadata of a generated trace, or null. */
  public static String[] headTypes(Trace t) {
    String s = t.metadata().get("head_types");
    if (s == null) {
      return null;
    }
    String[] types = s.split(",");
    if (types.length != t.kvHeads()) {
      throw new UsageException("trace " + t.path().getFileName() + ": metadata head_types names "
          + types.length + " KV heads, k has " + t.kvHeads());
    }
    return types;
  }

  /** The generator that wrote a trace, rebuilt from its metadata, or null for other traces. */
  public static StructuredWorkload workload(Trace t) {
    if (!"structured".equals(t.metadata().get("workload"))) {
      return null;
    }
    try {
      StructuredWorkload w = new StructuredWorkload(StructuredWorkload.Params.fromMap(t.metadata()));
      if (w.params().context() != t.positions() || w.params().kvHeads() != t.kvHeads()) {
        return null; // a trace cut or changed after generation: regions no longer apply
      }
      return w;
    } catch (IllegalArgumentException e) {
      return null;
    }
  }

  /** Percentile p (0..100) of sorted values, interpolating linearly (numpy's default); NaN when empty. */
  public static double percentile(double[] sorted, double p) {
    if (sorted.length == 0) {
      return Double.NaN;
    }
    double at = p / 100 * (sorted.length - 1);
    int lo = (int) Math.floor(at);
    int hi = Math.min(sorted.length - 1, lo + 1);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
  }

  /** A growable double array. */
  public static final class DoubleList {
    private double[] a = new double[64];
    private int size;

    public void add(double v) {
      if (size == a.length) {
        a = Arrays.copyOf(a, a.length * 2);
      }
      a[size++] = v;
    }

    public int size() {
      return size;
    }

    /** A sorted copy. */
    public double[] sorted() {
      double[] c = Arrays.copyOf(a, size);
      Arrays.sort(c);
      return c;
    }
  }
}
