package hflash.engine.bounded;

import hflash.engine.pass.Encodings;
import hflash.engine.pass.Tiles;
import hflash.memory.KvCacheLayout;
import hflash.memory.TileSummaries;
import hflash.tiles.TileKernels;

/**
 * Float-safe upper bounds of a node's scores for every head of a group, written into the
 * frontier: min(box, ball) from the key summaries (certified), the cheaper ball alone (budgeted;
 * also {@link #ballBound(float, double, float, float, int)} for the estimated mode), or the true
 * tile max (the oracle).
 */
public final class NodeBounds {

  private final TileKernels kernels;
  private final KvCacheLayout layout;
  private final int d;
  private final int g;
  private final int tileTokens;
  private final int maxTiles;
  private final int maxBlocks;
  private final Frontier frontier;
  private final float[] nb = new float[3];
  private final float[] centroidScores; // (g, count): q_h . centroid of a run of nodes being bounded
  private final float[] pageRun; // (g, run): the same for the part of a run in one page of a paged sequence
  private boolean oracle; // the call's kind of bound, see mode()
  private boolean budgeted;

  NodeBounds(TileKernels kernels, KvCacheLayout layout, int group, Frontier frontier) {
    this.kernels = kernels;
    this.layout = layout;
    this.d = layout.headDim();
    this.g = group;
    this.tileTokens = layout.tileTokens();
    this.frontier = frontier;
    this.maxTiles = frontier.maxTiles;
    this.maxBlocks = frontier.maxBlocks;
    this.centroidScores = new float[group * Math.max(maxBlocks, TileSummaries.BLOCK_TILES)];
    this.pageRun = new float[centroidScores.length];
  }

  /** The bound a call uses: true maxima (oracle), the ball alone (budgeted), else min(box, ball). */
  void mode(boolean oracle, boolean budgeted) {
    this.oracle = oracle;
    this.budgeted = budgeted;
  }


  /** Relative rounding slack of a float32 score or bound over d terms: (d + 2) u, u = 2^-24. */
  static final double U = 0x1p-24;

  /**
   * The ball bound from the computed {@code q.c} ({@code dot}), {@code ||q||}, the radius and
   * {@code ||c||} (rounded up), with the float slack of the computed score and of {@code dot}.
   */
  public static float ballBound(float dot, double qn, float radius, float cnorm, int d) {
    double ball = dot + qn * radius * (1 + 1e-6);
    double slack = 2 * (d + 2) * U * qn * ((double) cnorm + radius);
    return (float) (ball + slack) + Math.ulp(dot) + Math.ulp((float) ball);
  }


  /** Bounds node's scores for every head; appends the node (unpacked) to the heap array. */
  void bound(Tiles tiles, int kh, int node) {
    int h0 = kh * g;
    int stride = maxTiles + maxBlocks;
    if (oracle) {
      float[] s = tiles.ownScores();
      long off = tiles.tileOffset(kh, node);
      kernels.scores(tiles.queries(), h0 * d, g, d, tiles.keySegment(), off, Encodings.of(layout.dtype()), tileTokens, s, tileTokens);
      tiles.countFmas((long) tileTokens * g * d);
      for (int i = 0; i < g; i++) {
        frontier.ub[i * stride + node] = kernels.max(s, i * tileTokens, tileTokens);
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
        kernels.nodeBounds(tiles.queries(), (h0 + i) * d, d, tiles.summarySegment(), box, ballAt, Encodings.of(layout.dtype()), nb, 0);
        double ball = nb[2] + tiles.queryNorm(h0 + i) * (double) radius * (1 + 1e-6);
        double slack = 3 * (d + 2) * U * nb[1];
        frontier.ub[i * stride + node] = (float) (Math.min(nb[0], ball) + slack) + Math.ulp(nb[1]);
      }
      tiles.countSummaryBytes(sum.recordBytes());
      tiles.countFmas(4L * g * d);
    }
    frontier.heap[frontier.heapSize++] = node;
  }


  /**
   * The budgeted mode's cheaper bound: the ball only, {@code q.c + ||q|| r}, one d-long dot per
   * head with the centroid loaded once for the group, reading only the ball records (centroid,
   * radius, vmax, ||c||: a third of an f32 node's summary bytes, half of a 16-bit one's). Float slack: a computed score is
   * off by at most {@code (d+2) u ||q|| ||k||} and {@code ||k|| <= ||c|| + r}; the computed
   * {@code q.c} by {@code (d+2) u ||q|| ||c||}. Looser than min(box, ball), still a bound on any
   * data: the budget decides what is read, the bound is only reported.
   */
  void ballBound(Tiles tiles, int kh, int node) {
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
  void ballScores(Tiles tiles, int kh, int node, int count) {
    TileSummaries sum = tiles.summaries();
    boolean block = node >= maxTiles;
    int index = block ? node - maxTiles : node;
    // a paged sequence keeps each page's records apart: one run per page (each row's score is its own, same bits)
    for (int j = 0, run; j < count; j += run) {
      run = sum.ballRun(index + j, count - j, block);
      long ball = block ? sum.blockBallOffset(tiles.layer(), kh, index + j)
          : sum.ballOffset(tiles.layer(), kh, index + j);
      float[] out = run == count ? centroidScores : pageRun;
      kernels.rowScores(tiles.queries(), kh * g * d, g, d, tiles.summarySegment(), ball, sum.ballBytes(), run, out,
          run);
      for (int i = 0; out == pageRun && i < g; i++) {
        System.arraycopy(pageRun, i * run, centroidScores, i * count + j, run);
      }
    }
    tiles.countSummaryBytes(count * sum.ballBytes());
    tiles.countFmas((long) count * g * d);
  }


  /** The ball bound of {@code node} from its centroid scores, column j of a run of {@code count}. */
  void ballBound(Tiles tiles, int kh, int node, int j, int count) {
    int h0 = kh * g;
    TileSummaries sum = tiles.summaries();
    boolean block = node >= maxTiles;
    int index = block ? node - maxTiles : node;
    float radius = block ? sum.blockRadius(tiles.layer(), kh, index) : sum.radius(tiles.layer(), kh, index);
    float cnorm = sum.centroidNorm(tiles.layer(), kh, index, block);
    int stride = maxTiles + maxBlocks;
    for (int i = 0; i < g; i++) {
      frontier.ub[i * stride + node] = ballBound(centroidScores[i * count + j], tiles.queryNorm(h0 + i), radius, cnorm, d);
    }
  }
}
