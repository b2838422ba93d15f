package hflash.engine.bounded;

import hflash.engine.pass.Tiles;
import hflash.memory.KvCacheLayout;
import hflash.memory.TileSummaries;
import hflash.memory.ValueSummaries;
import hflash.tiles.TileKernels;
import java.util.Arrays;

/**
 * The certified mode's K-scans: tiles whose K is scored so their mass is known exactly instead of
 * bounded, and whose V is read only when that mass does not fit the skip budget. Used tile by tile
 * during the traversal ({@link #scanTile}), for the whole frontier when the bounds cannot rule out
 * most of the cache ({@link #kScan}, first-fit), and with an output-error target
 * ({@link #targetScan}, choosing by error share). Keeps the skipped tiles' mass (and error) against
 * a reference, for the traversal's stopping rule and final bound.
 */
final class KScan {

  /** Relative rounding slack of a float32 score or bound over d terms: (d + 2) u, u = 2^-24. */
  private static final double U = NodeBounds.U;

  private final BoundedTraversal owner; // target, eps and the output bound of the running call
  private final TileKernels kernels;
  private final int d;
  private final int g;
  private final int tileTokens;
  private final int maxTiles;
  private final Frontier frontier;
  private final OutputBound out;
  final float[] scanMax; // (g): the scanned tile's max per head
  final double[] scanSum; // (g): sum of exp(s - tile max) per head
  final double[] scanHigh; // (g): the tile's mass relative to the new reference, rounded up
  final float[] scanRef; // (g): reference of scanSkipped: the largest max seen
  final float[] scanNextRef; // (g): the reference including the tile being tested
  final double[] scanSkipped; // (g): mass of the scanned tiles left unread, relative to scanRef
  final double[] scanSkippedErr; // (g): sum of mass * value-ball distance of the skipped tiles, rel. scanRef
  float scanVmax; // largest vmax of the scanned tiles left unread
  private final int[] tilesOf; // (nodes) scratch
  private final long[] order; // (nodes) scratch
  private final double[] logMass; // (g) scratch
  private final double[] checkMass; // (g) scratch
  private float[] weights; // (tiles, g, tileTokens) target scan: the weights of the scored tiles
  private float[] tileMaxes; // (tiles, g)
  private double[] tileSums; // (tiles, g)
  private double[] errShare; // (tiles, g)

  /**
   * Share of the skip budget {@code eps * kept} that tiles scored during the bounded traversal may
   * use; the rest is left for the frontier's bound mass, so the traversal can still stop.
   */
  static final double TRAVERSAL_SKIP_SHARE = 0.5;

  KScan(BoundedTraversal owner, TileKernels kernels, KvCacheLayout layout, int group, Frontier frontier,
      OutputBound out) {
    this.owner = owner;
    this.kernels = kernels;
    this.d = layout.headDim();
    this.g = group;
    this.tileTokens = layout.tileTokens();
    this.maxTiles = frontier.maxTiles;
    this.frontier = frontier;
    this.out = out;
    this.scanMax = new float[group];
    this.scanSum = new double[group];
    this.scanHigh = new double[group];
    this.scanRef = new float[group];
    this.scanNextRef = new float[group];
    this.scanSkipped = new double[group];
    this.scanSkippedErr = new double[group];
    int nodes = maxTiles + frontier.maxBlocks;
    this.tilesOf = new int[nodes];
    this.order = new long[nodes];
    this.logMass = new double[group];
    this.checkMass = new double[group];
  }

  /** Starts a KV head's pass: nothing skipped, the reference at the state's max. */
  void reset(Tiles tiles, int h0) {
    Arrays.fill(scanSkipped, 0);
    Arrays.fill(scanSkippedErr, 0);
    scanVmax = 0;
    for (int i = 0; i < g; i++) {
      scanRef[i] = tiles.max(h0 + i);
    }
  }


