package hflash.bench;

import hflash.io.Trace;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;

/**
 * The numbers behind docs/HIERARCHICAL.md section 9: how many K+V bytes a sampled tail could save at
 * an output-error target, under assumptions that favour the sampler, and how tight the per-tile and
 * per-key score bounds of summaries and of a quantized K sketch are. An analysis, not a mode: it
 * reads every key and value in float64.
 *
 * <p><b>The sampler's floor.</b> Per decode row and KV head, with each tile's exact mass {@code m_t}
 * and weighted value sum {@code y_t} known (the analysis knows them; a sampler does not), the design
 * "open a head of H tiles exactly, estimate the other N' tiles from n drawn uniformly without
 * replacement" has, to first order, the error {@code (Z^ - Z) / L} with {@code z_t = y_t - m_t exact}
 * and the expected squared norm {@code N'^2 (1 - n/N') S^2 / n} ({@code S^2}: the tail's sample
 * variance of {@code z}, the usual finite-population formula, summed over channels). The head is the
 * H tiles of largest {@code max_h ||z_t|| / (L_h ||exact_h||)}: the best head any rule could choose,
 * since it uses the exact contributions. For each H the fewest draws n with
 * {@code c * rms <= E ||exact_h||} for every head of the group, then the best H. With c = 1 that is a
 * floor for any valid interval (an interval narrower than the estimator's own rms error cannot
 * cover at 99 %); c = 2.576 is the normal-theory 99 % interval (not rigorous: no union bound, known
 * variance, no range term). The forced tiles (first, last complete, incomplete) count as read, as
 * in the engine.
 *
 * <p><b>Bounds.</b> For every complete tile and head: how far above the tile's exact mass the ball
 * ({@code q.c + ||q|| r}) and box ({@code sum_c max(q_c lo_c, q_c hi_c)}) bounds put it, and the
 * per-key bound {@code ||q|| ||k - k^||} of a q8_0 and a q4_0 copy of K (blocks of 32 channels, or
 * the head dim when smaller; ggml's rounding, scales kept exact, which favours the sketch), as the
 * tile-mass overstatement {@code ln(sum_j exp(s^_j + w_j) / sum_j exp(s_j))} and as the per-key
 * half-width {@code w_j} in logits. Sampling needs certified per-tile ranges (an unread tile can
 * hide any mass its bound allows), so these are the range terms an interval would pay.
 *
 * <p>Run: {@code java --add-modules jdk.incubator.vector -cp dist/target/hflash-cli.jar
 * hflash.bench.SamplingLimits trace FILE [tile]} or {@code ... structured CONTEXT [tile]} (W1: 32
 * heads, 8 KV heads, d = 128, bench's seed 42, f16-rounded keys and values, the last decode row).
 */
public final class SamplingLimits {

  /** Output-error targets analysed. */
  public static final double[] TARGETS = {1e-2, 3e-2, 1e-1};
  /** Certified configurations of the sketch comparison: negative = --epsilon |x|, positive = --max-error x. */
  public static final double[] CERTIFIED = {-1e-1, -3e-1, 1e-2, 1e-1};
  /**
   * Interval widths in units of the estimator's rms error: a floor, the normal 99 % quantile of one
   * channel, and {@code sqrt(2 ln(2 / 0.01))}, the variance term alone of a 99 % Bernstein (Pinelis)
   * bound in Hilbert space with the variance known.
   */
  public static final double[] WIDTHS = {1.0, 2.576, Math.sqrt(2 * Math.log(2 / 0.01))};

  /** Histogram of non-negative values in logits: bins of 0.01 up to 100, one overflow bin. */
  public static final class Histogram {
    private final long[] bins = new long[10_001];
    private long count;
    private double max;

    public void add(double x) {
      int b = (int) Math.min(bins.length - 1, Math.max(0, Math.floor(x * 100)));
      bins[b]++;
      count++;
      max = Math.max(max, x);
    }

