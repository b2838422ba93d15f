package hflash.cli;

import hflash.engine.AttentionMode;
import hflash.engine.DecodeAttention;
import hflash.engine.ReferenceAttention;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * Causal decode of every query row of every layer of a trace, compared with float64 attention
 * recomputed from the trace's q, k and v ({@link ReferenceAttention}) and with the stored {@code o}
 * when present. Each layer gets its own cache holding every position; row i decodes over the first
 * {@code position(i) + 1} keys. Errors are relative L2 over all heads of a row.
 */
final class TraceEval {

  /** Error statistics over a set of rows. */
  static final class Stats {
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

    void add(double relErr, double vsStored, double storedVsRef) {
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

    void addAll(Stats s) {
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
    }

    double mean() {
      return rows == 0 ? 0 : sum / rows;
    }

    double storedMean() {
      return rows == 0 ? 0 : storedSum / rows;
    }

    double keysFraction() {
      return keysExact == 0 ? 0 : (double) keysScored / keysExact;
    }

    double bytesFraction() {
      return bytesExact == 0 ? 0 : (double) bytesRead / bytesExact;
    }
  }

  /** Result of one mode: overall and per-layer statistics. */
  record ModeResult(AttentionMode mode, Stats total, List<Stats> layers) {}

  private TraceEval() {}

  static ModeResult run(Trace t, AttentionMode mode, DType dtype, int threads, int tileTokens) {
    if (mode != AttentionMode.EXACT) {
      throw new UsageException("mode not available in eval yet: " + mode);
    }
    List<Stats> layers = new ArrayList<>();
    Stats total = new Stats();
    int rowFloats = t.heads() * t.dim();
    float[] q = new float[rowFloats]; // (heads, dim)
    float[] out = new float[rowFloats]; // (heads, dim)
    float[] stored = new float[rowFloats]; // (heads, dim)
    for (int layer = 0; layer < t.layers(); layer++) {
      Stats s = new Stats();
      var layout = new KvCacheLayout(1, t.kvHeads(), t.dim(), t.positions(), dtype, tileTokens);
      try (KvCache cache = KvCache.allocate(layout);
          DecodeAttention attention = DecodeAttention.create(cache, t.heads(), threads, (float) t.scale())) {
        try {
          cache.append(0, t.positions(), t.positionMajor(t.k(), layer), t.positionMajor(t.v(), layer));
        } catch (IllegalArgumentException e) {
          // the trace's keys or values do not fit this dtype (or are not finite): the user's input
          throw new UsageException("trace " + t.path().getFileName() + ", layer " + layer + ": " + e.getMessage(), e);
        }
        for (int row = 0; row < t.qPositions(); row++) {
          int keys = t.position(row) + 1;
          t.query(layer, row, q);
          try {
            attention.decode(0, q, out, keys);
          } catch (IllegalArgumentException e) {
            // the engine validates q at its boundary: a non-finite query in the trace
            throw new UsageException("trace " + t.path().getFileName() + ", layer " + layer + ", row " + row + ": "
                + e.getMessage(), e);
          }
          var report = attention.report();
          s.keysScored += report.keysScored();
          s.keysExact += report.keysInContext();
          s.bytesRead += report.kvBytesRead();
          s.bytesExact += 2L * t.kvHeads() * keys * t.dim() * dtype.bytes();
          double[] ref =
              ReferenceAttention.decode(
                  q, t.prefix(t.k(), layer, keys), t.prefix(t.v(), layer, keys),
                  t.heads(), t.kvHeads(), t.dim(), keys, t.scale());
          double err = ReferenceAttention.relError(out, ref);
          double vsStored = Double.NaN, storedVsRef = Double.NaN;
          if (t.output(layer, row, stored)) {
            vsStored = relError(out, stored);
            storedVsRef = ReferenceAttention.relError(stored, ref);
          }
          s.add(err, vsStored, storedVsRef);
        }
      }
      layers.add(s);
      total.addAll(s);
    }
    return new ModeResult(mode, total, layers);
  }

  /** ||a-b|| / ||b|| in double (0 when both are zero). */
  static double relError(float[] a, float[] b) {
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
