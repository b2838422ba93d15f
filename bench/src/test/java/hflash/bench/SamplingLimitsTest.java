package hflash.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The analysis behind docs/HIERARCHICAL.md section 9 on cases whose answers are known. */
class SamplingLimitsTest {

  private static final int D = 8;
  private static final int TT = 32;

  @Test
  void quantizedCopiesStayWithinTheirScales() {
    SplittableRandom rnd = new SplittableRandom(7);
    float[] x = new float[32];
    double[] q8 = new double[32], q4 = new double[32];
    for (int trial = 0; trial < 200; trial++) {
      double amax = 0;
      int arg = 0;
      for (int c = 0; c < 32; c++) {
        x[c] = (float) (Math.exp(2 * rnd.nextGaussian()) * rnd.nextGaussian());
        if (Math.abs(x[c]) > amax) {
          amax = Math.abs(x[c]);
          arg = c;
        }
      }
      SamplingLimits.quantize(x, 0, 32, q8, 0, 127, false);
      SamplingLimits.quantize(x, 0, 32, q4, 0, 8, true);
      double s4 = amax / 8;
      assertEquals(x[arg], q4[arg], 1e-9 * amax, "trial " + trial + ": q4_0 keeps the largest element");
      for (int c = 0; c < 32; c++) {
        assertTrue(Math.abs(x[c] - q8[c]) <= amax / 127 / 2 * (1 + 1e-9), "trial " + trial + " q8_0 channel " + c);
        assertTrue(Math.abs(x[c] - q4[c]) <= s4 * (1 + 1e-9), "trial " + trial + " q4_0 channel " + c);
        double code = q4[c] / s4;
        assertTrue(Math.abs(code - Math.rint(code)) < 1e-6 && Math.abs(code) <= 8, "trial " + trial + " code " + code);
      }
    }
  }

  /** 10 complete tiles of 32 keys and 5 keys in an open one; identical keys, so uniform weights. */
  private static SamplingLimits.Totals run(float[] v) {
    int keys = 10 * TT + 5;
    float[] k = new float[keys * D];
    float[] q = new float[2 * D]; // two query heads on the KV head
    SplittableRandom rnd = new SplittableRandom(11);
    for (int j = 0; j < keys; j++) {
      for (int c = 0; c < D; c++) {
        k[j * D + c] = c + 1;
      }
    }
    for (int c = 0; c < q.length; c++) {
      q[c] = (float) rnd.nextGaussian();
    }
    SamplingLimits.Totals tot = new SamplingLimits.Totals();
    SamplingLimits.group(q, 0, 2, k, 0, v, 0, keys, D, 1 / Math.sqrt(D), TT, tot);
    assertEquals(keys, tot.tokensExact);
    return tot;
  }

  @Test
  void identicalTilesNeedOnlyTheForcedOnes() {
    float[] v = new float[(10 * TT + 5) * D];
    java.util.Arrays.fill(v, 0.5f);
    SamplingLimits.Totals tot = run(v);
    long forced = TT + TT + 5; // first, last complete, incomplete
    for (long[] byWidth : tot.tokensRead) {
      for (long t : byWidth) {
        assertEquals(forced, t, "the tail's error is 0 whatever is left out");
      }
    }
    for (int c = 0; c < SamplingLimits.CERTIFIED.length; c++) {
      if (SamplingLimits.CERTIFIED[c] > 0) { // every value ball is the point a: distance 0, all skipped
        for (long t : tot.sketchedTokens[c]) {
          assertEquals(forced, t, "config " + c);
        }
      }
    }
  }

  @Test
  void oneHeavyTileGoesToTheHeadAndTheRestNeedsOneDraw() {
    float[] v = new float[(10 * TT + 5) * D];
    for (int j = 4 * TT; j < 5 * TT; j++) {
      v[j * D] = 100; // tile 4 carries the whole output; the other tiles' errors are equal
    }
    SamplingLimits.Totals tot = run(v);
    long forced = TT + TT + 5;
    for (long[] byWidth : tot.tokensRead) {
      for (long t : byWidth) {
        // head = tile 4; the six equal tail tiles: no variance, but leaving them out errs by
        // 6 * 32 * 9.8 against 0.1 * 9.8 * 325 at most: one draw estimates them exactly
        assertEquals(forced + 2 * TT, t);
      }
    }
  }
}