    /** The p-quantile's bin upper edge (p in [0, 1]). */
    public double quantile(double p) {
      long want = (long) Math.ceil(p * count);
      long seen = 0;
      for (int b = 0; b < bins.length; b++) {
        seen += bins[b];
        if (seen >= Math.max(1, want)) {
          return b == bins.length - 1 ? max : (b + 1) / 100.0;
        }
      }
      return max;
    }

    public String summary() {
      return String.format(Locale.ROOT, "median %.2f  p90 %.2f  p99 %.2f  max %.2f", quantile(0.5), quantile(0.9),
          quantile(0.99), max);
    }
  }

  /** Totals over the analysed rows and KV heads. */
  public static final class Totals {
    final long[][] tokensRead = new long[TARGETS.length][WIDTHS.length]; // (targets, widths)
    long tokensExact;
    final long[][] sketchedTokens = new long[CERTIFIED.length][3]; // (configs, exact masses / q8_0 / q4_0)
    final Histogram ball = new Histogram(), box = new Histogram(), q8 = new Histogram(), q4 = new Histogram();
    final Histogram keyQ8 = new Histogram(), keyQ4 = new Histogram(), actualQ4 = new Histogram();
    final Histogram valueWeighted = new Histogram(), valueMean = new Histogram(), valueActual = new Histogram();
    final Histogram valueBox = new Histogram();
  }

  private SamplingLimits() {}

  /**
   * One decode row over one KV head's group: q (g, d) pre-scale, keys and values (keys, d) from
   * offset kOff/vOff, tiles of tt tokens.
   */
  public static void group(float[] q, int qOff, int g, float[] k, int kOff, float[] v, int vOff, int keys, int d,
      double scale, int tt, Totals tot) {
    int tiles = (keys + tt - 1) / tt, full = keys / tt;
    double[] s = new double[g * keys];
    double[] max = new double[g];
    Arrays.fill(max, Double.NEGATIVE_INFINITY);
    for (int j = 0; j < keys; j++) {
      for (int i = 0; i < g; i++) {
        double dot = 0;
        for (int c = 0; c < d; c++) {
          dot += (double) q[qOff + i * d + c] * k[kOff + j * d + c];
        }
        s[i * keys + j] = dot * scale;
        max[i] = Math.max(max[i], s[i * keys + j]);
      }
    }
    double[] mass = new double[g * tiles];
    double[] y = new double[g * tiles * d];
    double[] total = new double[g];
    double[] exact = new double[g * d];
    double[] norm = new double[g];
    for (int j = 0; j < keys; j++) {
      int t = j / tt;
      for (int i = 0; i < g; i++) {
        double w = Math.exp(s[i * keys + j] - max[i]);
        mass[i * tiles + t] += w;
        total[i] += w;
        for (int c = 0; c < d; c++) {
          y[(i * tiles + t) * d + c] += w * v[vOff + j * d + c];
          exact[i * d + c] += w * v[vOff + j * d + c];
        }
      }
    }
    for (int i = 0; i < g; i++) {
      double sq = 0;
      for (int c = 0; c < d; c++) {
        exact[i * d + c] /= total[i];
        sq += exact[i * d + c] * exact[i * d + c];
      }
      norm[i] = Math.sqrt(sq);
    }
    boolean[] forced = new boolean[tiles];
    forced[0] = true;
    if (full > 1) {
      forced[full - 1] = true;
    }
    if (tiles > full && full > 0) {
      forced[full] = true;
    }
    long forcedTokens = 0;
    for (int t = 0; t < tiles; t++) {
      if (forced[t]) {
        forcedTokens += Math.min(tt, keys - t * tt);
      }
    }
    tot.tokensExact += keys;
    // z_t = y_t - m_t exact, per head; candidates: complete tiles not forced, by harm, largest first
    double[] z = new double[g * tiles * d];
    double[] harm = new double[tiles];
    int n = 0;
    Integer[] cand = new Integer[tiles];
    for (int t = 0; t < full; t++) {
      double h = 0;
      for (int i = 0; i < g; i++) {
        double sq = 0;
        for (int c = 0; c < d; c++) {
          int at = (i * tiles + t) * d + c;
          z[at] = y[at] - mass[i * tiles + t] * exact[i * d + c];
          sq += z[at] * z[at];
        }
        h = Math.max(h, Math.sqrt(sq) / (total[i] * norm[i]));
      }
      harm[t] = h;
      if (!forced[t]) {
        cand[n++] = t;
      }
    }
    Arrays.sort(cand, 0, n, (a, b) -> Double.compare(harm[b], harm[a]));
    for (int e = 0; e < TARGETS.length; e++) {
      for (int w = 0; w < WIDTHS.length; w++) {
        tot.tokensRead[e][w] += forcedTokens + (long) tt * fewestTiles(cand, n, z, g, tiles, d, total, norm,
            TARGETS[e] / WIDTHS[w]);
      }
    }
    double[] hi8 = new double[g * tiles], hi4 = new double[g * tiles], dist = new double[g * tiles];
    bounds(q, qOff, g, k, kOff, keys, d, scale, tt, s, max, mass, tiles, tot, hi8, hi4);
    valueBounds(g, v, vOff, keys, d, tt, s, max, mass, y, exact, tiles, tot, dist);
    long base = forcedTokens;
    for (int c = 0; c < CERTIFIED.length; c++) {
      tot.sketchedTokens[c][0] += base + (long) tt * certifiedKept(cand, n, mass, mass, dist, total, norm, g, tiles, c);
      tot.sketchedTokens[c][1] += base + (long) tt * certifiedKept(cand, n, hi8, mass, dist, total, norm, g, tiles, c);
      tot.sketchedTokens[c][2] += base + (long) tt * certifiedKept(cand, n, hi4, mass, dist, total, norm, g, tiles, c);
    }
  }

