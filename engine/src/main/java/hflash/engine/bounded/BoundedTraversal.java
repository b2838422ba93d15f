package hflash.engine.bounded;

import hflash.engine.ModeConfig;
import hflash.engine.pass.Tiles;
import hflash.memory.KvCacheLayout;
import hflash.memory.TileSummaries;
import hflash.memory.ValueSummaries;
import hflash.tiles.TileKernels;
import java.util.Arrays;

/**
 * The certified and budgeted traversal of one KV head's group over the two-level summary tree
 * (blocks of {@link TileSummaries#BLOCK_TILES} tiles, then tiles). A frontier of unopened nodes is
 * kept in a heap by priority (the best bound over the group's heads, relative to each head's max);
 * popping a block replaces it by its tiles' bounds, popping a tile opens it (reads K and V).
 *
 * <p>For head h with running max m_h and sum l_h, the frontier's mass bound is
 * {@code E_h = sum_nodes count * exp(UB_h(node) - m_h)}, kept as {@code exp(R_h - m_h) * S_h} with
 * a fixed reference R_h (the largest initial bound; a child's bound never exceeds its parent's) so
 * the running sum S_h never overflows. Certified stops when {@code E_h <= epsilon * l_h} for every
 * head of the group; budgeted when the tile budget is spent.
 */
public final class BoundedTraversal {

  /** Relative rounding slack of a float32 score or bound over d terms: (d + 2) u, u = 2^-24. */
  private static final double U = 0x1p-24;

  private final TileKernels kernels;
  private final KvCacheLayout layout;
  private final int d;
  private final int g;
  private final int tileTokens;
  private final int maxTiles;
  private final int maxBlocks;
  private final float[] ub; // (g, maxTiles + maxBlocks): bound of each node, per head of the group
  private final long[] heap; // frontier: packed (sortable -priority, node id), a binary min-heap
  private int heapSize;
  private final int[] parked; // budgeted: blocks left unexpanded, still part of the frontier
  private final int[] selected; // budgeted: tiles chosen, read after the traversal
  private int selectedSize;
  private int parkedSize;
  private final double[] sum; // (g): S_h, frontier mass at the reference, relative to ref
  private final float[] ref; // (g): R_h
  private final float[] nb = new float[3];
  private final double[] masses; // (nodes) scratch of mostTilesNeeded
  private final int[] tilesOf; // (nodes)
  private final long[] order; // (nodes)
  private final float[] centroidScores; // (g, count): q_h . centroid of a run of nodes being bounded
  private final double[] massOf; // (g, nodes): nodeMass cache, valid for (massUb, massRef)
  private final float[] massUb;
  private final float[] massRef;
  private final OutputBound out; // certified with an output-error target: its bookkeeping
  private final double[] scanSkippedErr; // (g): sum of mass * value-ball distance of the skipped tiles, rel. scanRef
  private final double[] logMass; // (g) scratch
  private final double[] checkMass; // (g): mass of the frontier and skipped tiles at the last full check
  private boolean target; // this call has an output-error target
  // what this call's traversal is: set by run() from the mode's record
  private boolean oracle; // bounds are true tile maxima (CertifiedOracle)
  private boolean budgeted; // stop at a tile budget instead of a mass tolerance
  private double epsilon; // certified and oracle: the mass tolerance (0 with an output target)
  private Tiles tiles; // the worker's tiles during run(), for the helpers without a parameter

