package hflash.engine.estimated;

import hflash.engine.ModeConfig;
import hflash.engine.bounded.NodeBounds;
import hflash.engine.pass.ModeStrategy;
import hflash.engine.pass.Tiles;
import hflash.memory.KvCacheLayout;
import hflash.memory.TileSummaries;
import hflash.memory.ValueSummaries;
import hflash.tiles.TileKernels;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The estimated mode over one KV head's group (docs/HIERARCHICAL.md section 6). Opens the first,
 * the last complete and the incomplete tile and the top {@link #HEAD_SHARE} of the complete tiles
 * by their ball bound exactly; splits the other tiles (the tail) into {@link #STRATA} strata of
 * equal size by that bound and draws, per stratum, tiles uniformly with replacement (seeded), whose
 * K and V are read exactly. The tail's mass and value sum are estimated by the stratified
 * Horvitz-Thompson sums {@code (N_s / n_s) sum_draws x}, without bias. Per head, with
 * {@code o} the output of the exactly read head tiles (fixed before sampling) and
 * {@code z_t = y_t - o m_t} (y: a tile's weighted value sum, m its mass), the estimate's error is
 * exactly
 *
 * <pre>
 *   (out - exact) L = (Z^ - Z) - (out - o) (M^ - M)
 * </pre>
 *
 * and every tail tile has {@code 0 <= m_t <= U_t} (its mass bound from the key ball) and
 * {@code ||z_t|| <= U_t (||c_t - o|| + r_t)} (value ball): bounded variables with ranges known
 * before sampling. The deviations of the sums get a Bernstein inequality in Hilbert space (Pinelis
 * 1994, Theorem 3.4, D = 1; in one dimension it is Bernstein's), with the standard deviation
 * replaced by an upper confidence bound from the sample (Maurer and Pontil 2009, Theorem 10, whose
 * proof uses only squared pairwise distances and the diameter, so it holds for vectors too); the
 * draws are i.i.d. (with replacement), so both apply as stated. The
 * failure probability {@code 1 - confidence} is split over the rounds ({@code delta / 2^(r+1)}),
 * strata and the four events of a stratum (union bound), so stopping at the first round whose
 * upper end meets the target keeps the level. A stratum whose draws would reach half its tiles is
 * read whole instead (exact, no deviation), so the loop ends.
 */
public final class EstimatedStrategy implements ModeStrategy<ModeConfig.Estimated> {

  /** Share of the complete tiles opened exactly by bound before sampling. */
  static final double HEAD_SHARE = 0.05;
  /** Strata of the tail, by bound rank. */
  static final int STRATA = 4;
  /** Draws per stratum in the first round; doubled every round. */
  static final int FIRST_DRAWS = 8;

  private final TileKernels kernels;
  private final KvCacheLayout layout;
  private final int d;
  private final int g;
  private final int tileTokens;
  private final int maxTiles;
  private final float[] ub; // (g, maxTiles): certified ball bound of each tile's scores
  private final float[] runScores; // (g, RUN): q . centroid of a run of ball records
  private final Integer[] order; // (maxTiles) tail tiles by priority
  private final float[] priority; // (maxTiles)
  private final int[] slotOf; // (maxTiles): slot of a read tail tile, -1 when unread
  private final int[] draws; // (maxTiles): times a tail tile was drawn
  private final int[] slotTile; // (maxTiles)
  private final double[] mass; // (slots, g): a read tail tile's mass relative to ref
  private final double[] ysum; // (slots, g, d): its weighted value sum relative to ref
  private final float[] acc; // (g, d) p.V scratch of one tile
  private final float[] ref; // (g): reference of the masses: the state's max after the head
  private final double[] o; // (g, d): output of the head tiles
  private final double[] uMass; // (g, STRATA): largest mass bound of a stratum
  private final double[] uZ; // (g, STRATA): largest ||z|| bound of a stratum
  private final float[] centroid; // (d)
  private final float[] tileMax; // (g)
  private int slots;
  private static final int RUN = 256;

  public EstimatedStrategy(TileKernels kernels, KvCacheLayout layout, int group) {
    this.kernels = kernels;
    this.layout = layout;
    this.d = layout.headDim();
    this.g = group;
    this.tileTokens = layout.tileTokens();
    this.maxTiles = (int) (layout.paddedCapacity() / tileTokens);
    this.ub = new float[Math.multiplyExact(group, maxTiles)];
    this.runScores = new float[group * RUN];
    this.order = new Integer[maxTiles];
    this.priority = new float[maxTiles];
    this.slotOf = new int[maxTiles];
    Arrays.fill(slotOf, -1);
    this.draws = new int[maxTiles];
    this.slotTile = new int[maxTiles];
    this.mass = new double[Math.multiplyExact(maxTiles, group)];
    this.ysum = new double[Math.multiplyExact(Math.multiplyExact(maxTiles, group), d)];
    this.acc = new float[group * d];
    this.ref = new float[group];
    this.o = new double[group * d];
    this.uMass = new double[group * STRATA];
    this.uZ = new double[group * STRATA];
    this.centroid = new float[d];
    this.tileMax = new float[group];
  }

  /** The estimated pass for KV head kh; writes the output into the state and the interval into the report. */
  @Override
  public void run(ModeConfig.Estimated cfg, Tiles tiles, int kh, int from0, int to0) {
    tiles.resetGroup(kh);
    if (tiles.keys() == 0) {
      return;
    }
    int h0 = kh * g;
    int keys = tiles.keys();
    int full = keys / tileTokens;
    int tileCount = (keys + tileTokens - 1) / tileTokens;
    boolean[] opened = tiles.opened();
    Arrays.fill(opened, 0, tileCount, false);
    tiles.open(kh, 0);
    if (full > 1) {
      tiles.open(kh, full - 1);
    }
    if (tileCount > full && full > 0) {
      tiles.open(kh, full);
    }
    int n = 0; // tail candidates: complete unopened tiles
    bound(tiles, kh, full);
    for (int t = 0; t < full; t++) {
      if (!opened[t]) {
        float p = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < g; i++) {
          p = Math.max(p, ub[i * maxTiles + t] - tiles.max(h0 + i));
        }
        priority[t] = p;
        order[n++] = t;
      }
    }
    // best bound first, ties by index: a fixed order, so a fixed seed gives fixed bits
    Arrays.sort(order, 0, n, (a, b) -> a.equals(b) ? 0
        : priority[a] != priority[b] ? Float.compare(priority[b], priority[a]) : Integer.compare(a, b));
    int head = Math.min(n, (int) Math.ceil(HEAD_SHARE * full));
    for (int k = 0; k < head; k++) {
      tiles.open(kh, order[k]);
    }
    tiles.drain();
    for (int i = 0; i < g; i++) {
      int h = h0 + i;
      ref[i] = tiles.max(h);
      float[] acc = tiles.accumulators();
      for (int c = 0; c < d; c++) {
        o[i * d + c] = tiles.sum(h) == 0 ? 0 : acc[h * d + c] / (double) tiles.sum(h);
      }
    }
    int tail = n - head;
    if (tail == 0) {
      for (int i = 0; i < g; i++) {
        tiles.reportBound(h0 + i, 0, 0);
      }
      return;
    }
    int[] from = new int[STRATA + 1]; // stratum s: order[head + from[s], head + from[s + 1])
    for (int s = 0; s <= STRATA; s++) {
      from[s] = (int) ((long) s * tail / STRATA);
    }
    ranges(tiles, kh, head, from);
    estimate(cfg, tiles, kh, h0, head, from);
  }

  /** Certified ball bounds of every complete tile for the group (as budgeted computes them). */
  private void bound(Tiles tiles, int kh, int full) {
    TileSummaries sum = tiles.summaries();
    int h0 = kh * g;
    for (int t0 = 0, count; t0 < full; t0 += count) {
      count = sum.ballRun(t0, Math.min(RUN, full - t0), false); // a paged sequence's run ends with its page
      kernels.rowScores(tiles.queries(), h0 * d, g, d, tiles.summarySegment(), sum.ballOffset(tiles.layer(), kh, t0),
          sum.ballBytes(), count, runScores, count);
      tiles.countSummaryBytes(count * sum.ballBytes());
      tiles.countFmas((long) count * g * d);
      for (int j = 0; j < count; j++) {
        int t = t0 + j;
        float radius = sum.radius(tiles.layer(), kh, t);
        float cnorm = sum.centroidNorm(tiles.layer(), kh, t, false);
        for (int i = 0; i < g; i++) {
          ub[i * maxTiles + t] = NodeBounds.ballBound(runScores[i * count + j], tiles.queryNorm(h0 + i), radius, cnorm, d);
        }
      }
    }
  }

  /** Per stratum and head: the largest mass bound and the largest ||z_t|| bound of its tiles. */
  private void ranges(Tiles tiles, int kh, int head, int[] from) {
    ValueSummaries vs = tiles.valueSummaries();
    Arrays.fill(uMass, 0);
    Arrays.fill(uZ, 0);
    for (int s = 0; s < STRATA; s++) {
      for (int k = from[s]; k < from[s + 1]; k++) {
        int t = order[head + k];
        long rec = vs.tileOffset(tiles.layer(), kh, t);
        vs.centroid(rec, centroid, 0);
        double r = vs.radius(rec);
        for (int i = 0; i < g; i++) {
          double um = tileTokens * Math.exp((double) ub[i * maxTiles + t] - ref[i]);
          double sq = 0;
          for (int c = 0; c < d; c++) {
            double e = centroid[c] - o[i * d + c];
            sq += e * e;
          }
          double dist = (Math.sqrt(sq) + r) * (1 + 1e-6);
          uMass[i * STRATA + s] = Math.max(uMass[i * STRATA + s], um);
          uZ[i * STRATA + s] = Math.max(uZ[i * STRATA + s], um * dist);
        }
      }
    }
    long tailTiles = from[STRATA];
    tiles.countSummaryBytes(tailTiles * vs.recordBytes());
    tiles.countFmas(tailTiles * g * d);
  }

  /** Rounds of draws until the interval's upper end meets the target; then the state and report. */
  private void estimate(ModeConfig.Estimated cfg, Tiles tiles, int kh, int h0, int head, int[] from) {
    double delta = 1 - cfg.confidence();
    SplittableRandom rnd = new SplittableRandom(cfg.seed() ^ (0x9e3779b97f4a7c15L * (tiles.layer() * 1_000_003L + kh))
        ^ ((long) tiles.keys() << 20));
    int[] drawn = new int[STRATA];
    boolean[] census = new boolean[STRATA];
    double[] bound = new double[g];
    double[] rho = new double[g];
    double[] mHat = new double[g];
    double[] yHat = new double[g * d];
    slots = 0;
    for (int r = 0; ; r++) {
      int want = FIRST_DRAWS << Math.min(r, 20);
      for (int s = 0; s < STRATA; s++) {
        int size = from[s + 1] - from[s];
        if (census[s] || size == 0) {
          continue;
        }
        if (2L * want >= size) { // reading it whole costs at most twice the draws: exact
          census[s] = true;
          for (int k = from[s]; k < from[s + 1]; k++) {
            read(tiles, kh, order[head + k]);
          }
          continue;
        }
        for (; drawn[s] < want; drawn[s]++) {
          int t = order[head + from[s] + rnd.nextInt(size)];
          read(tiles, kh, t);
          draws[t]++;
        }
      }
      double deltaRound = delta / Math.pow(2, r + 1) / (4.0 * STRATA);
      boolean pass = interval(tiles, cfg.maxError(), h0, head, from, drawn, census, deltaRound, bound, rho, mHat, yHat);
      if (pass) {
        break;
      }
    }
    finish(tiles, h0, mHat, yHat);
    for (int i = 0; i < g; i++) {
      tiles.reportBound(h0 + i, rho[i], bound[i]);
    }
    for (int k = 0; k < slots; k++) { // leave the scratch clean for the next call
      slotOf[slotTile[k]] = -1;
      draws[slotTile[k]] = 0;
    }
  }

  /** Reads tail tile t exactly (once): its mass and weighted value sum relative to ref, per head. */
  private void read(Tiles tiles, int kh, int t) {
    if (slotOf[t] >= 0) {
      return;
    }
    int count = tiles.scoreOnly(kh, t);
    tiles.countExps(count);
    float[] s = tiles.ownScores();
    int slot = slots++;
    slotOf[t] = slot;
    slotTile[slot] = t;
    float[] mx = tileMax;
    for (int i = 0; i < g; i++) {
      mx[i] = kernels.max(s, i * tileTokens, count);
      double sum = kernels.expSum(s, i * tileTokens, count, mx[i]);
      mass[slot * g + i] = sum * Math.exp((double) mx[i] - ref[i]);
    }
    Arrays.fill(acc, 0f);
    tiles.accumulateInto(kh, t, count, s, acc);
    tiles.opened()[t] = true;
    for (int i = 0; i < g; i++) {
      double f = Math.exp((double) mx[i] - ref[i]);
      for (int c = 0; c < d; c++) {
        ysum[(slot * g + i) * d + c] = acc[i * d + c] * f;
      }
    }
  }

  /**
   * The estimates (into mHat, yHat) and, per head, the interval's upper end on ||out - exact||
   * (into bound) and on the tail's mass share (rho); whether every head meets its target.
   */
  private boolean interval(Tiles tiles, double target, int h0, int head, int[] from, int[] drawn,
      boolean[] census, double dr, double[] bound, double[] rho, double[] mHat, double[] yHat) {
    float[] acc = tiles.accumulators();
    double lnB = Math.log(2 / dr); // Bernstein (two-sided) at dr
    double lnV = Math.log(1 / dr); // the variance's one-sided bound at dr
    boolean pass = true;
    double[] zMean = new double[d];
    for (int i = 0; i < g; i++) {
      int h = h0 + i;
      double lHead = tiles.sum(h) * Math.exp((double) tiles.max(h) - ref[i]);
      double lSure = lHead; // a certain lower bound of the total mass: head plus every tile read
      double mh = 0, devM = 0, devZ = 0;
      Arrays.fill(yHat, i * d, (i + 1) * d, 0);
      for (int s = 0; s < STRATA; s++) {
        int size = from[s + 1] - from[s];
        if (size == 0) {
          continue;
        }
        int n = census[s] ? size : drawn[s];
        double w = census[s] ? 1 : (double) size / n;
        double sm = 0, sm2 = 0, sz2 = 0;
        Arrays.fill(zMean, 0);
        for (int k = from[s]; k < from[s + 1]; k++) {
          int t = order[head + k];
          int slot = slotOf[t];
          if (slot < 0) {
            continue;
          }
          int c = census[s] ? 1 : draws[t];
          double m = mass[slot * g + i];
          lSure += m;
          sm += c * m;
          sm2 += c * m * m;
          double z2 = 0;
          for (int ch = 0; ch < d; ch++) {
            double y = ysum[(slot * g + i) * d + ch];
            yHat[i * d + ch] += w * c * y;
            double z = y - o[i * d + ch] * m;
            zMean[ch] += c * z;
            z2 += z * z;
          }
          sz2 += c * z2;
        }
        mh += w * sm;
        if (census[s] || n < 2) {
          continue;
        }
        double zz = 0;
        for (int ch = 0; ch < d; ch++) {
          zz += zMean[ch] * zMean[ch];
        }
        double varM = Math.max(0, (sm2 - sm * sm / n) / (n - 1)); // unbiased sample variances
        double varZ = Math.max(0, (sz2 - zz / n) / (n - 1));
        double bm = uMass[i * STRATA + s], bz = uZ[i * STRATA + s];
        // population standard deviation: at most the sample's plus diameter * sqrt(2 ln(1/dr) / (n-1))
        // (Maurer & Pontil 2009, Theorem 10, scaled from [0, 1] to the diameter: bm for m in [0, bm],
        // 2 bz for ||z|| <= bz), and never above what the range allows
        double sdM = Math.sqrt(varM) + bm * Math.sqrt(2 * lnV / (n - 1));
        double sdZ = Math.sqrt(varZ) + 2 * bz * Math.sqrt(2 * lnV / (n - 1));
        double tauM = Math.min(bm * bm / 4, sdM * sdM);
        double tauZ = Math.min(bz * bz, sdZ * sdZ);
        // Bernstein for the sum of n i.i.d. terms N/n (x_j - mean), each of norm <= N/n * range
        devM += Math.sqrt(2 * size * (double) size * tauM / n * lnB) + 2.0 / 3 * size * bm / n * lnB;
        devZ += Math.sqrt(2 * size * (double) size * tauZ / n * lnB) + 2.0 / 3 * size * 2 * bz / n * lnB;
      }
      mHat[i] = mh;
      double lEst = lHead + mh;
      double outMinusO = 0, outNorm = 0;
      for (int c = 0; c < d; c++) {
        double a = (acc[h * d + c] * Math.exp((double) tiles.max(h) - ref[i]) + yHat[i * d + c]) / lEst;
        outMinusO += (a - o[i * d + c]) * (a - o[i * d + c]);
        outNorm += a * a;
      }
      double lLow = Math.max(lSure, lEst - devM);
      double b = (devZ + Math.sqrt(outMinusO) * devM) / lLow;
      bound[i] = b;
      rho[i] = Math.min(1, devM / lLow);
      pass &= b <= target * Math.sqrt(outNorm) / (1 + target);
    }
    return pass;
  }

  /** Writes head plus estimated tail into the state of the group's heads (reference ref). */
  private void finish(Tiles tiles, int h0, double[] mHat, double[] yHat) {
    float[] acc = tiles.accumulators();
    for (int i = 0; i < g; i++) {
      int h = h0 + i;
      double f = Math.exp((double) tiles.max(h) - ref[i]); // 1: ref is the state's max after the head
      double l = tiles.sum(h) * f + mHat[i];
      double top = Math.max(1, l); // keep l near 1 in float: divide everything by it
      for (int c = 0; c < d; c++) {
        acc[h * d + c] = (float) ((acc[h * d + c] * f + yHat[i * d + c]) / top);
      }
      tiles.setMaxAndSum(h, (float) (ref[i] + Math.log(top)), (float) (l / top));
    }
  }
}