  /**
   * Certified runs with per-tile mass bounds {@code hi} (exact masses, or a sketch's bounds), in the
   * favourable model: kept tiles are read whole and their mass is then exact, distances are taken
   * from the exact output. {@code --epsilon}: skip tiles lightest first while every head's skipped
   * bound mass fits {@code eps * kept}; {@code --max-error}: skip by {@code hi * (||c - a|| + r)}
   * while every head's sum fits {@code E ||a|| / (1 + E) * kept}. Returns the candidate tiles kept.
   */
  private static long certifiedKept(Integer[] cand, int n, double[] hi, double[] mass, double[] dist, double[] total,
      double[] norm, int g, int tiles, int config) {
    boolean eps = CERTIFIED[config] < 0;
    double e = Math.abs(CERTIFIED[config]);
    double[] share = new double[n];
    Integer[] order = new Integer[n];
    for (int k = 0; k < n; k++) {
      int t = cand[k];
      double worst = 0;
      for (int i = 0; i < g; i++) {
        double cost = eps ? hi[i * tiles + t] / total[i] : hi[i * tiles + t] * dist[i * tiles + t] / (total[i] * norm[i]);
        worst = Math.max(worst, cost);
      }
      share[k] = worst;
      order[k] = k;
    }
    Arrays.sort(order, (a, b) -> Double.compare(share[a], share[b]));
    double[] skipped = new double[g], lost = new double[g];
    long kept = 0;
    for (int k : order) {
      int t = cand[k];
      boolean fits = true;
      for (int i = 0; i < g && fits; i++) {
        double keptMass = total[i] - lost[i] - mass[i * tiles + t];
        double add = eps ? hi[i * tiles + t] : hi[i * tiles + t] * dist[i * tiles + t];
        double allowed = eps ? e * keptMass : e * norm[i] / (1 + e) * keptMass;
        fits = skipped[i] + add <= allowed;
      }
      if (fits) {
        for (int i = 0; i < g; i++) {
          skipped[i] += eps ? hi[i * tiles + t] : hi[i * tiles + t] * dist[i * tiles + t];
          lost[i] += mass[i * tiles + t];
        }
      } else {
        kept++;
      }
    }
    return kept;
  }