  public BoundedTraversal(TileKernels kernels, KvCacheLayout layout, int group) {
    this.kernels = kernels;
    this.layout = layout;
    this.d = layout.headDim();
    this.g = group;
    this.tileTokens = layout.tileTokens();
    this.maxTiles = (int) (layout.paddedCapacity() / tileTokens);
    this.maxBlocks = maxTiles / TileSummaries.BLOCK_TILES;
    int nodes = maxTiles + maxBlocks;
    this.ub = new float[Math.multiplyExact(group, nodes)];
    this.heap = new long[nodes];
    this.parked = new int[nodes];
    this.selected = new int[maxTiles];
    this.sum = new double[group];
    this.ref = new float[group];
    this.centroidScores = new float[group * Math.max(maxBlocks, TileSummaries.BLOCK_TILES)];
    this.masses = new double[nodes];
    this.scanMax = new float[group];
    this.scanSum = new double[group];
    this.scanHigh = new double[group];
    this.scanRef = new float[group];
    this.scanNextRef = new float[group];
    this.scanSkipped = new double[group];
    this.massOf = new double[group * nodes];
    this.massUb = new float[group * nodes];
    this.massRef = new float[group * nodes];
    Arrays.fill(massUb, Float.NaN); // NaN equals nothing: no entry is valid before it is computed
    this.tilesOf = new int[nodes];
    this.order = new long[nodes];
    this.out = new OutputBound(d, group, maxTiles);
    this.scanSkippedErr = new double[group];
    this.logMass = new double[group];
    this.checkMass = new double[group];
  }

  /**
   * Runs the traversal for KV head kh in {@code mode} (certified, its oracle, or budgeted with
   * {@code budget} tiles; the budget is ignored otherwise). The first, the last
   * complete and the incomplete tile are always opened first. Writes rho and the error bound of
   * each head into the call's report.
   */
  void run(Tiles tiles, int kh, ModeConfig mode, int budget) {
    tiles.resetGroup(kh);
    if (tiles.keys() == 0) {
      return;
    }
    budgeted = mode instanceof ModeConfig.Budgeted;
    oracle = mode instanceof ModeConfig.CertifiedOracle;
    ModeConfig.Certified certified = mode instanceof ModeConfig.Certified c ? c : null;
    epsilon = certified != null ? certified.epsilon() : oracle ? ((ModeConfig.CertifiedOracle) mode).epsilon() : 0;
    this.tiles = tiles;
    int h0 = kh * g;
    int keys = tiles.keys();
    int full = keys / tileTokens; // complete tiles: their summaries are valid
    int tileCount = (keys + tileTokens - 1) / tileTokens;
    boolean[] opened = tiles.opened();
    Arrays.fill(opened, 0, tileCount, false);
    int used = tiles.open(kh, 0);
    if (full > 1) {
      used += tiles.open(kh, full - 1);
    }
    if (tileCount > full && full > 0) { // with no complete tile, the open tile is tile 0, read above
      used += tiles.open(kh, full);
    }
    seedFrontier(tiles, kh, full);
    Arrays.fill(scanSkipped, 0);
    Arrays.fill(scanSkippedErr, 0);
    scanVmax = 0;
    for (int i = 0; i < g; i++) {
      scanRef[i] = tiles.max(h0 + i);
    }
    target = certified != null && certified.outputTarget();
    boolean checked = false; // target: the last full check passed and nothing changed since
    if (target) {
      out.reset(certified.maxError());
      checked = outputCheck(tiles, kh, h0); // calibrates the mass share to aim at
    }
    if (certified != null && mostTilesNeeded(tiles, h0, full)) {
      // the bounds cannot rule out most of the cache: score the K of every unopened tile and read
      // V only where the exact masses need it (the fallback); empties the frontier
      if (target) {
        targetScan(tiles, kh, h0);
      } else {
        kScan(tiles, kh, h0, full);
      }
    }
    parkedSize = 0;
    int expansions = 0;
    // budgeted expands only about twice the blocks its budget could fill: bounding every tile of
    // every block costs more than reading 5 % of them when the bounds are uniformly loose
    int maxExpansions = !budgeted ? Integer.MAX_VALUE
        : 2 * ((budget + TileSummaries.BLOCK_TILES - 1) / TileSummaries.BLOCK_TILES) + 1;
    while (heapSize > 0) {
      if (budgeted ? used >= budget : (checked = withinEpsilon(tiles, kh, h0))) {
        break;
      }
      int node = pop();
      if (node >= maxTiles && expansions >= maxExpansions) {
        parked[parkedSize++] = node; // stays unread and in the mass bound, at block level
        continue;
      }
      removeMass(node, h0);
      if (node >= maxTiles) {
        expandBlock(tiles, kh, node - maxTiles);
        expansions++;
      } else if (!opened[node]) {
        if (budgeted) { // choose now, read later in index order
          opened[node] = true;
          selected[selectedSize++] = node;
          used++;
        } else if (oracle) {
          used += tiles.open(kh, node);
        } else { // certified: K first; V unless the exact mass fits half the skip budget
          scanTile(tiles, kh, h0, node, TRAVERSAL_SKIP_SHARE);
          used++;
        }
      }
    }
    // ascending order: neighbouring tiles are neighbours in memory, so the prefetchers keep
    // streaming across them instead of restarting on every tile (W1 f16 128k, 5 %: see
    // docs/BENCHMARKS.md); the set read, hence the bound, is the same in any order
    Arrays.sort(selected, 0, selectedSize);
    for (int k = 0; k < selectedSize; k++) {
      tiles.open(kh, selected[k]);
    }
    selectedSize = 0;
    recomputeSums(h0);
    if (target && !checked && !outputCheck(tiles, kh, h0)) {
      openSkippedUntilWithinTarget(tiles, kh, h0); // the frontier is empty: only skipped tiles remain
    }
    tiles.drain(); // the output norm below needs every p.V of this group applied
    float vmax = Math.max(frontierVmax(tiles, kh), scanVmax);
    for (int i = 0; i < g; i++) {
      int h = h0 + i;
      double e = mass(i, h0) + skippedMass(i, h0);
      double l = tiles.sum(h);
      double rho = e == 0 ? 0 : Double.isInfinite(e) ? 1 : e / (l + e);
      tiles.reportBound(h, rho, rho == 0 ? 0 : target ? out.bound[i] : rho * (vmax + tiles.outputNorm(h)));
    }
    this.tiles = null;
  }

