package hflash.bench;

import hflash.engine.AttentionMode;
import hflash.engine.AttentionReport;
import hflash.engine.DecodeAttention;
import hflash.engine.ReferenceAttention;
import hflash.engine.Scheduler;
import hflash.io.Trace;
import hflash.io.UsageException;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * Decode of every query row of every layer of a trace in one or more modes, compared with
 * float64 attention and with the stored {@code o} when present. Each layer gets its own cache holding
 * every position; row i decodes over the first {@link Trace#keys(int)} keys (its position + 1, or
 * every key when the trace's metadata says its attention is bidirectional), in exact mode first (its
 * per-head error sets the float-rounding slack of the violation test), then once for the oracle, then
 * in every requested mode.
 *
 * <p>Two references:
 *
 * <ul>
 *   <li>{@code relErr} (the original definition, kept): relative L2 over all heads of a row against
 *       float64 attention recomputed from the trace's own q, k, v, so a 16-bit cache's rounding counts
 *       as error;
 *   <li>bounds and violations: per (row, head) against float64 attention over the values the cache
 *       stores ({@link ReferenceAttention#decode(KvCache, int, float[], int, int, double)}), since the
 *       engine's bound covers the keys it skipped, not the cache's rounding. For f32 both are the same.
 * </ul>
 */
public final class TraceEval {

  /** Keys per tile of {@code eval} by default. */
  public static final int DEFAULT_TILE = 32;

  /** Error, bound and traffic statistics over a set of rows. */
  public static final class Stats {
    int rows;
    double sum;
    double max;
    double storedSum;
    double storedMax;
    double storedVsRefMax;
    boolean hasStored;
    long keysScored;
    long keysExact;
    long bytesRead;
    long bytesExact;
    long oracleBytes;
    long guardFirings;
    long headRows; // (row, head) pairs
    double boundSum; // relative bounds bound_h / ||ref_h||
    double boundMax;
    double headErrSum; // relative errors ||out_h - ref_h|| / ||ref_h||
    double headErrMax;
    long violations;
    double missMax; // sampled: largest true max minus estimate
    double[] oracleRatios = new double[16]; // per row: K+V bytes read / the oracle's K+V bytes
    int oracleRatioCount;

    /** rows evaluated. */
    public int rows() {
      return rows;
    }

    /** largest relative error of a row. */
    public double max() {
      return max;
    }

    /** largest relative error against the stored o. */
    public double storedMax() {
      return storedMax;
    }

    /** largest relative difference of the stored o from the float64 reference. */
    public double storedVsRefMax() {
      return storedVsRefMax;
    }

    /** true when the trace stores o. */
    public boolean hasStored() {
      return hasStored;
    }

    /** sampled: guard firings. */
    public long guardFirings() {
      return guardFirings;
    }

    /** largest relative bound. */
    public double boundMax() {
      return boundMax;
    }

    /** largest relative error of a head. */
    public double headErrMax() {
      return headErrMax;
    }

    /** rows whose error exceeds the stated bound plus slack. */
    public long violations() {
      return violations;
    }

    /** sampled: largest true max minus estimate. */
    public double missMax() {
      return missMax;
    }

    public void addOracleRatio(double r) {
      if (oracleRatioCount == oracleRatios.length) {
        oracleRatios = java.util.Arrays.copyOf(oracleRatios, 2 * oracleRatioCount);
      }
      oracleRatios[oracleRatioCount++] = r;
    }

    /** Median over rows of K+V bytes read over the oracle's (the tightness measure); NaN without rows. */
    public double oracleRatioMedian() {
      if (oracleRatioCount == 0) {
        return Double.NaN;
      }
      double[] x = java.util.Arrays.copyOf(oracleRatios, oracleRatioCount);
      java.util.Arrays.sort(x);
      int n = x.length;
      return n % 2 == 1 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
    }

    public void add(double relErr, double vsStored, double storedVsRef) {
      rows++;
      sum += relErr;
      max = Double.isNaN(relErr) ? Double.NaN : Math.max(max, relErr);
      if (!Double.isNaN(vsStored)) {
        hasStored = true;
        storedSum += vsStored;
        storedMax = Math.max(storedMax, vsStored);
        storedVsRefMax = Math.max(storedVsRefMax, storedVsRef);
      }
    }

    public void addHead(double relErr, double relBound, boolean violation) {
      headRows++;
      headErrSum += relErr;
      headErrMax = Double.isNaN(relErr) ? Double.NaN : Math.max(headErrMax, relErr);
      boundSum += relBound;
      boundMax = Double.isNaN(relBound) ? Double.NaN : Math.max(boundMax, relBound);
      if (violation) {
        violations++;
      }
    }

    public void addAll(Stats s) {
      rows += s.rows;
      sum += s.sum;
      max = Double.isNaN(s.max) ? Double.NaN : Math.max(max, s.max);
      hasStored |= s.hasStored;
      storedSum += s.storedSum;
      storedMax = Math.max(storedMax, s.storedMax);
      storedVsRefMax = Math.max(storedVsRefMax, s.storedVsRefMax);
      keysScored += s.keysScored;
      keysExact += s.keysExact;
      bytesRead += s.bytesRead;
      bytesExact += s.bytesExact;
      oracleBytes += s.oracleBytes;
      guardFirings += s.guardFirings;
      headRows += s.headRows;
      boundSum += s.boundSum;
      boundMax = Double.isNaN(s.boundMax) ? Double.NaN : Math.max(boundMax, s.boundMax);
      headErrSum += s.headErrSum;
      headErrMax = Double.isNaN(s.headErrMax) ? Double.NaN : Math.max(headErrMax, s.headErrMax);
      violations += s.violations;
      missMax = Math.max(missMax, s.missMax);
      for (int i = 0; i < s.oracleRatioCount; i++) {
        addOracleRatio(s.oracleRatios[i]);
      }
    }

    public double mean() {
      return rows == 0 ? 0 : sum / rows;
    }

    public double storedMean() {
      return rows == 0 ? 0 : storedSum / rows;
    }

    public double boundMean() {
      return headRows == 0 ? 0 : boundSum / headRows;
    }

    public double headErrMean() {
      return headRows == 0 ? 0 : headErrSum / headRows;
    }

    public double keysFraction() {
      return keysExact == 0 ? 0 : (double) keysScored / keysExact;
    }

    /** Every byte read (K, V, summaries, samples) over the K+V bytes of exact attention. */
    public double bytesFraction() {
      return bytesExact == 0 ? 0 : (double) bytesRead / bytesExact;
    }

    /** Share of (row, head) pairs whose error is within the stated bound (and target): 1 - violations / pairs. */
    public double coverage() {
      return headRows == 0 ? 1 : 1 - (double) violations / headRows;
    }

    /** K+V bytes the oracle opens over the K+V bytes of exact attention. */
    public double oracleBytesFraction() {
      return bytesExact == 0 ? 0 : (double) oracleBytes / bytesExact;
    }
  }

  /** Result of one mode: overall and per-layer statistics. */
  public record ModeResult(ModeSpec spec, Stats total, List<Stats> layers) {
    public AttentionMode mode() {
      return spec.mode();
    }
  }

  private TraceEval() {}

  /** Exact mode alone (the demo). */
  public static ModeResult runExact(Trace t, DType dtype, int threads, int tileTokens) {
    return run(t, List.of(ModeSpec.EXACT), 1e-3, dtype, threads, Scheduler.SPLITK, tileTokens).get(0);
  }

  /**
   * Every mode of {@code specs} over every row of {@code t}, decoded on {@code threads} threads spread by
   * {@code scheduler}; the oracle runs at {@code oracleEpsilon}.
   * Results come in the order of {@code specs}.
   */
  public static List<ModeResult> run(Trace t, List<ModeSpec> specs, double oracleEpsilon, DType dtype, int threads,
      Scheduler scheduler, int tileTokens) {
    return run(t, specs, oracleEpsilon, dtype, threads, scheduler, tileTokens, null);
  }

  /** As above, with K and V rotated by {@code rotation} before they are cached (null: none). */
  public static List<ModeResult> run(Trace t, List<ModeSpec> specs, double oracleEpsilon, DType dtype, int threads,
      Scheduler scheduler, int tileTokens, hflash.memory.HadamardRotation rotation) {
    int m = specs.size();
    List<List<Stats>> layers = new ArrayList<>();
    for (int i = 0; i < m; i++) {
      layers.add(new ArrayList<>());
    }
    int heads = t.heads(), d = t.dim();
    int rowFloats = heads * d;
    float[] q = new float[rowFloats]; // (heads, dim)
    float[] exact = new float[rowFloats]; // (heads, dim) the exact mode's output
    float[] out = new float[rowFloats]; // (heads, dim)
    float[] stored = new float[rowFloats]; // (heads, dim)
    double[] exactErr = new double[heads]; // exact mode's ||out_h - ref_h|| over the stored values
    KvCacheLayout layout;
    try {
      layout = new KvCacheLayout(1, t.kvHeads(), t.dim(), t.positions(), dtype, tileTokens);
    } catch (IllegalArgumentException e) {
      throw new UsageException("cache shape rejected: " + e.getMessage(), e);
    }
    for (int layer = 0; layer < t.layers(); layer++) {
      Stats[] s = new Stats[m];
      for (int i = 0; i < m; i++) {
        s[i] = new Stats();
      }
      Resources.requireFits("the KV cache", layout);
      try (KvCache cache = KvCache.allocate(layout, rotation);
          DecodeAttention attention = DecodeAttention.create(cache, heads, threads, (float) t.scale(), scheduler)) {
        try {
          cache.append(0, t.positions(), t.positionMajor(t.k(), layer), t.positionMajor(t.v(), layer));
        } catch (IllegalArgumentException e) {
          // the trace's keys or values do not fit this dtype (or are not finite): the user's input
          throw new UsageException("trace " + t.path().getFileName() + ", layer " + layer + ": " + e.getMessage(), e);
        }
        for (int row = 0; row < t.qPositions(); row++) {
          int keys = t.keys(row);
          t.query(layer, row, q);
          double[] ref =
              ReferenceAttention.decode(
                  q, t.prefix(t.k(), layer, keys), t.prefix(t.v(), layer, keys), heads, t.kvHeads(), d, keys,
                  t.scale());
          double[] refStored =
              dtype == DType.F32 && rotation == null ? ref : ReferenceAttention.decode(cache, 0, q, heads, keys, t.scale());
          double[] refNorm = new double[heads];
          for (int h = 0; h < heads; h++) {
            refNorm[h] = norm(refStored, h * d, d);
          }
          decode(attention, t, layer, row, q, exact, keys, ModeSpec.EXACT);
          for (int h = 0; h < heads; h++) {
            exactErr[h] = distance(exact, refStored, h * d, d);
          }
          attention.oracleTiles(0, q, keys, oracleEpsilon);
          long oracleBytes = attention.report().kvBytesRead();
          long bytesExact = 2L * t.kvHeads() * keys * layout.rowBytes();
          boolean hasStored = t.output(layer, row, stored);
          java.util.Map<Double, Long> outputOracle = new java.util.HashMap<>(); // by target, this row
          for (int i = 0; i < m; i++) {
            ModeSpec spec = specs.get(i);
            double target = spec.maxError();
            long specOracle = Double.isNaN(target) ? oracleBytes : outputOracle.computeIfAbsent(target,
                e -> OutputOracle.bytes(cache, 0, q, heads, keys, t.scale(), e));
            float[] o = out;
            AttentionReport report;
            if (spec.isExact()) {
              o = exact;
              decode(attention, t, layer, row, q, o, keys, spec); // again, for the report
            } else {
              decode(attention, t, layer, row, q, o, keys, spec);
            }
            report = attention.report();
            Stats st = s[i];
            st.keysScored += report.keysScored();
            st.keysExact += report.keysInContext();
            st.bytesRead += report.bytesRead();
            st.bytesExact += bytesExact;
            st.oracleBytes += specOracle;
            st.addOracleRatio(specOracle == 0 ? Double.NaN : (double) report.kvBytesRead() / specOracle);
            st.guardFirings += report.guardFirings();
            for (int h = 0; h < heads; h++) {
              double err = distance(o, refStored, h * d, d);
              double bound = report.errorBound(h);
              double slack = 4 * exactErr[h] + 1e-5 * refNorm[h] + 1e-7;
              // with an output target, the target is a promise too: err <= E ||ref_h||
              boolean missed = err > bound + slack || err > target * refNorm[h] + slack;
              st.addHead(ratio(err, refNorm[h]), ratio(bound, refNorm[h]), missed);
              st.missMax = Math.max(st.missMax, report.estimateMiss(h));
            }
            double err = ReferenceAttention.relError(o, ref);
            double vsStored = Double.NaN, storedVsRef = Double.NaN;
            if (hasStored) {
              vsStored = relError(o, stored);
              storedVsRef = ReferenceAttention.relError(stored, ref);
            }
            st.add(err, vsStored, storedVsRef);
          }
        }
      }
      for (int i = 0; i < m; i++) {
        layers.get(i).add(s[i]);
      }
    }
    List<ModeResult> results = new ArrayList<>();
    for (int i = 0; i < m; i++) {
      Stats total = new Stats();
      for (Stats s : layers.get(i)) {
        total.addAll(s);
      }
      results.add(new ModeResult(specs.get(i), total, layers.get(i)));
    }
    return results;
  }

  private static void decode(DecodeAttention attention, Trace t, int layer, int row, float[] q, float[] out, int keys,
      ModeSpec spec) {
    try {
      attention.decode(0, q, out, keys, spec.config());
    } catch (IllegalArgumentException e) {
      // the engine validates q at its boundary: a non-finite query in the trace
      throw new UsageException("trace " + t.path().getFileName() + ", layer " + layer + ", row " + row + ": "
          + e.getMessage(), e);
    }
  }

  /** a / b, with 0 / 0 = 0. */
  public static double ratio(double a, double b) {
    if (b == 0) {
      return a == 0 ? 0 : Double.POSITIVE_INFINITY;
    }
    return a / b;
  }

  public static double norm(double[] x, int off, int n) {
    double s = 0;
    for (int i = off; i < off + n; i++) {
      s += x[i] * x[i];
    }
    return Math.sqrt(s);
  }

  /** ||a[off..off+n) - b[off..off+n)|| in double. */
  public static double distance(float[] a, double[] b, int off, int n) {
    double s = 0;
    for (int i = off; i < off + n; i++) {
      double e = a[i] - b[i];
      s += e * e;
    }
    return Math.sqrt(s);
  }

  /** ||a-b|| / ||b|| in double (0 when both are zero). */
  public static double relError(float[] a, float[] b) {
    double num = 0, den = 0;
    for (int i = 0; i < a.length; i++) {
      double d = (double) a[i] - b[i];
      num += d * d;
      den += (double) b[i] * b[i];
    }
    if (den == 0) {
      return num == 0 ? 0 : Double.POSITIVE_INFINITY;
    }
    return Math.sqrt(num / den);
  }
}