  /**
   * Per complete tile and head, against the value-ball distance {@code ||c - a|| + r} (a = the exact
   * output): the weight-aware distance {@code ||c - a|| + r min_lambda sum_j |w_j - lambda| / m}
   * (valid because the centroid is the rows' mean, so {@code sum_j w_j (v_j - c) = sum_j (w_j -
   * lambda)(v_j - c)}; lambda = the median weight minimises it), and the actual {@code ||b - a||}.
   */
  private static void valueBounds(int g, float[] v, int vOff, int keys, int d, int tt, double[] s, double[] max,
      double[] mass, double[] y, double[] exact, int tiles, Totals tot, double[] dist) {
    double[] cen = new double[d], lo = new double[d], hi = new double[d];
    double[] w = new double[tt];
    for (int t = 0; t < keys / tt; t++) {
      Arrays.fill(cen, 0);
      Arrays.fill(lo, Double.POSITIVE_INFINITY);
      Arrays.fill(hi, Double.NEGATIVE_INFINITY);
      for (int j = t * tt; j < (t + 1) * tt; j++) {
        for (int c = 0; c < d; c++) {
          cen[c] += v[vOff + j * d + c] / (double) tt;
          lo[c] = Math.min(lo[c], v[vOff + j * d + c]);
          hi[c] = Math.max(hi[c], v[vOff + j * d + c]);
        }
      }
      double r = radius(v, vOff, t * tt, (t + 1) * tt, d, cen);
      for (int i = 0; i < g; i++) {
        double m = mass[i * tiles + t];
        for (int j = 0; j < tt; j++) {
          w[j] = Math.exp(s[i * keys + t * tt + j] - max[i]);
        }
        double devMean = 0;
        for (int j = 0; j < tt; j++) {
          devMean += Math.abs(w[j] - m / tt);
        }
        Arrays.sort(w);
        double lambda = w[tt / 2], dev = 0;
        for (int j = 0; j < tt; j++) {
          dev += Math.abs(w[j] - lambda);
        }
        double ca = 0, ba = 0, bx = 0;
        for (int c = 0; c < d; c++) {
          double far = Math.max(Math.abs(lo[c] - exact[i * d + c]), Math.abs(hi[c] - exact[i * d + c]));
          bx += far * far;
          double e = cen[c] - exact[i * d + c];
          ca += e * e;
          double b = y[(i * tiles + t) * d + c] / m - exact[i * d + c];
          ba += b * b;
        }
        double old = Math.sqrt(ca) + r;
        dist[i * tiles + t] = old;
        tot.valueWeighted.add((Math.sqrt(ca) + r * Math.min(1, dev / m)) / old);
        tot.valueMean.add((Math.sqrt(ca) + r * Math.min(1, devMean / m)) / old);
        tot.valueBox.add(Math.sqrt(bx) / old);
        tot.valueActual.add(Math.sqrt(ba) / old);
      }
    }
  }

  /** min over the head size H of H + the fewest draws meeting rms <= target ||exact|| for every head. */
  private static long fewestTiles(Integer[] cand, int n, double[] z, int g, int tiles, int d, double[] total,
      double[] norm, double target) {
    double[] sumSq = new double[g]; // over the tail cand[H..n): sum ||z_t||^2
    double[] sum = new double[g * d]; // and sum z_t
    long best = n; // H = n: everything read
    for (int h = n - 1; h >= 0; h--) { // the tail grows by cand[h]; it is cand[h..n), head size h
      int t = cand[h];
      for (int i = 0; i < g; i++) {
        for (int c = 0; c < d; c++) {
          double x = z[(i * tiles + t) * d + c];
          sumSq[i] += x * x;
          sum[i * d + c] += x;
        }
      }
      int tail = n - h;
      long draws = 0;
      for (int i = 0; i < g && draws < tail; i++) {
        double r = target * norm[i] * total[i]; // allowed rms of Z^ - Z
        double sq = 0;
        for (int c = 0; c < d; c++) {
          sq += sum[i * d + c] * sum[i * d + c];
        }
        double s2 = tail < 2 ? 0 : Math.max(0, (sumSq[i] - sq / tail) / (tail - 1));
        long need;
        if (Math.sqrt(sq) <= r) {
          need = 0; // leaving the whole tail out already meets the target
        } else {
          // N'^2 (1 - n/N') S^2 / n <= r^2  <=>  n >= N'^2 S^2 / (r^2 + N' S^2); at least one draw
          need = Math.max(1, (long) Math.ceil((double) tail * tail * s2 / (r * r + tail * s2)));
        }
        draws = Math.max(draws, Math.min(tail, need));
      }
      best = Math.min(best, h + draws);
    }
    return best;
  }