  // ------------------------------------------------------------- output-error target

  /**
   * The full output bound of every head of the group (see {@link OutputBound}): each frontier node
   * and each skipped tile at its mass bound times the distance from the current output to its value
   * ball, over the opened mass; the mass-share bound {@code rho (vmax + ||a||)} when that is lower.
   * Returns whether every head is within its target, and re-aims the mass share the traversal
   * checks against before the next full check.
   */
  private boolean outputCheck(Tiles tiles, int kh, int h0) {
        ValueSummaries vs = tiles.valueSummaries();
    tiles.drain();
    out.snapshot(tiles, h0);
    double[] err = logMass; // scratch: sum of mass * distance per head
    Arrays.fill(err, 0);
    Arrays.fill(checkMass, 0);
    for (int k = 0; k < heapSize; k++) {
      int node = frontierNode(k);
      out.distances(vs, node >= maxTiles ? vs.blockOffset(tiles.layer(), kh, node - maxTiles)
          : vs.tileOffset(tiles.layer(), kh, node));
      for (int i = 0; i < g; i++) {
        double e = nodeMass(i, node) * Math.exp((double) ref[i] - tiles.max(h0 + i));
        checkMass[i] += e;
        err[i] += e * out.dist[i];
      }
    }
    for (int k = 0; k < out.skippedCount; k++) {
      out.distances(vs, vs.tileOffset(tiles.layer(), kh, out.skipped[k]));
      for (int i = 0; i < g; i++) {
        double e = out.skippedMass(i, k, tiles.max(h0 + i));
        checkMass[i] += e;
        err[i] += e * out.dist[i];
      }
    }
    tiles.countSummaryBytes((long) (heapSize + out.skippedCount) * vs.recordBytes());
    tiles.countFmas((long) (heapSize + out.skippedCount) * g * d);
    float vmax = Math.max(frontierVmax(tiles, kh), scanVmax);
    boolean pass = true;
    for (int i = 0; i < g; i++) {
      double l = tiles.sum(h0 + i);
      double e = checkMass[i];
      double rho = e == 0 ? 0 : Double.isInfinite(e) ? 1 : e / (l + e);
      double byBalls = e == 0 ? 0 : l > 0 ? err[i] / l : Double.POSITIVE_INFINITY;
      double b = Math.min(byBalls, rho == 0 ? 0 : rho * (vmax + out.aNorm[i]));
      out.bound[i] = b;
      boolean ok = b <= out.target[i];
      pass &= ok;
      // the mass share at which the bound would meet the target if the remaining nodes kept their
      // mass-weighted distance; a failing head aims 10 % below it, so checks are spaced
      // (from the ball bound: the mass-share bound saturates at rho = 1 while the frontier is loose)
      double aim = err[i] == 0 || !(l > 0) ? Double.MAX_VALUE : out.target[i] * e / err[i];
      out.eps[i] = Math.min(Double.MAX_VALUE, ok ? Math.max(aim, e / l) : 0.9 * aim);
    }
    return pass;
  }