  /**
   * The K-scan with an output owner.target, choosing instead of first-fit: scores the K of every
   * unopened tile (frontier order) and keeps its weights, then leaves out V of the tiles with the
   * smallest error share ({@code mass * distance to the value ball} over each head's owner.target) while
   * every head's skipped error fits 0.9 of {@code owner.target * kept}, kept being everything else, and
   * reads the V of the rest from the kept weights (no second K read). A first-fit version spent
   * the budget on whatever tiles came first and measured distances from the output of the forced
   * tiles only, so at loose targets it stopped with the bound at a third of the target, reading
   * more than needed. Empties the frontier; the final full check (and the repair) still decide.
   */
  void targetScan(Tiles tiles, int kh, int h0) {
        TileSummaries sum = tiles.summaries();
    ValueSummaries vs = tiles.valueSummaries();
    int n = 0;
    while (frontier.heapSize > 0) { // the tiles, in frontier order
      int node = frontier.pop();
      int first = node >= maxTiles ? (node - maxTiles) * TileSummaries.BLOCK_TILES : node;
      int last = node >= maxTiles ? first + TileSummaries.BLOCK_TILES : node + 1;
      for (int t = first; t < last; t++) {
        if (!tiles.opened()[t]) {
          tilesOf[n++] = t;
        }
      }
    }
    if (n == 0) {
      return;
    }
    int stride = g * tileTokens;
    if (weights == null || weights.length < (long) n * stride) {
      weights = new float[Math.multiplyExact(maxTiles, stride)];
      tileMaxes = new float[maxTiles * g];
      tileSums = new double[maxTiles * g];
      errShare = new double[maxTiles * g];
    }
    float[] refs = scanNextRef;
    for (int i = 0; i < g; i++) {
      refs[i] = tiles.max(h0 + i);
    }
    for (int k = 0; k < n; k++) {
      int t = tilesOf[k];
      tiles.scoreOnly(kh, t);
      tiles.countExps(tileTokens);
      float[] own = tiles.ownScores();
      for (int i = 0; i < g; i++) {
        float mx = kernels.max(own, i * tileTokens, tileTokens);
        tileMaxes[k * g + i] = mx;
        tileSums[k * g + i] = kernels.expSum(own, i * tileTokens, tileTokens, mx);
        refs[i] = Math.max(refs[i], mx);
      }
      System.arraycopy(own, 0, weights, k * stride, stride);
    }
    // per tile and head: mass (rounded up) relative to refs, and mass * distance
    double[] kept = scanHigh;
    double[] mHigh = tileSums; // the tiles' sums of exp(s - max), as openWeighted takes them
    for (int i = 0; i < g; i++) {
      kept[i] = tiles.sum(h0 + i) * Math.exp((double) tiles.max(h0 + i) - refs[i]) * (1 - 1e-4);
    }
    double[] high = new double[n * g];
    boolean[] skip = new boolean[n];
    boolean[] done = new boolean[n]; // read already: could never be skipped
    for (int k = 0; k < n; k++) {
      int t = tilesOf[k];
      double kNorm = (double) sum.centroidNorm(tiles.layer(), kh, t, false) + sum.radius(tiles.layer(), kh, t);
      for (int i = 0; i < g; i++) {
        double rel = Math.exp((double) tileMaxes[k * g + i] - refs[i]);
        double slack = (d + 2) * U * tiles.queryNorm(h0 + i) * kNorm;
        high[k * g + i] = tileSums[k * g + i] * rel * Math.exp(slack) * (1 + 1e-4);
        kept[i] += tileSums[k * g + i] * rel * Math.exp(-slack) * (1 - 1e-4);
      }
    }
    // the distances are measured from the output, which the heavy tiles move: first read the tiles
    // whose mass share of some head exceeds its relative owner.target (skipping one would cost about that
    // share times a distance of the order of ||a||), then snapshot the output
    for (int k = 0; k < n; k++) {
      boolean heavy = false;
      for (int i = 0; i < g; i++) {
        heavy |= high[k * g + i] > 0.9 * out.target[i] / Math.max(out.aNorm[i], Double.MIN_NORMAL) * kept[i];
      }
      if (heavy) {
        done[k] = true;
        tiles.openWeighted(kh, tilesOf[k], tileTokens, weights, k * stride, tileMaxes, tileSums, k * g);
      }
    }
    tiles.drain();
    out.snapshot(tiles, h0);
    int m = 0;
    for (int k = 0; k < n; k++) {
      if (done[k]) {
        continue;
      }
      out.distances(vs, vs.tileOffset(tiles.layer(), kh, tilesOf[k]));
      double worst = 0;
      for (int i = 0; i < g; i++) {
        errShare[k * g + i] = high[k * g + i] * out.dist[i];
        worst = Math.max(worst, errShare[k * g + i] / Math.max(out.target[i], Double.MIN_NORMAL));
      }
      order[m++] = ((long) Float.floatToIntBits((float) worst) << 32) | k; // worst >= 0: sortable bits
    }
    tiles.countSummaryBytes((long) m * vs.recordBytes());
    tiles.countFmas((long) m * g * d);
    Arrays.sort(order, 0, m);
    double[] err = logMass;
    Arrays.fill(err, 0);
    double[] lost = checkMass; // mass of the skipped tiles, taken from kept
    Arrays.fill(lost, 0);
    for (int j = 0; j < m; j++) {
      int k = (int) (order[j] & 0xffffffffL);
      boolean fits = true;
      for (int i = 0; i < g && fits; i++) {
        double keptIfSkipped = kept[i] - lost[i] - high[k * g + i];
        fits = err[i] + errShare[k * g + i] <= 0.9 * out.target[i] * keptIfSkipped;
      }
      if (fits) {
        skip[k] = true;
        for (int i = 0; i < g; i++) {
          err[i] += errShare[k * g + i];
          lost[i] += high[k * g + i];
        }
      }
    }
    for (int i = 0; i < g; i++) { // the skipped set, relative to refs
      scanRef[i] = refs[i];
      scanSkipped[i] = 0;
      scanSkippedErr[i] = 0;
    }
    for (int k = 0; k < n; k++) {
      int t = tilesOf[k];
      if (skip[k]) {
        for (int i = 0; i < g; i++) {
          scanSkipped[i] += high[k * g + i];
          scanSkippedErr[i] += errShare[k * g + i];
          logMass[i] = Math.log(high[k * g + i]) + refs[i];
        }
        out.addSkipped(t, logMass);
        scanVmax = Math.max(scanVmax, sum.vmax(tiles.layer(), kh, t));
        tiles.opened()[t] = true;
      } else if (!done[k]) {
        tiles.openWeighted(kh, t, tileTokens, weights, k * stride, tileMaxes, mHigh, k * g);
      }
    }
  }