  /** Ball, box and sketch bounds against each complete tile's exact mass; sketch key half-widths. */
  private static void bounds(float[] q, int qOff, int g, float[] k, int kOff, int keys, int d, double scale,
      int tt, double[] s, double[] max, double[] mass, int tiles, Totals tot, double[] hi8, double[] hi4) {
    int full = keys / tt;
    int block = Math.min(32, d);
    double[] k8 = new double[d], k4 = new double[d], cen = new double[d], lo = new double[d], hi = new double[d];
    double[] qn = new double[g];
    for (int i = 0; i < g; i++) {
      double sq = 0;
      for (int c = 0; c < d; c++) {
        sq += (double) q[qOff + i * d + c] * q[qOff + i * d + c];
      }
      qn[i] = Math.sqrt(sq) * scale;
    }
    double[] sum8 = new double[g], sum4 = new double[g];
    for (int t = 0; t < full; t++) {
      Arrays.fill(cen, 0);
      Arrays.fill(lo, Double.POSITIVE_INFINITY);
      Arrays.fill(hi, Double.NEGATIVE_INFINITY);
      Arrays.fill(sum8, 0);
      Arrays.fill(sum4, 0);
      for (int j = t * tt; j < (t + 1) * tt; j++) {
        double e8 = 0, e4 = 0;
        for (int b = 0; b < d; b += block) {
          int len = Math.min(block, d - b);
          quantize(k, kOff + j * d + b, len, k8, b, 127, false);
          quantize(k, kOff + j * d + b, len, k4, b, 8, true);
        }
        for (int c = 0; c < d; c++) {
          double x = k[kOff + j * d + c];
          cen[c] += x / tt;
          lo[c] = Math.min(lo[c], x);
          hi[c] = Math.max(hi[c], x);
          e8 += (x - k8[c]) * (x - k8[c]);
          e4 += (x - k4[c]) * (x - k4[c]);
        }
        e8 = Math.sqrt(e8);
        e4 = Math.sqrt(e4);
        for (int i = 0; i < g; i++) {
          double s8 = 0, s4 = 0;
          for (int c = 0; c < d; c++) {
            s8 += (double) q[qOff + i * d + c] * k8[c];
            s4 += (double) q[qOff + i * d + c] * k4[c];
          }
          double w8 = qn[i] * e8, w4 = qn[i] * e4;
          tot.keyQ8.add(w8);
          tot.keyQ4.add(w4);
          tot.actualQ4.add(Math.abs(s4 * scale - s[i * keys + j]));
          sum8[i] += Math.exp(s8 * scale + w8 - max[i]);
          sum4[i] += Math.exp(s4 * scale + w4 - max[i]);
        }
      }
      double r = radius(k, kOff, t * tt, (t + 1) * tt, d, cen);
      for (int i = 0; i < g; i++) {
        double qc = 0, bx = 0;
        for (int c = 0; c < d; c++) {
          double qq = q[qOff + i * d + c];
          qc += qq * cen[c];
          bx += Math.max(qq * lo[c], qq * hi[c]);
        }
        double lnMass = Math.log(mass[i * tiles + t]);
        double lnT = Math.log(tt);
        tot.ball.add(lnT + qc * scale + qn[i] * r - max[i] - lnMass);
        tot.box.add(lnT + bx * scale - max[i] - lnMass);
        tot.q8.add(Math.log(sum8[i]) - lnMass);
        hi8[i * tiles + t] = sum8[i];
        hi4[i * tiles + t] = sum4[i];
        tot.q4.add(Math.log(sum4[i]) - lnMass);
      }
    }
  }