  /**
   * When the frontier is spent and the skipped tiles' bound still misses the target (the output
   * moved after they were skipped): opens them again, heaviest first, an eighth at a time, until
   * the full bound meets the target. Rare; every tile opened makes the bound smaller, and with none
   * left it is 0.
   */
  private void openSkippedUntilWithinTarget(Tiles tiles, int kh, int h0) {
        do {
      int batch = Math.max(1, out.skippedCount / 8);
      for (int b = 0; b < batch && out.skippedCount > 0; b++) {
        int best = 0;
        double bestMass = Double.NEGATIVE_INFINITY;
        for (int k = 0; k < out.skippedCount; k++) {
          for (int i = 0; i < g; i++) {
            double lm = out.skipLog[i * maxTiles + k] - tiles.max(h0 + i);
            if (lm > bestMass) {
              bestMass = lm;
              best = k;
            }
          }
        }
        int t = out.skipped[best];
        out.removeSkipped(best);
        tiles.open(kh, t);
      }
      for (int i = 0; i < g; i++) { // the scan's running sums, from what is still skipped
        scanRef[i] = tiles.max(h0 + i);
        scanSkipped[i] = 0;
        for (int k = 0; k < out.skippedCount; k++) {
          scanSkipped[i] += out.skippedMass(i, k, scanRef[i]);
        }
      }
    } while (!outputCheck(tiles, kh, h0) && out.skippedCount > 0);
  }

