package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.tiles.TileKernelsProvider;
import java.util.Random;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.RepetitionInfo;
import org.junit.jupiter.api.Test;

/**
 * The online-softmax state: a state fed keys in one go equals the merge of states fed disjoint
 * parts, in any grouping and order, within float rounding; empty states are neutral.
 */
class AttentionStateTest {

  private static final int D = 5;

  /** A state over scores s (heads=1) with values v (n, D), fed in one tile. */
  private static AttentionState stateOf(float[] s, float[][] v, int from, int to) {
    AttentionState st = new AttentionState(1, D);
    if (to > from) {
      float[] tile = new float[to - from];
      System.arraycopy(s, from, tile, 0, to - from);
      st.absorbScores(TileKernelsProvider.scalar(), 0, 1, tile, tile.length, tile.length, null);
      for (int j = 0; j < tile.length; j++) {
        for (int c = 0; c < D; c++) {
          st.acc[c] += tile[j] * v[from + j][c];
        }
      }
    }
    return st;
  }

  private static float[] out(AttentionState st) {
    float[] o = new float[D];
    st.finish(o, 0);
    return o;
  }

  @RepeatedTest(50)
  void mergeIsAssociativeAndCommutativeWithinRounding(RepetitionInfo info) {
    long seed = 100 + info.getCurrentRepetition();
    Random r = new Random(seed);
    int n = 1 + r.nextInt(60);
    float spread = r.nextBoolean() ? 3f : 60f;
    float[] s = new float[n];
    float[][] v = new float[n][D];
    for (int j = 0; j < n; j++) {
      s[j] = (float) (r.nextGaussian() * spread);
      for (int c = 0; c < D; c++) {
        v[j][c] = (float) r.nextGaussian();
      }
    }
    int a = r.nextInt(n + 1), b = a + r.nextInt(n - a + 1);
    float[] whole = out(stateOf(s, v, 0, n));
    AttentionState x = stateOf(s, v, 0, a), y = stateOf(s, v, a, b), z = stateOf(s, v, b, n);
    AttentionState left = new AttentionState(1, D); // (x + y) + z
    left.copyFrom(x);
    left.merge(y);
    left.merge(z);
    AttentionState right = new AttentionState(1, D); // z + (y + x)
    AttentionState yx = new AttentionState(1, D);
    yx.copyFrom(y);
    yx.merge(x);
    right.copyFrom(z);
    right.merge(yx);
    float[] l = out(left), rr = out(right);
    for (int c = 0; c < D; c++) {
      assertEquals(whole[c], l[c], 1e-5, "seed=" + seed + " split=" + a + "," + b);
      assertEquals(whole[c], rr[c], 1e-5, "seed=" + seed + " split=" + a + "," + b);
    }
  }

  @Test
  void emptyStatesAreNeutralAndFinishToZero() {
    AttentionState empty = new AttentionState(2, D);
    float[] o = new float[2 * D];
    java.util.Arrays.fill(o, 3f);
    empty.finish(o, 0);
    for (float x : o) {
      assertEquals(0f, x);
    }
    AttentionState other = new AttentionState(2, D);
    empty.merge(other);
    assertEquals(Float.NEGATIVE_INFINITY, empty.max(0));
    assertEquals(0f, empty.sum(1));
  }

  @Test
  void hugeScoreGapsDoNotProduceNaN() {
    float[] s = {-80f, 80f, -80f};
    float[][] v = {{1, 1, 1, 1, 1}, {2, 2, 2, 2, 2}, {3, 3, 3, 3, 3}};
    AttentionState a = stateOf(s, v, 0, 1);
    a.merge(stateOf(s, v, 1, 3));
    float[] o = out(a);
    for (float x : o) {
      assertTrue(Float.isFinite(x));
      assertEquals(2f, x, 1e-6);
    }
  }
}