  /** max over rows j in [from, to) of ||x_j - cen||, rows of d floats from x[off]. */
  private static double radius(float[] x, int off, int from, int to, int d, double[] cen) {
    double r = 0;
    for (int j = from; j < to; j++) {
      double sq = 0;
      for (int c = 0; c < d; c++) {
        double e = x[off + j * d + c] - cen[c];
        sq += e * e;
      }
      r = Math.max(r, Math.sqrt(sq));
    }
    return r;
  }

  /**
   * ggml-style block quantization of x[off, off+len) into dst[at, at+len): q8_0 (reach 127: scale
   * amax / 127, codes round(x / scale)) or q4_0 (reach 8, signed: scale = the largest-magnitude
   * element / -8, codes clamp(round(x / scale) + 8, 0, 15) - 8). Scales are kept exact (no f16).
   */
  public static void quantize(float[] x, int off, int len, double[] dst, int at, int reach, boolean q40) {
    double amax = 0, signed = 0;
    for (int c = 0; c < len; c++) {
      if (Math.abs(x[off + c]) > amax) {
        amax = Math.abs(x[off + c]);
        signed = x[off + c];
      }
    }
    double sc = q40 ? signed / -8 : amax / 127;
    for (int c = 0; c < len; c++) {
      if (sc == 0) {
        dst[at + c] = 0;
        continue;
      }
      long code = Math.round(x[off + c] / sc);
      if (q40) {
        code = Math.max(-8, Math.min(7, code));
      }
      dst[at + c] = code * sc;
    }
  }

  public static String report(String what, Totals tot, int d, int elementBytes) {
    StringBuilder b = new StringBuilder();
    b.append(what).append('\n');
    b.append("  sampler's floor, K+V bytes of exact (head by exact harm, draws without replacement, known variance):\n");
    for (int e = 0; e < TARGETS.length; e++) {
      b.append(String.format(Locale.ROOT, "    E = %.0e:", TARGETS[e]));
      for (int w = 0; w < WIDTHS.length; w++) {
        b.append(String.format(Locale.ROOT, "  %.3f (%.3g rms <= E)", tot.tokensRead[e][w] / (double) tot.tokensExact,
            WIDTHS[w]));
      }
      b.append('\n');
    }
    int blocks = (d + 31) / 32, len = Math.min(32, d);
    double rowBytes = 2.0 * d * elementBytes; // K + V of one key
    double[] sketch = {0, blocks * (len + 2) / rowBytes, blocks * (len / 2 + 2) / rowBytes};
    b.append(String.format(Locale.ROOT, "  certified with per-tile mass bounds (kept tiles' K+V + the sketch of every key;"
        + " q8_0 sketch %.3f, q4_0 %.3f of K+V):%n", sketch[1], sketch[2]));
    for (int c = 0; c < CERTIFIED.length; c++) {
      b.append(String.format(Locale.ROOT, "    %s %.0e:", CERTIFIED[c] < 0 ? "epsilon  " : "maxError ", Math.abs(CERTIFIED[c])));
      String[] names = {"exact masses", "q8_0", "q4_0"};
      for (int m = 0; m < 3; m++) {
        b.append(String.format(Locale.ROOT, "  %s %.3f", names[m],
            tot.sketchedTokens[c][m] / (double) tot.tokensExact + sketch[m]));
      }
      b.append('\n');
    }
    b.append("  tile-mass overstatement ln(bound / mass), complete tiles x heads:\n");
    b.append("    ball: ").append(tot.ball.summary()).append('\n');
    b.append("    box:  ").append(tot.box.summary()).append('\n');
    b.append("    q8_0 sketch: ").append(tot.q8.summary()).append('\n');
    b.append("    q4_0 sketch: ").append(tot.q4.summary()).append('\n');
    b.append("  per-key half-width ||q|| ||k - k^|| in logits: q8_0 ").append(tot.keyQ8.summary()).append('\n');
    b.append("                                            q4_0 ").append(tot.keyQ4.summary()).append('\n');
    b.append("  actual |s^ - s| of q4_0: ").append(tot.actualQ4.summary()).append('\n');
    b.append("  value distance over the ball's ||c - a|| + r: weight-aware ").append(tot.valueWeighted.summary())
        .append('\n');
    b.append("                                   lambda = mean weight ").append(tot.valueMean.summary())
        .append('\n');
    b.append("                         farthest point of the value box ").append(tot.valueBox.summary())
        .append('\n');
    b.append("                                              actual ||b - a|| ").append(tot.valueActual.summary())
        .append('\n');
    return b.toString();
  }

