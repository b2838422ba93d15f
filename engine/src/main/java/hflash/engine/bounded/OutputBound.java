package hflash.engine.bounded;

import hflash.engine.pass.Tiles;
import hflash.memory.ValueSummaries;
import java.util.Arrays;

/**
 * Scratch and arithmetic of the certified mode's output-error target ({@code --max-error}) for one
 * KV head's group: a snapshot of the current output {@code a_h}, the distance from it to a node's
 * value ball, the tiles the K-scan left unread with their (rounded-up) masses, and the per-head mass
 * share the traversal aims at between two full checks.
 *
 * <p>The bound (docs/HIERARCHICAL.md section 3): with opened mass {@code l}, output {@code a} and
 * skipped nodes t of true mass {@code s_t <= E_t} whose values lie in a ball (centroid {@code c_t},
 * radius {@code r_t}), the exact output is {@code (l a + sum s_t b_t) / (l + sum s_t)} with
 * {@code b_t} in the ball, so
 *
 * <pre>
 *   ||exact - a|| = ||sum s_t (b_t - a)|| / (l + sum s_t) <= sum_t E_t (||c_t - a|| + r_t) / l
 * </pre>
 *
 * and the target {@code ||exact - a|| <= E ||exact||} holds once that is at most
 * {@code E ||a|| / (1 + E)} (then {@code ||exact|| >= ||a|| - bound >= ||a|| / (1 + E)}).
 */
final class OutputBound {

  private final int d;
  private final int g;
  private final int maxTiles;
  final double[] eps; // (g): mass share aimed at before the next full check
  final double[] a; // (g, d): output snapshot acc / l, double
  final double[] target; // (g): E ||a|| / (1 + E) at the snapshot
  final double[] aNorm; // (g)
  final double[] bound; // (g): last full bound on ||exact - a||
  final double[] dist; // (g): scratch of distances()
  private final float[] centroid; // (d)
  final int[] skipped; // (maxTiles): tiles whose K was scored and V left unread
  int skippedCount;
  final double[] skipLog; // (g, maxTiles): log of a skipped tile's mass, rounded up
  double maxError;
  long checkedAt = -1; // the state version of the last full check

  OutputBound(int d, int g, int maxTiles) {
    this.d = d;
    this.g = g;
    this.maxTiles = maxTiles;
    this.eps = new double[g];
    this.a = new double[g * d];
    this.target = new double[g];
    this.aNorm = new double[g];
    this.bound = new double[g];
    this.dist = new double[g];
    this.centroid = new float[d];
    this.skipped = new int[maxTiles];
    this.skipLog = new double[Math.multiplyExact(g, maxTiles)];
  }

  void reset(double maxError) {
    this.maxError = maxError;
    Arrays.fill(eps, maxError);
    Arrays.fill(bound, 0);
    skippedCount = 0;
    checkedAt = -1;
  }

  /** Takes {@code a_h = acc_h / l_h} of the group's heads (the state must be drained). */
  void snapshot(Tiles st, int h0) {
    float[] acc = st.accumulators();
    for (int i = 0; i < g; i++) {
      int h = h0 + i;
      double l = st.sum(h);
      double sq = 0;
      for (int c = 0; c < d; c++) {
        double x = l == 0 ? 0 : acc[h * d + c] / l;
        a[i * d + c] = x;
        sq += x * x;
      }
      aNorm[i] = Math.sqrt(sq);
      target[i] = maxError * aNorm[i] / (1 + maxError);
    }
  }

  /**
   * {@code ||c - a_h|| + r} for every head of the group into {@link #dist}, for the value ball at
   * {@code rec}; the double arithmetic's rounding is covered by a relative 1e-6.
   */
  void distances(ValueSummaries vs, long rec) {
    vs.centroid(rec, centroid, 0);
    double r = vs.radius(rec);
    for (int i = 0; i < g; i++) {
      double sq = 0;
      for (int c = 0; c < d; c++) {
        double e = centroid[c] - a[i * d + c];
        sq += e * e;
      }
      dist[i] = (Math.sqrt(sq) + r) * (1 + 1e-6);
    }
  }

  /** Records tile t as skipped, with the log of each head's rounded-up mass. */
  void addSkipped(int t, double[] logMass) {
    for (int i = 0; i < g; i++) {
      skipLog[i * maxTiles + skippedCount] = logMass[i];
    }
    skipped[skippedCount++] = t;
  }

  /** Removes skipped entry k (its tile is being opened): the last entry takes its place. */
  void removeSkipped(int k) {
    int last = --skippedCount;
    skipped[k] = skipped[last];
    for (int i = 0; i < g; i++) {
      skipLog[i * maxTiles + k] = skipLog[i * maxTiles + last];
    }
  }

  /** Mass of skipped entry k for head i relative to the reference {@code m}. */
  double skippedMass(int i, int k, float m) {
    return Math.exp(skipLog[i * maxTiles + k] - m);
  }
}
