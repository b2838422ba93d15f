package hflash.memory;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Sequences of a {@link PagePool} hold what a flat {@link KvCache} holds for the same appends
 * (keys, values, samples, summaries, bit for bit); forks share pages and copy on write; a full pool
 * changes nothing; references and pins are counted right from many threads.
 */
class PagePoolTest {

  private static final int TILE = 32;

  private static KvCacheLayout layout(int capacity, DType dtype) {
    return new KvCacheLayout(2, 2, 40, capacity, dtype, TILE); // head dim 40: a partial V block
  }

  private static float[] rows(Random r, int count, KvCacheLayout l) {
    float[] x = new float[count * l.kvHeads() * l.headDim()];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) r.nextGaussian();
    }
    return x;
  }

  /** Every stored element, sample and summary of {@code a} equals {@code b}'s. */
  private static void assertSameContents(KvCache a, KvCache b, String where) {
    KvCacheLayout l = a.layout();
    TileSummaries sa = a.tileSummaries(), sb = b.tileSummaries();
    for (int layer = 0; layer < l.layers(); layer++) {
      int n = a.length(layer);
      assertEquals(n, b.length(layer), where + " length");
      for (int h = 0; h < l.kvHeads(); h++) {
        for (int pos = 0; pos < n; pos++) {
          for (int c = 0; c < l.headDim(); c++) {
            assertEquals(a.key(layer, h, pos, c), b.key(layer, h, pos, c), where + " key");
            assertEquals(a.value(layer, h, pos, c), b.value(layer, h, pos, c), where + " value");
          }
        }
        for (int i = 0; i * KvCache.SAMPLE_STRIDE < n; i++) {
          for (int c = 0; c < l.headDim(); c++) {
            assertEquals(a.sample(layer, h, i, c), b.sample(layer, h, i, c), where + " sample " + i);
          }
        }
        for (int t = 0; t * TILE < n; t++) {
          for (int c = 0; c < l.headDim(); c++) {
            assertEquals(sa.lo(layer, h, t, c), sb.lo(layer, h, t, c), where + " lo");
            assertEquals(sa.hi(layer, h, t, c), sb.hi(layer, h, t, c), where + " hi");
          }
          if ((t + 1) * TILE <= n) {
            assertEquals(sa.radius(layer, h, t), sb.radius(layer, h, t), where + " radius");
            assertEquals(sa.vmax(layer, h, t), sb.vmax(layer, h, t), where + " vmax");
            ValueSummaries va = a.valueSummaries(), vb = b.valueSummaries();
            assertEquals(va.radius(va.tileOffset(layer, h, t)), vb.radius(vb.tileOffset(layer, h, t)), where);
          }
        }
      }
    }
  }

  private static void assertSameContentsButSamples(KvCache a, KvCache b) {
    KvCacheLayout l = a.layout();
    int n = b.length(0);
    for (int h = 0; h < l.kvHeads(); h++) {
      for (int pos = 0; pos < n; pos++) {
        for (int c = 0; c < l.headDim(); c++) {
          assertEquals(b.key(0, h, pos, c), a.key(0, h, pos, c));
          assertEquals(b.value(0, h, pos, c), a.value(0, h, pos, c));
        }
      }
    }
  }

  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"F32", "F16", "BF16", "Q8_0"})
  void sequenceHoldsWhatAFlatCacheHolds(DType dtype) {
    KvCacheLayout l = layout(1500, dtype);
    Random r = new Random(7);
    try (PagePool pool = PagePool.allocate(l, 512, 16);
         KvCache seq = pool.newSequence();
         KvCache flat = KvCache.allocate(l)) {
      for (int step = 0; step < 12; step++) {
        int layer = step % 2;
        int count = step % 3 == 0 ? 1 : 97 + 13 * step;
        if (seq.length(layer) + count > l.capacity()) {
          break;
        }
        float[] k = rows(r, count, l), v = rows(r, count, l);
        seq.append(layer, count, k, v);
        flat.append(layer, count, k, v);
        if (step == 7) {
          seq.truncate(300);
          flat.truncate(300);
        }
      }
      assertSameContents(seq, flat, dtype.id());
      for (int layer = 0; layer < 2; layer++) { // the tiles the engine reads hold the same bytes
        for (int t = 0; t < l.tileCount(seq.length(layer)); t++) {
          assertEquals(-1, seq.keyTile(layer, 1, t).mismatch(flat.keyTile(layer, 1, t)));
          assertEquals(-1, seq.valueTile(layer, 1, t).mismatch(flat.valueTile(layer, 1, t)));
        }
      }
    }
  }

  @Test
  void forkSharesFullPagesAndCopiesOnWrite() {
    KvCacheLayout l = layout(4096, DType.F16);
    Random r = new Random(11);
    try (PagePool pool = PagePool.allocate(l, 512, 32)) {
      KvCache parent = pool.newSequence();
      for (int layer = 0; layer < 2; layer++) {
        parent.append(layer, 1200, rows(r, 1200, l), rows(r, 1200, l)); // 2 full pages + a partial one
      }
      assertEquals(3, pool.stats().pagesUsed());
      KvCache child = parent.fork();
      assertArrayEquals(parent.pageIds(), child.pageIds());
      assertEquals(3, pool.stats().pagesShared());
      assertSameContents(child, parent, "fresh fork");

      float[] k = rows(r, 1, l), v = rows(r, 1, l);
      try (KvCache snapshot = KvCache.allocate(l)) { // the parent as it was, to compare with later
        for (int layer = 0; layer < 2; layer++) {
          snapshot.append(layer, 1200, readAll(parent, layer, true), readAll(parent, layer, false));
        }
        child.append(0, k, v); // first write into the shared partial page: the child copies it
        int[] p = parent.pageIds(), c = child.pageIds();
        assertEquals(p[0], c[0]);
        assertEquals(p[1], c[1]);
        assertNotEquals(p[2], c[2]);
        PagePool.Stats s = pool.stats();
        assertEquals(4, s.pagesUsed());
        assertEquals(2, s.pagesShared());
        assertEquals(1201, child.length(0));
        assertEquals(1200, parent.length(0));
        assertSameContents(parent, snapshot, "parent after the child's write");
        for (int c2 = 0; c2 < l.headDim(); c2++) {
          assertEquals(Float.float16ToFloat(Float.floatToFloat16(k[40 + c2])), child.key(0, 1, 1200, c2));
        }
        child.append(1, k, v); // the child's page is its own now: no second copy
        assertEquals(4, pool.stats().pagesUsed());
        parent.append(0, k, v); // the parent's partial page is no longer shared: written in place
        assertEquals(4, pool.stats().pagesUsed());
        assertEquals(p[2], parent.pageIds()[2]);
      }
      child.close();
      assertEquals(3, pool.stats().pagesUsed());
      assertEquals(0, pool.stats().pagesShared());
      parent.close();
      assertEquals(0, pool.stats().pagesUsed());
      assertEquals(32, pool.stats().pagesFree());
    }
  }

  private static float[] readAll(KvCache c, int layer, boolean keys) {
    KvCacheLayout l = c.layout();
    int n = c.length(layer), d = l.headDim();
    float[] x = new float[n * l.kvHeads() * d];
    for (int pos = 0; pos < n; pos++) {
      for (int h = 0; h < l.kvHeads(); h++) {
        for (int ch = 0; ch < d; ch++) {
          x[(pos * l.kvHeads() + h) * d + ch] = keys ? c.key(layer, h, pos, ch) : c.value(layer, h, pos, ch);
        }
      }
    }
    return x;
  }

  @Test
  void fullPoolThrowsAndChangesNothing() {
    KvCacheLayout l = layout(4096, DType.F32);
    Random r = new Random(3);
    try (PagePool pool = PagePool.allocate(l, 512, 4)) {
      KvCache a = pool.newSequence();
      a.append(0, 1000, rows(r, 1000, l), rows(r, 1000, l)); // 2 pages
      KvCache b = a.fork();
      a.append(0, 24, rows(r, 24, l), rows(r, 24, l)); // copies page 1: 3 used, 1 free
      int[] pa = a.pageIds(), pb = b.pageIds();
      PagePool.Stats before = pool.stats();
      var e = assertThrows(IllegalStateException.class,
          () -> b.append(0, 1100, rows(r, 1100, l), rows(r, 1100, l))); // copy + 2 new pages: 3 > 1
      assertTrue(e.getMessage().contains("needs 3 pages, 1 free"), e.getMessage());
      assertEquals(before, pool.stats());
      assertArrayEquals(pa, a.pageIds());
      assertArrayEquals(pb, b.pageIds());
      assertEquals(1024, a.length(0));
      assertEquals(1000, b.length(0));
      b.append(0, 100, rows(r, 100, l), rows(r, 100, l)); // its own page 1, then the last free page
      assertEquals(0, pool.stats().pagesFree());
      b.truncate(500); // back into page 0: pages 1 and 2 go back to the pool
      assertEquals(2, pool.stats().pagesFree());
      assertEquals(1, b.pageIds().length);
    }
  }

  @Test
  void closeWhilePinnedKeepsThePagesUntilUnpin() {
    KvCacheLayout l = layout(2048, DType.F16);
    try (PagePool pool = PagePool.allocate(l, 512, 8)) {
      KvCache a = pool.newSequence();
      a.append(0, 700, rows(new Random(1), 700, l), rows(new Random(2), 700, l));
      a.pin();
      a.close();
      assertTrue(a.isClosed());
      assertEquals(2, pool.stats().pagesUsed()); // a reader still holds them
      assertThrows(IllegalStateException.class, a::pin);
      a.unpin();
      assertEquals(0, pool.stats().pagesUsed());
      assertEquals(0, pool.stats().sequences());
    }
  }

  @Test
  void badArgumentsAreNamed() {
    KvCacheLayout l = layout(2048, DType.F16);
    var e = assertThrows(IllegalArgumentException.class, () -> PagePool.allocate(l, 48, 4));
    assertTrue(e.getMessage().contains("multiple of tileTokens 32: 48"), e.getMessage());
    try (PagePool small = PagePool.allocate(l, 96, 4); KvCache s = small.newSequence()) { // no sample store
      s.append(0, 200, rows(new Random(4), 200, l), rows(new Random(5), 200, l));
      assertEquals(3, small.stats().pagesUsed());
      var u = assertThrows(UnsupportedOperationException.class, s::samples);
      assertTrue(u.getMessage().contains("not a multiple of 512"), u.getMessage());
      KvCache f = s.fork();
      f.append(1, 1, rows(new Random(6), 1, l), rows(new Random(7), 1, l));
      assertSameContentsButSamples(f, s);
      f.close();
    }
    assertThrows(IllegalArgumentException.class, () -> PagePool.allocate(l, 512, 0));
    try (KvCache flat = KvCache.allocate(l)) {
      assertThrows(IllegalStateException.class, flat::fork);
    }
    PagePool pool = PagePool.allocate(l, 512, 4);
    KvCache s = pool.newSequence();
    pool.close();
    assertTrue(s.isClosed());
    assertThrows(IllegalStateException.class, pool::newSequence);
  }

  /**
   * Four threads fork, append, read and close sequences that share pages with each other, at once;
   * afterwards every page is free again and every surviving sequence holds exactly its own rows.
   */
  @Test
  void manyThreadsForkAppendAndCloseAtOnce() throws Exception {
    KvCacheLayout l = new KvCacheLayout(1, 1, 32, 2048, DType.F32, TILE);
    try (PagePool pool = PagePool.allocate(l, 512, 200)) {
      KvCache root = pool.newSequence();
      float[] prefix = new float[600 * 32];
      for (int i = 0; i < prefix.length; i++) {
        prefix[i] = i % 97;
      }
      root.append(0, 600, prefix, prefix);
      int threads = 4, rounds = 40;
      CountDownLatch start = new CountDownLatch(1);
      ExecutorService ex = Executors.newFixedThreadPool(threads);
      try {
        List<Future<?>> fs = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
          int id = t;
          fs.add(ex.submit(() -> {
            start.await();
            for (int i = 0; i < rounds; i++) {
              KvCache s = root.fork();
              float[] own = new float[(1 + i % 5) * 32];
              java.util.Arrays.fill(own, 1000 + id);
              s.append(0, own.length / 32, own, own);
              KvCache s2 = s.fork(); // a fork of a fork, appended by this thread too
              s2.append(0, 1, new float[32], new float[32]);
              assertEquals(prefix[599 * 32 + 5], s.key(0, 0, 599, 5));
              assertEquals(1000f + id, s.key(0, 0, 600, 0));
              assertEquals(0f, s2.value(0, 0, 600 + own.length / 32, 3));
              s.close();
              assertEquals(1000f + id, s2.key(0, 0, 600, 7)); // s2's pages outlive s
              s2.close();
            }
            return null;
          }));
        }
        start.countDown();
        for (Future<?> f : fs) {
          f.get();
        }
      } finally {
        ex.shutdownNow();
      }
      assertEquals(2, pool.stats().pagesUsed());
      assertEquals(0, pool.stats().pagesShared());
      assertEquals(1, pool.stats().sequences());
      root.close();
      assertEquals(200, pool.stats().pagesFree());
    }
  }
  /**
   * A fork shares its parent's summaries with the pages: nothing is copied or reserved per fork
   * ({@code stats()} counts whole pages and nothing else), both read the same records, and a
   * copy-on-write page carries its records to the writer's copy.
   */
  @Test
  void forkSharesTheSummariesOfItsPages() {
    KvCacheLayout l = layout(4096, DType.F16);
    Random r = new Random(21);
    try (PagePool pool = PagePool.allocate(l, 512, 32); KvCache flat = KvCache.allocate(l)) {
      long page = PagePool.pageBytes(l, 512);
      KvCache parent = pool.newSequence();
      for (int layer = 0; layer < 2; layer++) {
        float[] k = rows(r, 1200, l), v = rows(r, 1200, l); // 37 full tiles (2 blocks) and an open one
        parent.append(layer, 1200, k, v);
        flat.append(layer, 1200, k, v);
      }
      PagePool.Stats before = pool.stats();
      assertEquals(3 * page, before.bytesUsed());
      KvCache child = parent.fork();
      PagePool.Stats after = pool.stats();
      assertEquals(before.bytesUsed(), after.bytesUsed(), "a fork reserves no summaries of its own");
      assertEquals(before.pagesUsed(), after.pagesUsed());
      assertEquals(0, child.tileSummaries().bytesReserved() + child.valueSummaries().bytesReserved());
      TileSummaries sp = parent.tileSummaries(), sc = child.tileSummaries();
      for (int t = 0; t < 37; t++) { // the same records, not copies
        assertEquals(sp.ballOffset(1, 1, t), sc.ballOffset(1, 1, t));
        assertEquals(sp.boxOffset(1, 1, t), sc.boxOffset(1, 1, t));
      }
      assertEquals(sp.blockBallOffset(0, 1, 1), sc.blockBallOffset(0, 1, 1));
      assertSameContents(child, flat, "fresh fork");

      float[] k = rows(r, 100, l), v = rows(r, 100, l);
      child.append(0, 100, k, v); // copies the shared partial page (tiles 32..47), then completes tiles 37..39
      assertEquals(4 * page, pool.stats().bytesUsed());
      assertNotEquals(sp.boxOffset(0, 0, 33), sc.boxOffset(0, 0, 33)); // the child's own copy of page 2
      assertEquals(sp.boxOffset(0, 0, 31), sc.boxOffset(0, 0, 31)); // page 1 stays shared
      try (KvCache flatChild = KvCache.allocate(l)) {
        for (int layer = 0; layer < 2; layer++) {
          flatChild.append(layer, 1200, readAll(parent, layer, true), readAll(parent, layer, false));
        }
        flatChild.append(0, 100, k, v);
        assertSameContents(child, flatChild, "child after copy-on-write");
        assertSameContents(parent, flat, "parent after the child's write");
      }
      child.close();
      parent.close();
      assertEquals(0, pool.stats().bytesUsed());
    }
  }

  /**
   * A truncate into a page another sequence shares leaves that page's records alone (the other
   * still holds the longer rows); the next append copies the page and rebuilds the open tile's
   * lo/hi, so both sequences then hold exactly a flat cache's summaries for their rows.
   */
  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"F32", "F16", "Q8_0"})
  void truncateThenAppendRederivesTheSummaries(DType dtype) {
    KvCacheLayout l = layout(4096, dtype);
    Random r = new Random(23);
    try (PagePool pool = PagePool.allocate(l, 512, 32)) {
      KvCache root = pool.newSequence();
      float[][] k = new float[2][], v = new float[2][];
      for (int layer = 0; layer < 2; layer++) {
        k[layer] = rows(r, 1200, l);
        v[layer] = rows(r, 1200, l);
        root.append(layer, 1200, k[layer], v[layer]);
      }
      KvCache cut = root.fork();
      cut.truncate(700); // open tile 21 (positions 672..699) in page 1, which root shares
      KvCache again = cut.fork(); // inherits the pending rebuild
      float[] k2 = rows(r, 150, l), v2 = rows(r, 150, l);
      cut.append(0, 150, k2, v2); // copies page 1, rebuilds tile 21's lo/hi, then completes tiles 21..26
      cut.append(1, 150, k2, v2);
      again.append(1, 3, rows(r, 3, l), rows(r, 3, l)); // layer 1 only: layer 0 keeps its pending rebuild
      float[] k3 = rows(r, 40, l), v3 = rows(r, 40, l);
      again.append(0, 40, k3, v3);
      try (KvCache flatRoot = KvCache.allocate(l); KvCache flatCut = KvCache.allocate(l)) {
        for (int layer = 0; layer < 2; layer++) {
          flatRoot.append(layer, 1200, k[layer], v[layer]);
          flatCut.append(layer, 700, java.util.Arrays.copyOf(k[layer], 700 * 80),
              java.util.Arrays.copyOf(v[layer], 700 * 80));
          flatCut.append(layer, 150, k2, v2);
        }
        assertSameContents(root, flatRoot, dtype.id() + " root");
        assertSameContents(cut, flatCut, dtype.id() + " cut");
        flatCut.truncate(700);
        flatCut.append(0, 40, k3, v3);
        for (int t = 0; t < 22; t++) { // layer 0 of the second fork: the same rows as flatCut's
          for (int c = 0; c < l.headDim(); c++) {
            assertEquals(flatCut.tileSummaries().lo(0, 1, t, c), again.tileSummaries().lo(0, 1, t, c));
            assertEquals(flatCut.tileSummaries().hi(0, 1, t, c), again.tileSummaries().hi(0, 1, t, c));
          }
        }
      }
      root.close();
      cut.close();
      again.close();
    }
  }
}