  public static void main(String[] args) {
    if (args.length < 2) {
      System.err.println("usage: SamplingLimits trace FILE [tile] | structured CONTEXT [tile]");
      System.exit(2);
    }
    if (args[0].equals("trace")) {
      Trace t = Trace.read(Path.of(args[1]));
      int tt = args.length > 2 ? Integer.parseInt(args[2]) : TraceEval.DEFAULT_TILE;
      int g = t.heads() / t.kvHeads(), d = t.dim();
      Totals tot = new Totals();
      float[] q = new float[t.heads() * d];
      for (int layer = 0; layer < t.layers(); layer++) {
        for (int row = 0; row < t.qPositions(); row++) {
          int keys = t.keys(row);
          t.query(layer, row, q);
          for (int kh = 0; kh < t.kvHeads(); kh++) {
            int off = (layer * t.kvHeads() + kh) * t.positions() * d;
            group(q, kh * g * d, g, t.k(), off, t.v(), off, keys, d, t.scale(), tt, tot);
          }
        }
      }
      System.out.print(report("trace " + t.path().getFileName() + ", tiles of " + tt + ", every row", tot, d, 4));
    } else if (args[0].equals("structured")) {
      int n = Integer.parseInt(args[1]);
      int tt = args.length > 2 ? Integer.parseInt(args[2]) : 128;
      StructuredWorkload w = new StructuredWorkload(StructuredWorkload.Params.of(n, 32, 8, 128, 42));
      int d = 128, g = 4;
      float[] q = w.query();
      Totals all = new Totals();
      StringBuilder perHead = new StringBuilder();
      for (int kh = 0; kh < 8; kh++) {
        float[] k = new float[n * d], v = new float[n * d];
        w.keys(kh).next(n, k, 0, d, v, 0, d);
        for (int i = 0; i < k.length; i++) { // as an f16 cache stores them
          k[i] = Float.float16ToFloat(Float.floatToFloat16(k[i]));
          v[i] = Float.float16ToFloat(Float.floatToFloat16(v[i]));
        }
        long[] before = all.tokensRead[0].clone();
        group(q, kh * g * d, g, k, 0, v, 0, n, d, w.scale(), tt, all);
        perHead.append(String.format(Locale.ROOT, "  KV head %d (%s): floor at E = 1e-2: %.3f / %.3f / %.3f%n", kh,
            w.headType(kh).id(), (all.tokensRead[0][0] - before[0]) / (double) n,
            (all.tokensRead[0][1] - before[1]) / (double) n, (all.tokensRead[0][2] - before[2]) / (double) n));
      }
      System.out.print(report("structured W1, n = " + n + ", tiles of " + tt + ", last row", all, d, 2));
      System.out.print(perHead);
    } else {
      System.err.println("unknown source: " + args[0]);
      System.exit(2);
    }
  }
}
