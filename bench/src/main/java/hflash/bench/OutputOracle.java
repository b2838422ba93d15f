package hflash.bench;

import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.Arrays;

/**
 * The output-error oracle a {@code --max-error E} run is measured against: knowing every tile's
 * exact softmax mass and exact value sum (float64, over the values the cache stores), the K+V bytes
 * of the tiles it keeps when it leaves out as many tiles as it can while every head's
 * {@code ||out_h - exact_h|| / ||exact_h||} stays at most E. Like the engine it always opens the
 * first tile, the last complete one and the incomplete one; the others are tried lightest first
 * (by the error each would cause alone, {@code max_h ||Y_h(t) - M_h(t) exact_h|| / (L_h ||exact_h||)})
 * and left out whenever the error of everything left out so far stays within E. A greedy choice:
 * the fewest bytes exactly is a knapsack over vectors; this is the usual first-fit approximation of
 * it, and it uses what no bound can know (exact masses and the cancellation between tiles' errors).
 * For evaluation only: it scores every key.
 */
public final class OutputOracle {

  private OutputOracle() {}

  /** K+V bytes the oracle reads for one decode row over the first {@code keys} positions of {@code layer}. */
  public static long bytes(KvCache cache, int layer, float[] q, int heads, int keys, double scale, double maxError) {
    KvCacheLayout lay = cache.layout();
    int d = lay.headDim(), kvHeads = lay.kvHeads(), g = heads / kvHeads, tt = lay.tileTokens();
    int tiles = (keys + tt - 1) / tt, full = keys / tt;
    double[] s = new double[g * keys]; // (g, keys) scores
    double[] mass = new double[g * tiles]; // (g, tiles) sum of exp(s - max) per tile
    double[] ysum = new double[g * tiles * d]; // (g, tiles, d) weighted value sums
    double[] kRow = new double[d], vRow = new double[d];
    double[] exact = new double[g * d], total = new double[g * d], totalMass = new double[g], exactNorm = new double[g];
    double[] harm = new double[tiles];
    long opened = 0; // keys of the tiles read, summed over KV heads
    for (int kh = 0; kh < kvHeads; kh++) {
      double[] max = new double[g];
      Arrays.fill(max, Double.NEGATIVE_INFINITY);
      for (int j = 0; j < keys; j++) {
        for (int c = 0; c < d; c++) {
          kRow[c] = cache.key(layer, kh, j, c);
        }
        for (int i = 0; i < g; i++) {
          double dot = 0;
          for (int c = 0; c < d; c++) {
            dot += (double) q[(kh * g + i) * d + c] * kRow[c];
          }
          s[i * keys + j] = dot * scale;
          max[i] = Math.max(max[i], s[i * keys + j]);
        }
      }
      Arrays.fill(mass, 0);
      Arrays.fill(ysum, 0);
      for (int j = 0; j < keys; j++) {
        int t = j / tt;
        for (int c = 0; c < d; c++) {
          vRow[c] = cache.value(layer, kh, j, c);
        }
        for (int i = 0; i < g; i++) {
          double w = Math.exp(s[i * keys + j] - max[i]);
          mass[i * tiles + t] += w;
          int at = (i * tiles + t) * d;
          for (int c = 0; c < d; c++) {
            ysum[at + c] += w * vRow[c];
          }
        }
      }
      for (int i = 0; i < g; i++) {
        totalMass[i] = 0;
        Arrays.fill(total, i * d, (i + 1) * d, 0);
        for (int t = 0; t < tiles; t++) {
          totalMass[i] += mass[i * tiles + t];
          for (int c = 0; c < d; c++) {
            total[i * d + c] += ysum[(i * tiles + t) * d + c];
          }
        }
        double sq = 0;
        for (int c = 0; c < d; c++) {
          exact[i * d + c] = total[i * d + c] / totalMass[i];
          sq += exact[i * d + c] * exact[i * d + c];
        }
        exactNorm[i] = Math.sqrt(sq);
      }
      boolean[] keep = new boolean[tiles];
      keep[0] = true;
      if (full > 1) {
        keep[full - 1] = true;
      }
      if (tiles > full) {
        keep[tiles - 1] = true;
      }
      Integer[] order = new Integer[tiles];
      for (int t = 0; t < tiles; t++) {
        order[t] = t;
        double h = 0;
        for (int i = 0; i < g; i++) {
          double sq = 0;
          for (int c = 0; c < d; c++) {
            double e = ysum[(i * tiles + t) * d + c] - mass[i * tiles + t] * exact[i * d + c];
            sq += e * e;
          }
          h = Math.max(h, Math.sqrt(sq) / (totalMass[i] * exactNorm[i]));
        }
        harm[t] = h;
      }
      Arrays.sort(order, (x, y) -> Double.compare(harm[x], harm[y]));
      double[] keptMass = totalMass.clone();
      double[] kept = total.clone();
      for (int t : order) {
        if (keep[t]) {
          continue;
        }
        boolean ok = true;
        for (int i = 0; i < g && ok; i++) {
          double m = keptMass[i] - mass[i * tiles + t];
          double sq = 0;
          for (int c = 0; c < d; c++) {
            double e = (kept[i * d + c] - ysum[(i * tiles + t) * d + c]) / m - exact[i * d + c];
            sq += e * e;
          }
          ok = m > 0 && Math.sqrt(sq) <= maxError * exactNorm[i];
        }
        if (ok) {
          for (int i = 0; i < g; i++) {
            keptMass[i] -= mass[i * tiles + t];
            for (int c = 0; c < d; c++) {
              kept[i * d + c] -= ysum[(i * tiles + t) * d + c];
            }
          }
        } else {
          keep[t] = true;
        }
      }
      for (int t = 0; t < tiles; t++) {
        if (keep[t]) {
          opened += Math.min(tt, keys - t * tt);
        }
      }
    }
    return opened * 2L * lay.rowBytes();
  }
}
