package hflash.cluster;

import java.util.ArrayList;
import java.util.List;

/**
 * How budgeted decode splits its tile budget over the shards: in proportion to each shard's
 * weight, the bound on its whole softmax mass relative to the heaviest shard's, by largest
 * remainders, with no shard given more tiles than it holds. Deterministic (ties go to the lower
 * shard), and the shares add up to the budget unless every shard is full.
 */
final class BudgetSplit {

  private BudgetSplit() {}

  /**
   * Per shard, {@code max_h exp(U_sh - max_t U_th)} with {@code U_sh = log(n_s) + bound_sh} the
   * log of the bound on shard s's mass for head h ({@code n_s} keys, each scoring at most
   * {@code bound_sh}): 1 for the shard that may hold the most mass of some head, down to 0 for
   * one whose mass is negligible for every head. Shards with no key weigh 0.
   *
   * @param logMass (shards)(heads) {@code U_sh}, -inf for a shard with no key
   */
  static double[] weights(double[][] logMass) {
    int shards = logMass.length;
    double[] w = new double[shards];
    if (shards == 0) {
      return w;
    }
    int heads = logMass[0].length;
    for (int h = 0; h < heads; h++) {
      double top = Double.NEGATIVE_INFINITY;
      for (double[] u : logMass) {
        top = Math.max(top, u[h]);
      }
      if (top == Double.NEGATIVE_INFINITY) {
        continue;
      }
      for (int s = 0; s < shards; s++) {
        w[s] = Math.max(w[s], Math.exp(logMass[s][h] - top));
      }
    }
    return w;
  }

  /**
   * Splits {@code total} units over the shards in proportion to {@code weights}, shard s getting
   * at most {@code caps[s]}: floor of each ideal share, then the units left one each to the
   * largest remainders (lower shard first on ties); what a capped shard cannot take goes to the
   * others in the next round. The result sums to {@code min(total, sum of the caps of shards with
   * weight > 0)}.
   */
  static long[] apportion(long total, double[] weights, long[] caps) {
    int n = weights.length;
    long[] out = new long[n];
    boolean[] full = new boolean[n];
    for (int i = 0; i < n; i++) {
      full[i] = !(weights[i] > 0) || caps[i] <= 0;
    }
    long left = total;
    while (left > 0) {
      double sum = 0;
      List<Integer> open = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        if (!full[i]) {
          sum += weights[i];
          open.add(i);
        }
      }
      if (open.isEmpty()) {
        break;
      }
      long[] add = new long[n];
      double[] rest = new double[n];
      long given = 0;
      for (int i : open) {
        double ideal = left * (weights[i] / sum);
        add[i] = Math.min(left, (long) Math.floor(ideal));
        rest[i] = ideal - add[i];
        given += add[i];
      }
      List<Integer> byRest = new ArrayList<>(open);
      byRest.sort((a, b) -> rest[a] != rest[b] ? Double.compare(rest[b], rest[a]) : Integer.compare(a, b));
      for (int k = 0; given < left; k = (k + 1) % byRest.size()) {
        add[byRest.get(k)]++;
        given++;
      }
      boolean capped = false;
      for (int i : open) {
        long room = caps[i] - out[i];
        if (add[i] >= room) {
          add[i] = room;
          full[i] = true;
          capped = true;
        }
        out[i] += add[i];
        left -= add[i];
      }
      if (!capped) {
        break;
      }
    }
    return out;
  }
}