  /**
   * The fallback when the bounds cannot help: the K of every unopened complete tile is scored
   * (frontier order, see below), so each tile's mass is known from its scores instead of bounded. A tile's V is
   * skipped when, for every head, the masses skipped so far plus this one still fit in epsilon
   * times the mass kept so far; otherwise the tile is read at once (its V right after its K, one
   * stream as in exact mode). The kept mass only grows, so the skipped set fits at the end too:
   * no second pass and no score buffer. A first-fit choice, not the fewest reads: it skips light
   * tiles in visiting order until the budget is spent. Rounding: computed scores differ from exact
   * ones by at most {@code (d+2) u ||q|| ||k||} with {@code ||k|| <= ||c|| + r} (ball record), the
   * masses carry the exp and sum rounding (relative 1e-4 covers T up to 4096); skipped masses are
   * rounded up, the kept mass down.
   */
  void kScan(Tiles tiles, int kh, int h0, int full) {
    boolean[] opened = tiles.opened();
    // frontier order (best bound first): the heavy regions fill the kept mass early, so more of
    // the light tiles after them fit the skip budget; a block's tiles go in index order, so the
    // reads stay sequential runs of 16 tiles
    while (frontier.heapSize > 0) {
      int node = frontier.pop();
      // with an output owner.target, a tenth of the budget is left for the output moving after a skip
      double share = owner.target ? 0.9 : 1;
      if (node >= maxTiles) {
        int first = (node - maxTiles) * TileSummaries.BLOCK_TILES;
        for (int t = first; t < first + TileSummaries.BLOCK_TILES; t++) {
          if (!opened[t]) {
            scanTile(tiles, kh, h0, t, share);
          }
        }
      } else if (!opened[node]) {
        scanTile(tiles, kh, h0, node, share);
      }
    }
  }


