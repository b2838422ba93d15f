package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.memory.PagePool;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The tile summaries of a sequence live in its pool pages: the modes that read them (certified,
 * budgeted, estimated) give, on forks that share pages, on a fork after copy-on-write and after a
 * truncate into a shared page followed by appends, the bits they give on a flat cache holding the
 * same rows, for pages of one tile, of half a block and of two blocks (the block records of a
 * sequence are in the page of the block's last tile, so their runs break at page ends).
 */
class PagedSummariesTest {

  private static final int TILE = 64;
  private static final int HEADS = 8;
  private static final int KV_HEADS = 2;
  private static final int D = 32;

  private static float[][] rows(Random r, int n) {
    float[] k = new float[n * KV_HEADS * D], v = new float[k.length];
    for (int i = 0; i < k.length; i++) {
      k[i] = (float) r.nextGaussian();
      v[i] = (float) r.nextGaussian();
    }
    return new float[][] {k, v};
  }

  private static void assertFlatBits(KvCache seq, float[] q, String where) {
    List<AttentionConfig> modes = List.of(AttentionConfig.certified(1e-3), AttentionConfig.certifiedMaxError(1e-2),
        AttentionConfig.budgetedTiles(9), AttentionConfig.budgetedTiles(40), AttentionConfig.estimated(1e-2));
    float scale = (float) (1 / Math.sqrt(D));
    try (KvCache flat = PagedDecodeTest.flatCopy(seq);
         DecodeAttention onSeq = DecodeAttention.create(seq, HEADS, 1, scale, Scheduler.SERIAL);
         DecodeAttention onFlat = DecodeAttention.create(flat, HEADS, 1, scale, Scheduler.SERIAL)) {
      for (AttentionConfig m : modes) {
        float[] a = new float[HEADS * D], b = new float[HEADS * D];
        onSeq.decode(0, q, a, m);
        onFlat.decode(0, q, b, m);
        assertArrayEquals(b, a, where + " " + m);
        assertEquals(onFlat.report().summaryBytesRead(), onSeq.report().summaryBytesRead(), where + " " + m);
      }
    }
  }

  @ParameterizedTest
  @CsvSource({"64", "512", "2048"})
  void forksCopyOnWriteAndTruncatesKeepTheFlatBits(int pageTokens) {
    KvCacheLayout l = new KvCacheLayout(1, KV_HEADS, D, 8192, DType.F16, TILE);
    Random r = new Random(31);
    float[] q = new float[HEADS * D];
    for (int i = 0; i < q.length; i++) {
      q[i] = (float) (2 * r.nextGaussian());
    }
    try (PagePool pool = PagePool.allocate(l, pageTokens, 8192 / pageTokens * 4)) {
      KvCache root = pool.newSequence();
      float[][] x = rows(r, 4100); // 64 full tiles (4 blocks) and an open one
      root.append(0, 4100, x[0], x[1]);
      KvCache a = root.fork(), b = root.fork();
      assertEquals(pool.stats().pagesUsed() * PagePool.pageBytes(l, pageTokens), pool.stats().bytesUsed());
      assertFlatBits(a, q, pageTokens + " fresh fork");
      float[][] y = rows(r, 1700);
      a.append(0, 1700, y[0], y[1]); // copies the shared partial page, completes blocks 4 and 5
      assertFlatBits(a, q, pageTokens + " fork after copy-on-write");
      assertFlatBits(root, q, pageTokens + " root after the fork's write");
      b.truncate(2500); // open tile 39 in a page root still shares: its records stay as they are
      assertFlatBits(root, q, pageTokens + " root after the fork's truncate");
      assertFlatBits(b, q, pageTokens + " truncated fork");
      float[][] z = rows(r, 900);
      b.append(0, 900, z[0], z[1]); // copies the page, rebuilds tile 39's lo/hi, completes it and more
      assertFlatBits(b, q, pageTokens + " truncated fork after appends");
      assertFlatBits(root, q, pageTokens + " root at the end");
      root.close();
      a.close();
      b.close();
      assertEquals(0, pool.stats().bytesUsed());
    }
  }
}
