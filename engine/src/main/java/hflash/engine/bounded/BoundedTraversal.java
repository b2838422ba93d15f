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
  private final int d;
  private final int g;
  private final int tileTokens;
  private final int maxTiles;
  private final Frontier frontier; // the unopened nodes, their bounds and mass
  private final NodeBounds bounds; // fills the frontier's bounds
  private final KScan scan; // the certified K-scans and the skipped tiles' mass
  final OutputBound out; // certified with an output-error target: its bookkeeping
  private final int[] selected; // budgeted: tiles chosen, read after the traversal
  private int selectedSize;
  private final double[] masses; // (nodes) scratch of mostTilesNeeded
  private final int[] tilesOf; // (nodes)
  private final long[] order; // (nodes)
  private final double[] logMass; // (g) scratch
  private final double[] checkMass; // (g): mass of the frontier and skipped tiles at the last full check
  // what this call's traversal is: set by run() from the mode's record
  boolean target; // certified with an output-error target
  private boolean oracle; // bounds are true tile maxima (CertifiedOracle)
  private boolean budgeted; // stop at a tile budget instead of a mass tolerance
  private double epsilon; // certified and oracle: the mass tolerance (0 with an output target)
  private Tiles tiles; // the worker's tiles during run(), for the helpers without a parameter

  public BoundedTraversal(TileKernels kernels, KvCacheLayout layout, int group) {
    this.kernels = kernels;
    this.d = layout.headDim();
    this.g = group;
    this.tileTokens = layout.tileTokens();
    this.maxTiles = (int) (layout.paddedCapacity() / tileTokens);
    this.frontier = new Frontier(group, tileTokens, maxTiles);
    this.bounds = new NodeBounds(kernels, layout, group, frontier);
    this.out = new OutputBound(d, group, maxTiles);
    this.scan = new KScan(this, kernels, layout, group, frontier, out);
    int nodes = maxTiles + frontier.maxBlocks;
    this.selected = new int[maxTiles];
    this.masses = new double[nodes];
    this.tilesOf = new int[nodes];
    this.order = new long[nodes];
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
    bounds.mode(oracle, budgeted);
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
    scan.reset(tiles, h0);
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
        scan.targetScan(tiles, kh, h0);
      } else {
        scan.kScan(tiles, kh, h0, full);
      }
    }
    frontier.parkedSize = 0;
    int expansions = 0;
    // budgeted expands only about twice the blocks its budget could fill: bounding every tile of
    // every block costs more than reading 5 % of them when the bounds are uniformly loose
    int maxExpansions = !budgeted ? Integer.MAX_VALUE
        : 2 * ((budget + TileSummaries.BLOCK_TILES - 1) / TileSummaries.BLOCK_TILES) + 1;
    while (frontier.heapSize > 0) {
      if (budgeted ? used >= budget : (checked = withinEpsilon(tiles, kh, h0))) {
        break;
      }
      int node = frontier.pop();
      if (node >= maxTiles && expansions >= maxExpansions) {
        frontier.parked[frontier.parkedSize++] = node; // stays unread and in the mass bound, at block level
        continue;
      }
      frontier.removeMass(node);
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
          scan.scanTile(tiles, kh, h0, node, KScan.TRAVERSAL_SKIP_SHARE);
          used++;
        }
      }
    }
    // ascending order: neighbouring tiles are neighbours in memory, so the prefetchers keep
    // streaming across them instead of restarting on every tile (with the capped expansion, this
    // took budgeted 5 % of W1 f16 128k from 11.2 to 5.3 ms); the set read, hence the bound, is
    // the same in any order
    Arrays.sort(selected, 0, selectedSize);
    for (int k = 0; k < selectedSize; k++) {
      tiles.open(kh, selected[k]);
    }
    selectedSize = 0;
    frontier.recomputeSums();
    if (target && !checked && !outputCheck(tiles, kh, h0)) {
      openSkippedUntilWithinTarget(tiles, kh, h0); // the frontier is empty: only skipped tiles remain
    }
    tiles.drain(); // the output norm below needs every p.V of this group applied
    float vmax = Math.max(frontier.vmax(tiles, kh), scan.scanVmax);
    for (int i = 0; i < g; i++) {
      int h = h0 + i;
      double e = mass(i, h0) + scan.skippedMass(i, tiles.max(h0 + i));
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
    for (int k = 0; k < frontier.heapSize; k++) {
      int node = frontier.node(k);
      out.distances(vs, node >= maxTiles ? vs.blockOffset(tiles.layer(), kh, node - maxTiles)
          : vs.tileOffset(tiles.layer(), kh, node));
      for (int i = 0; i < g; i++) {
        double e = frontier.nodeMass(i, node) * Math.exp((double) frontier.ref[i] - tiles.max(h0 + i));
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
    tiles.countSummaryBytes((long) (frontier.heapSize + out.skippedCount) * vs.recordBytes());
    tiles.countFmas((long) (frontier.heapSize + out.skippedCount) * g * d);
    float vmax = Math.max(frontier.vmax(tiles, kh), scan.scanVmax);
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
        scan.scanRef[i] = tiles.max(h0 + i);
        scan.scanSkipped[i] = 0;
        for (int k = 0; k < out.skippedCount; k++) {
          scan.scanSkipped[i] += out.skippedMass(i, k, scan.scanRef[i]);
        }
      }
    } while (!outputCheck(tiles, kh, h0) && out.skippedCount > 0);
  }

  /** E_h for head h0 + i: +inf when it does not fit a double, never NaN. */
  private double mass(int i, int h0) {
    return frontier.mass(i, tiles.max(h0 + i));
  }

  /** The mass share head i aims at: epsilon, or with an output target the calibrated share. */
  double eps(Tiles tiles, int i) {
    return target ? out.eps[i] : epsilon;
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
    if (frontier.heapSize == 0) {
      return false;
    }
    for (int i = 0; i < g; i++) {
      double total = mass(i, h0);
      double allowed = eps(tiles, i) * tiles.sum(h0 + i);
      if (!(total > allowed)) {
        continue;
      }
      double scale = Math.exp((double) frontier.ref[i] - tiles.max(h0 + i));
      for (int k = 0; k < frontier.heapSize; k++) {
        int node = (int) (frontier.heap[k] & 0xffffffffL);
        masses[k] = frontier.nodeMass(i, node) * scale;
        tilesOf[k] = node >= maxTiles ? TileSummaries.BLOCK_TILES : 1;
      }
      // heaviest first: sort indices by mass (descending) with a primitive sort on packed keys
      for (int k = 0; k < frontier.heapSize; k++) {
        order[k] = ((long) (Integer.MAX_VALUE - Float.floatToIntBits((float) masses[k])) << 32) | k;
      }
      java.util.Arrays.sort(order, 0, frontier.heapSize);
      double remaining = total;
      int needed = 0;
      for (int k = 0; k < frontier.heapSize && remaining > allowed; k++) {
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
    frontier.clear();
    int blocks = oracle ? 0 : full / TileSummaries.BLOCK_TILES;
    if (batchedBalls(tiles) && blocks > 0) {
      bounds.ballScores(tiles, kh, maxTiles, blocks);
      for (int b = 0; b < blocks; b++) {
        bounds.ballBound(tiles, kh, maxTiles + b, b, blocks);
        frontier.heap[frontier.heapSize++] = maxTiles + b;
      }
    } else {
      for (int b = 0; b < blocks; b++) {
        bounds.bound(tiles, kh, maxTiles + b);
      }
    }
    for (int t = blocks * TileSummaries.BLOCK_TILES; t < full; t++) {
      if (!tiles.opened()[t]) {
        bounds.bound(tiles, kh, t);
      }
    }
    for (int i = 0; i < g; i++) { // the reference: the largest initial bound
      for (int k = 0; k < frontier.heapSize; k++) {
        frontier.ref[i] = Math.max(frontier.ref[i], frontier.ub[i * (maxTiles + frontier.maxBlocks) + (int) frontier.heap[k]]);
      }
    }
    for (int k = 0; k < frontier.heapSize; k++) {
      int node = (int) frontier.heap[k];
      for (int i = 0; i < g; i++) {
        frontier.sum[i] += frontier.nodeMass(i, node);
      }
      frontier.heap[k] = Frontier.pack(frontier.priority(node, tiles, kh * g), node);
    }
    for (int k = frontier.heapSize / 2 - 1; k >= 0; k--) {
      frontier.siftDown(k);
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
      bounds.ballScores(tiles, kh, first, TileSummaries.BLOCK_TILES);
    }
    for (int t = first; t < first + TileSummaries.BLOCK_TILES; t++) {
      if (tiles.opened()[t]) {
        continue;
      }
      int at = frontier.heapSize;
      if (batched) {
        bounds.ballBound(tiles, kh, t, t - first, TileSummaries.BLOCK_TILES);
        frontier.heap[frontier.heapSize++] = t;
      } else {
        bounds.bound(tiles, kh, t);
      }
      for (int i = 0; i < g; i++) {
        // in exact arithmetic a tile's bound never exceeds its block's; float rounding might
        frontier.raiseReference(i, frontier.ub[i * (maxTiles + frontier.maxBlocks) + t]);
        frontier.sum[i] += frontier.nodeMass(i, t);
      }
      frontier.heap[at] = Frontier.pack(frontier.priority(t, tiles, h0), t);
      frontier.siftUp(at);
    }
  }


  /** The stopping rule, confirmed with freshly summed masses (no cancellation drift). */
  private boolean withinEpsilon(Tiles tiles, int kh, int h0) {
    for (int i = 0; i < g; i++) {
      if (!(mass(i, h0) + scan.skippedMass(i, tiles.max(h0 + i)) <= eps(tiles, i) * tiles.sum(h0 + i))) {
        return false;
      }
    }
    frontier.recomputeSums();
    for (int i = 0; i < g; i++) {
      if (!(mass(i, h0) + scan.skippedMass(i, tiles.max(h0 + i)) <= eps(tiles, i) * tiles.sum(h0 + i))) {
        return false;
      }
    }
    // with an output target the mass share is only when to look: the full bound decides
    return !target || outputCheck(tiles, kh, h0);
  }






}
