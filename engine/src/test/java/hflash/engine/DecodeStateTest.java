package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** decodeState: the partial state a caller merges with states computed elsewhere. */
class DecodeStateTest {

  @Test
  void stateFinishesToTheDecodeBitsAndMergesLikeSplitK() {
    long seed = 77;
    SplittableRandom rnd = new SplittableRandom(seed);
    int kvHeads = 2, heads = 4, d = 40, n = 650, tile = 32; // 21 tiles: 2 threads split at tile 10
    try (KvCache whole = KvCache.allocate(new KvCacheLayout(1, kvHeads, d, n, DType.F16, tile));
         KvCache a = KvCache.allocate(new KvCacheLayout(1, kvHeads, d, 320, DType.F16, tile));
         KvCache b = KvCache.allocate(new KvCacheLayout(1, kvHeads, d, n - 320, DType.F16, tile));
         DecodeAttention w = DecodeAttention.create(whole, heads);
         DecodeAttention wa = DecodeAttention.create(a, heads);
         DecodeAttention wb = DecodeAttention.create(b, heads)) {
      for (int p = 0; p < n; p++) {
        float[] k = new float[kvHeads * d], v = new float[kvHeads * d];
        for (int i = 0; i < k.length; i++) {
          k[i] = (float) rnd.nextGaussian();
          v[i] = (float) rnd.nextGaussian();
        }
        whole.append(0, k, v);
        (p < 320 ? a : b).append(0, k, v);
      }
      float[] q = new float[heads * d];
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) rnd.nextGaussian();
      }
      for (AttentionConfig mode : new AttentionConfig[] {AttentionConfig.exact(),
          AttentionConfig.sampled(), AttentionConfig.certified(1e-3), AttentionConfig.budgetedTiles(4)}) {
        float[] want = new float[heads * d];
        w.decode(0, q, want, n, mode);
        AttentionState s = new AttentionState(heads, d);
        w.decodeState(0, q, n, mode, s);
        float[] packed = new float[s.packedFloats()];
        s.writeTo(packed, 0);
        AttentionState back = new AttentionState(heads, d);
        back.readFrom(packed, 0);
        float[] got = new float[heads * d];
        back.finish(got, 0);
        assertArrayEquals(want, got, 0f, "seed=" + seed + " mode=" + mode.mode());
      }
      // two halves merged in order: a 2-thread split-K over the same ranges (320 = 5 tiles)
      try (DecodeAttention two = DecodeAttention.create(whole, heads, 2)) {
        float[] want = new float[heads * d];
        two.decode(0, q, want);
        AttentionState sa = new AttentionState(heads, d), sb = new AttentionState(heads, d);
        wa.decodeState(0, q, 320, AttentionConfig.exact(), sa);
        wb.decodeState(0, q, n - 320, AttentionConfig.exact(), sb);
        sa.merge(sb);
        float[] got = new float[heads * d];
        sa.finish(got, 0);
        assertArrayEquals(want, got, 0f, "seed=" + seed);
      }
      var e = assertThrows(IllegalArgumentException.class,
          () -> w.decodeState(0, q, n, AttentionConfig.exact(), new AttentionState(heads, d + 1)));
      assertEquals("state shape differs from (numHeads, headDim): (4, 41) != (4, 40)", e.getMessage());
    }
  }
}