  /**
   * Scores tile t's K, then reads its V unless its mass fits what may still be skipped:
   * {@code share * eps * kept} less the masses skipped before. A skipped tile counts as visited.
   */
  void scanTile(Tiles tiles, int kh, int h0, int t, double share) {
        TileSummaries sum = tiles.summaries();
    int count = tiles.scoreOnly(kh, t);
    tiles.countExps(count);
    float[] own = tiles.ownScores();
    double kNorm = (double) sum.centroidNorm(tiles.layer(), kh, t, false) + sum.radius(tiles.layer(), kh, t);
    if (owner.target) { // the distance from the output (last snapshot) to the tile's value ball
      out.distances(tiles.valueSummaries(), tiles.valueSummaries().tileOffset(tiles.layer(), kh, t));
      tiles.countSummaryBytes(tiles.valueSummaries().recordBytes());
      tiles.countFmas((long) g * d);
    }
    boolean skip = true;
    for (int i = 0; i < g; i++) { // weights relative to the tile's own max
      int h = h0 + i;
      float mx = kernels.max(own, i * tileTokens, count);
      scanMax[i] = mx;
      scanSum[i] = kernels.expSum(own, i * tileTokens, count, mx);
      float ref = Math.max(scanRef[i], Math.max(mx, tiles.max(h)));
      scanNextRef[i] = ref;
      double slack = (d + 2) * U * tiles.queryNorm(h) * kNorm;
      scanHigh[i] = scanSum[i] * Math.exp((double) mx - ref + slack) * (1 + 1e-4);
      double skipped = scanSkipped[i] * Math.exp((double) scanRef[i] - ref);
      double kept = tiles.sum(h) * Math.exp((double) tiles.max(h) - ref) * (1 - 1e-4);
      if (owner.target) { // the skipped tiles' share of the output bound, not of the mass
        double skippedErr = scanSkippedErr[i] * Math.exp((double) scanRef[i] - ref);
        skip &= skippedErr + scanHigh[i] * out.dist[i] <= share * out.target[i] * kept;
      } else {
        skip &= skipped + scanHigh[i] <= share * owner.eps(tiles, i) * kept;
      }
    }
    if (skip) {
      for (int i = 0; i < g; i++) { // scanHigh is relative to scanNextRef
        double rescale = Math.exp((double) scanRef[i] - scanNextRef[i]);
        scanSkipped[i] = scanSkipped[i] * rescale + scanHigh[i];
        if (owner.target) {
          scanSkippedErr[i] = scanSkippedErr[i] * rescale + scanHigh[i] * out.dist[i];
          logMass[i] = Math.log(scanHigh[i]) + scanNextRef[i];
        }
        scanRef[i] = scanNextRef[i];
      }
      if (owner.target) {
        out.addSkipped(t, logMass);
      }
      scanVmax = Math.max(scanVmax, sum.vmax(tiles.layer(), kh, t));
      tiles.opened()[t] = true;
    } else {
      tiles.openWeighted(kh, t, count, own, 0, scanMax, scanSum, 0);
    }
  }


  /** The scanned but unread mass of head h0 + i relative to the state's final max. */
  double skippedMass(int i, float m) {
    if (scanSkipped[i] == 0) {
      return 0;
    }
    return scanSkipped[i] * Math.exp((double) scanRef[i] - m);
  }
}