  /**
   * The K-scan with an output target, choosing instead of first-fit: scores the K of every
   * unopened tile (frontier order) and keeps its weights, then leaves out V of the tiles with the
   * smallest error share ({@code mass * distance to the value ball} over each head's target) while
   * every head's skipped error fits 0.9 of {@code target * kept}, kept being everything else, and
   * reads the V of the rest from the kept weights (no second K read). A first-fit version spent
   * the budget on whatever came first and stopped at a third of the target (docs/BENCHMARKS.md
   * entry 27). Empties the frontier; the final full check (and the repair) still decide.
   */
  private void targetScan(Tiles tiles, int kh, int h0) {
        TileSummaries sum = tiles.summaries();
    ValueSummaries vs = tiles.valueSummaries();
    int n = 0;
    while (heapSize > 0) { // the tiles, in frontier order
      int node = pop();
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
    // whose mass share of some head exceeds its relative target (skipping one would cost about that
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

  private float[] weights; // (tiles, g, tileTokens) target scan: the weights of the scored tiles
  private float[] tileMaxes; // (tiles, g)
  private double[] tileSums; // (tiles, g)
  private double[] errShare; // (tiles, g)

  /** The mass share head i aims at: epsilon, or with an output target the calibrated share. */
  private double eps(Tiles tiles, int i) {
    return target ? out.eps[i] : epsilon;
  }

  // ---------------------------------------------------------------------- certified K-scan

  private final float[] scanMax; // (g): the scanned tile's max per head
  private final double[] scanSum; // (g): sum of exp(s - tile max) per head
  private final double[] scanHigh; // (g): the tile's mass relative to the new reference, rounded up
  private final float[] scanRef; // (g): reference of scanSkipped: the largest max seen
  private final float[] scanNextRef; // (g): the reference including the tile being tested
  private final double[] scanSkipped; // (g): mass of the scanned tiles left unread, relative to scanRef
  private float scanVmax; // largest vmax of the scanned tiles left unread

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
  private void kScan(Tiles tiles, int kh, int h0, int full) {
    boolean[] opened = tiles.opened();
    // frontier order (best bound first): the heavy regions fill the kept mass early, so more of
    // the light tiles after them fit the skip budget; a block's tiles go in index order, so the
    // reads stay sequential runs of 16 tiles
    while (heapSize > 0) {
      int node = pop();
      // with an output target, a tenth of the budget is left for the output moving after a skip
      double share = target ? 0.9 : 1;
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
   * Share of the skip budget {@code eps * kept} that tiles scored during the bounded traversal may
   * use; the rest is left for the frontier's bound mass, so the traversal can still stop.
   */
  static final double TRAVERSAL_SKIP_SHARE = 0.5;

  /**
   * Scores tile t's K, then reads its V unless its mass fits what may still be skipped:
   * {@code share * eps * kept} less the masses skipped before. A skipped tile counts as visited.
   */
  private void scanTile(Tiles tiles, int kh, int h0, int t, double share) {
        TileSummaries sum = tiles.summaries();
    int count = tiles.scoreOnly(kh, t);
    tiles.countExps(count);
    float[] own = tiles.ownScores();
    double kNorm = (double) sum.centroidNorm(tiles.layer(), kh, t, false) + sum.radius(tiles.layer(), kh, t);
    if (target) { // the distance from the output (last snapshot) to the tile's value ball
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
      if (target) { // the skipped tiles' share of the output bound, not of the mass
        double skippedErr = scanSkippedErr[i] * Math.exp((double) scanRef[i] - ref);
        skip &= skippedErr + scanHigh[i] * out.dist[i] <= share * out.target[i] * kept;
      } else {
        skip &= skipped + scanHigh[i] <= share * eps(tiles, i) * kept;
      }
    }
    if (skip) {
      for (int i = 0; i < g; i++) { // scanHigh is relative to scanNextRef
        double rescale = Math.exp((double) scanRef[i] - scanNextRef[i]);
        scanSkipped[i] = scanSkipped[i] * rescale + scanHigh[i];
        if (target) {
          scanSkippedErr[i] = scanSkippedErr[i] * rescale + scanHigh[i] * out.dist[i];
          logMass[i] = Math.log(scanHigh[i]) + scanNextRef[i];
        }
        scanRef[i] = scanNextRef[i];
      }
      if (target) {
        out.addSkipped(t, logMass);
      }
      scanVmax = Math.max(scanVmax, sum.vmax(tiles.layer(), kh, t));
      tiles.opened()[t] = true;
    } else {
      tiles.openWeighted(kh, t, count, own, 0, scanMax, scanSum, 0);
    }
  }

  /** The scanned but unread mass of head h0 + i relative to the state's final max. */
  private double skippedMass(int i, int h0) {
    if (scanSkipped[i] == 0) {
      return 0;
    }
    return scanSkipped[i] * Math.exp((double) scanRef[i] - tiles.max(h0 + i));
  }

  /** Share of the tiles above which certified stops bounding and reads the rest in order. */
  static final double SEQUENTIAL_SHARE = 0.95;

  /**
   * Whether, for some head, even removing the frontier's heaviest nodes until the rest fits
   * {@code eps * l} (with l as it is now: it only grows) takes more than
   * {@link #SEQUENTIAL_SHARE} of the tiles. A heuristic for the read order only: both answers
   * give a certified result.
   */
  private boolean mostTilesNeeded(Tiles tiles, int h0, int full) {
    if (heapSize == 0) {
      return false;
    }
    for (int i = 0; i < g; i++) {
      double total = mass(i, h0);
      double allowed = eps(tiles, i) * tiles.sum(h0 + i);
      if (!(total > allowed)) {
        continue;
      }
      double scale = Math.exp((double) ref[i] - tiles.max(h0 + i));
      for (int k = 0; k < heapSize; k++) {
        int node = (int) (heap[k] & 0xffffffffL);
        masses[k] = nodeMass(i, node) * scale;
        tilesOf[k] = node >= maxTiles ? TileSummaries.BLOCK_TILES : 1;
      }
      // heaviest first: sort indices by mass (descending) with a primitive sort on packed keys
      for (int k = 0; k < heapSize; k++) {
        order[k] = ((long) (Integer.MAX_VALUE - Float.floatToIntBits((float) masses[k])) << 32) | k;
      }
      java.util.Arrays.sort(order, 0, heapSize);
      double remaining = total;
      int needed = 0;
      for (int k = 0; k < heapSize && remaining > allowed; k++) {
        int idx = (int) (order[k] & 0xffffffffL);
        remaining -= masses[idx];
        needed += tilesOf[idx];
      }
      if (needed > SEQUENTIAL_SHARE * full) {
        return true;
      }
    }
    return false;
  }

  /** Complete blocks as block nodes (or true-max tiles for the oracle), the rest as tiles. */
  private void seedFrontier(Tiles tiles, int kh, int full) {
    heapSize = 0;
    Arrays.fill(sum, 0);
    Arrays.fill(ref, Float.NEGATIVE_INFINITY);
    int blocks = oracle ? 0 : full / TileSummaries.BLOCK_TILES;
    if (batchedBalls(tiles) && blocks > 0) {
      ballScores(tiles, kh, maxTiles, blocks);
      for (int b = 0; b < blocks; b++) {
        ballBound(tiles, kh, maxTiles + b, b, blocks);
        heap[heapSize++] = maxTiles + b;
      }
    } else {
      for (int b = 0; b < blocks; b++) {
        boundNode(tiles, kh, maxTiles + b);
      }
    }
    for (int t = blocks * TileSummaries.BLOCK_TILES; t < full; t++) {
      if (!tiles.opened()[t]) {
        boundNode(tiles, kh, t);
      }
    }
    for (int i = 0; i < g; i++) { // the reference: the largest initial bound
      for (int k = 0; k < heapSize; k++) {
        ref[i] = Math.max(ref[i], ub[i * (maxTiles + maxBlocks) + (int) heap[k]]);
      }
    }
    for (int k = 0; k < heapSize; k++) {
      int node = (int) heap[k];
      for (int i = 0; i < g; i++) {
        sum[i] += nodeMass(i, node);
      }
      heap[k] = pack(priority(node, kh * g), node);
    }
    for (int k = heapSize / 2 - 1; k >= 0; k--) {
      siftDown(k);
    }
  }

  /** Bounds node's scores for every head; appends the node (unpacked) to the heap array. */
  private void boundNode(Tiles tiles, int kh, int node) {
    int h0 = kh * g;
    int stride = maxTiles + maxBlocks;
    if (oracle) {
      float[] s = tiles.ownScores();
      long off = layout.tileOffset(tiles.layer(), kh, node);
      kernels.scores(tiles.queries(), h0 * d, g, d, tiles.keySegment(), off, layout.dtype(), tileTokens, s, tileTokens);
      tiles.countFmas((long) tileTokens * g * d);
      for (int i = 0; i < g; i++) {
        ub[i * stride + node] = kernels.max(s, i * tileTokens, tileTokens);
      }
    } else if (budgeted) {
      ballBound(tiles, kh, node);
    } else {
      TileSummaries sum = tiles.summaries();
      boolean block = node >= maxTiles;
      int index = block ? node - maxTiles : node;
      long box = block ? sum.blockBoxOffset(tiles.layer(), kh, index) : sum.boxOffset(tiles.layer(), kh, index);
      long ballAt = block ? sum.blockBallOffset(tiles.layer(), kh, index) : sum.ballOffset(tiles.layer(), kh, index);
      float radius = block ? sum.blockRadius(tiles.layer(), kh, index) : sum.radius(tiles.layer(), kh, index);
      for (int i = 0; i < g; i++) {
        kernels.nodeBounds(tiles.queries(), (h0 + i) * d, d, tiles.summarySegment(), box, ballAt, layout.dtype(), nb, 0);
        double ball = nb[2] + tiles.queryNorm(h0 + i) * (double) radius * (1 + 1e-6);
        double slack = 3 * (d + 2) * U * nb[1];
        ub[i * stride + node] = (float) (Math.min(nb[0], ball) + slack) + Math.ulp(nb[1]);
      }
      tiles.countSummaryBytes(sum.recordBytes());
      tiles.countFmas(4L * g * d);
    }
    heap[heapSize++] = node;
  }

  /**
   * The budgeted mode's cheaper bound: the ball only, {@code q.c + ||q|| r}, one d-long dot per
   * head with the centroid loaded once for the group, reading only the ball records (centroid,
   * radius, vmax, ||c||: a third of an f32 node's summary bytes, half of a 16-bit one's). Float slack: a computed score is
   * off by at most {@code (d+2) u ||q|| ||k||} and {@code ||k|| <= ||c|| + r}; the computed
   * {@code q.c} by {@code (d+2) u ||q|| ||c||}. Looser than min(box, ball), still a bound on any
   * data: the budget decides what is read, the bound is only reported.
   */
  private void ballBound(Tiles tiles, int kh, int node) {
    ballScores(tiles, kh, node, 1);
    ballBound(tiles, kh, node, 0, 1);
  }

  /**
   * {@code q_h . centroid} of {@code count} consecutive records from {@code node} (all blocks, or
   * the tiles of one block) in one kernel call: the records are read as one strided stream, which
   * (dense: ball records lie apart from the box records) that the prefetchers follow, instead of
   * one cold record at a time (the summaries are usually out of
   * cache: the KV stream of the previous call evicted them).
   */
  private void ballScores(Tiles tiles, int kh, int node, int count) {
    TileSummaries sum = tiles.summaries();
    boolean block = node >= maxTiles;
    long ball = block ? sum.blockBallOffset(tiles.layer(), kh, node - maxTiles) : sum.ballOffset(tiles.layer(), kh, node);
    kernels.rowScores(tiles.queries(), kh * g * d, g, d, tiles.summarySegment(), ball, sum.ballBytes(), count,
        centroidScores, count);
    tiles.countSummaryBytes(count * sum.ballBytes());
    tiles.countFmas((long) count * g * d);
  }

  /** The ball bound of {@code node} from its centroid scores, column j of a run of {@code count}. */
  private void ballBound(Tiles tiles, int kh, int node, int j, int count) {
    int h0 = kh * g;
    TileSummaries sum = tiles.summaries();
    boolean block = node >= maxTiles;
    int index = block ? node - maxTiles : node;
    float radius = block ? sum.blockRadius(tiles.layer(), kh, index) : sum.radius(tiles.layer(), kh, index);
    float cnorm = sum.centroidNorm(tiles.layer(), kh, index, block);
    int stride = maxTiles + maxBlocks;
    for (int i = 0; i < g; i++) {
      ub[i * stride + node] = NodeBounds.ballBound(centroidScores[i * count + j], tiles.queryNorm(h0 + i), radius, cnorm, d);
    }
  }



  /** Budgeted, from summaries: every bound of the run is a ball bound, scored in one call. */
  private boolean batchedBalls(Tiles tiles) {
    return !oracle && budgeted;
  }

  private void expandBlock(Tiles tiles, int kh, int block) {
    int h0 = kh * g;
    int first = block * TileSummaries.BLOCK_TILES;
    boolean batched = batchedBalls(tiles);
    if (batched) {
      ballScores(tiles, kh, first, TileSummaries.BLOCK_TILES);
    }
    for (int t = first; t < first + TileSummaries.BLOCK_TILES; t++) {
      if (tiles.opened()[t]) {
        continue;
      }
      int at = heapSize;
      if (batched) {
        ballBound(tiles, kh, t, t - first, TileSummaries.BLOCK_TILES);
        heap[heapSize++] = t;
      } else {
        boundNode(tiles, kh, t);
      }
      for (int i = 0; i < g; i++) {
        // in exact arithmetic a tile's bound never exceeds its block's; float rounding might
        raiseReference(i, ub[i * (maxTiles + maxBlocks) + t]);
        sum[i] += nodeMass(i, t);
      }
      heap[at] = pack(priority(t, h0), t);
      siftUp(at);
    }
  }

  /**
   * count * exp(UB - R) (UB &lt;= R), clamped below at exp(-700): never underestimated. A node's
   * mass is asked for when it joins the frontier, when it leaves and when the sums are re-added;
   * it is a pure function of (UB, R), so it is kept with the pair it was computed for and reused
   * while both are unchanged (Math.exp was a tenth of a budgeted call).
   */
  private double nodeMass(int i, int node) {
    int at = i * (maxTiles + maxBlocks) + node;
    float bound = ub[at];
    if (massUb[at] == bound && massRef[at] == ref[i]) {
      return massOf[at];
    }
    int count = node >= maxTiles ? TileSummaries.BLOCK_TILES * tileTokens : tileTokens;
    double mass = count * Math.exp(Math.max((double) bound - ref[i], -700));
    massUb[at] = bound;
    massRef[at] = ref[i];
    massOf[at] = mass;
    return mass;
  }

  /** Keeps R_h the largest bound in the frontier, rescaling S_h. */
  private void raiseReference(int i, float bound) {
    if (bound > ref[i]) {
      sum[i] *= Math.exp((double) ref[i] - bound);
      ref[i] = bound;
    }
  }

  private void removeMass(int node, int h0) {
    for (int i = 0; i < g; i++) {
      sum[i] = Math.max(0, sum[i] - nodeMass(i, node));
    }
  }

  /** E_h for head h0 + i: +inf when it does not fit a double, never NaN. */
  private double mass(int i, int h0) {
    if (sum[i] == 0) {
      return 0;
    }
    return sum[i] * Math.exp((double) ref[i] - tiles.max(h0 + i));
  }

  /** The stopping rule, confirmed with freshly summed masses (no cancellation drift). */
  private boolean withinEpsilon(Tiles tiles, int kh, int h0) {
    for (int i = 0; i < g; i++) {
      if (!(mass(i, h0) + skippedMass(i, h0) <= eps(tiles, i) * tiles.sum(h0 + i))) {
        return false;
      }
    }
    recomputeSums(h0);
    for (int i = 0; i < g; i++) {
      if (!(mass(i, h0) + skippedMass(i, h0) <= eps(tiles, i) * tiles.sum(h0 + i))) {
        return false;
      }
    }
    // with an output target the mass share is only when to look: the full bound decides
    return !target || outputCheck(tiles, kh, h0);
  }

  private void recomputeSums(int h0) {
    Arrays.fill(sum, 0);
    for (int k = 0; k < heapSize + parkedSize; k++) {
      int node = frontierNode(k);
      for (int i = 0; i < g; i++) {
        sum[i] += nodeMass(i, node);
      }
    }
  }

  /** Node k of the frontier: the heap's nodes, then the parked blocks. */
  private int frontierNode(int k) {
    return k < heapSize ? (int) (heap[k] & 0xffffffffL) : parked[k - heapSize];
  }

  private float frontierVmax(Tiles tiles, int kh) {
    float vmax = 0;
    TileSummaries s = tiles.summaries();
    for (int k = 0; k < heapSize + parkedSize; k++) {
      int node = frontierNode(k);
      vmax = Math.max(vmax, node >= maxTiles ? s.blockVmax(tiles.layer(), kh, node - maxTiles)
          : s.vmax(tiles.layer(), kh, node));
    }
    return vmax;
  }

  /** Best bound over the group's heads, relative to each head's current max. */
  private float priority(int node, int h0) {
    float p = Float.NEGATIVE_INFINITY;
    for (int i = 0; i < g; i++) {
      p = Math.max(p, ub[i * (maxTiles + maxBlocks) + node] - tiles.max(h0 + i));
    }
    return p;
  }

  // ------------------------------------------------------------------------- binary heap

  private static long pack(float priority, int node) {
    int bits = Float.floatToIntBits(-priority); // min-heap on -priority: best first
    int sortable = bits >= 0 ? bits : bits ^ 0x7fffffff;
    return ((long) sortable << 32) | (node & 0xffffffffL);
  }

  private int pop() {
    long top = heap[0];
    heap[0] = heap[--heapSize];
    siftDown(0);
    return (int) (top & 0xffffffffL);
  }

  private void siftUp(int k) {
    long x = heap[k];
    while (k > 0) {
      int parent = (k - 1) >>> 1;
      if (heap[parent] <= x) {
        break;
      }
      heap[k] = heap[parent];
      k = parent;
    }
    heap[k] = x;
  }

  private void siftDown(int k) {
    long x = heap[k];
    int half = heapSize >>> 1;
    while (k < half) {
      int child = 2 * k + 1;
      if (child + 1 < heapSize && heap[child + 1] < heap[child]) {
        child++;
      }
      if (x <= heap[child]) {
        break;
      }
      heap[k] = heap[child];
      k = child;
    }
    heap[k] = x;
  }
}
