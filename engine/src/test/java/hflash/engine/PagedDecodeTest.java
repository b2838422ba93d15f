package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.memory.PagePool;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Decode on a sequence of a {@link PagePool}: every mode and scheduler gives the bits it gives on a
 * flat {@link KvCache} with the same contents; the batched cascade stays within float32 rounding
 * of per-sequence decode; decodes and page churn run at once from several threads.
 */
class PagedDecodeTest {

  private static final int TILE = 64;
  private static final int HEADS = 8;
  private static final int KV_HEADS = 2;
  private static final int D = 48; // not a multiple of 32: a partial V block

  /** Batched exact against per-sequence decode: relative to the output's largest element. */
  static final double CASCADE_TOLERANCE = 1e-5;

  private static void append(KvCache c, int n, Random r) {
    int row = KV_HEADS * D;
    float[] k = new float[n * row], v = new float[n * row];
    for (int i = 0; i < k.length; i++) {
      k[i] = (float) r.nextGaussian();
      v[i] = (float) r.nextGaussian();
    }
    c.append(0, n, k, v);
  }

  /**
   * Copies every stored row of layer 0 of a sequence into a flat cache with the same layout and
   * rotation (f16 and the block dtypes store again exactly what they read back). Shared by the
   * paged tests.
   */
  static KvCache flatCopy(KvCache s) {
    KvCacheLayout l = s.layout();
    int kvHeads = l.kvHeads(), d = l.headDim();
    KvCache flat = KvCache.allocate(l, s.rotation());
    int n = s.length(0);
    float[] k = new float[n * kvHeads * d], v = new float[k.length];
    for (int p = 0; p < n; p++) {
      for (int h = 0; h < kvHeads; h++) {
        for (int c = 0; c < d; c++) {
          k[(p * kvHeads + h) * d + c] = s.key(0, h, p, c);
          v[(p * kvHeads + h) * d + c] = s.value(0, h, p, c);
        }
      }
    }
    if (s.rotation() != null) { // stored rows are rotated: append the unrotated ones
      for (int r = 0; r < n * kvHeads; r++) {
        s.rotation().rotateBack(k, r * d);
        s.rotation().rotateBack(v, r * d);
      }
    }
    flat.append(0, n, k, v);
    return flat;
  }

  private static float[] query(Random r, int rows) {
    float[] q = new float[rows * HEADS * D];
    for (int i = 0; i < q.length; i++) {
      q[i] = (float) (2 * r.nextGaussian());
    }
    return q;
  }

  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"F16", "F32", "Q8_0"})
  void everyModeAndSchedulerGivesTheFlatCachesBits(DType dtype) {
    KvCacheLayout l = new KvCacheLayout(1, KV_HEADS, D, 5000, dtype, TILE);
    Random r = new Random(5);
    try (PagePool pool = PagePool.allocate(l, 512, 40)) {
      KvCache parent = pool.newSequence();
      append(parent, 2100, r);
      KvCache seq = parent.fork();
      append(seq, 1333, r); // copies the shared partial page, then fresh pages
      append(parent, 77, r); // the parent's own copy of that page
      parent.close();
      float[] q = query(r, 1);
      float scale = (float) (1 / Math.sqrt(D));
      List<AttentionConfig> modes = List.of(AttentionConfig.exact(), AttentionConfig.streaming(64, 700),
          AttentionConfig.sampled(), AttentionConfig.certified(1e-3), AttentionConfig.certifiedMaxError(1e-2),
          AttentionConfig.budgetedTiles(9), AttentionConfig.estimated(1e-2));
      try (KvCache flat = flatCopy(seq)) {
        for (Scheduler sch : Scheduler.values()) {
          try (DecodeAttention onSeq = DecodeAttention.create(seq, HEADS, 2, scale, sch);
               DecodeAttention onFlat = DecodeAttention.create(flat, HEADS, 2, scale, sch)) {
            for (AttentionConfig m : modes) {
              float[] a = new float[HEADS * D], b = new float[HEADS * D];
              onSeq.decode(0, q, a, m);
              onFlat.decode(0, q, b, m);
              assertArrayEquals(b, a, dtype.id() + " " + sch.id() + " " + m);
              assertEquals(onFlat.report().kvBytesRead(), onSeq.report().kvBytesRead());
            }
            int rows = 70;
            float[] qp = query(r, rows), a = new float[qp.length], b = new float[qp.length];
            onSeq.prefill(0, qp, a, seq.length(0) - rows, rows, AttentionConfig.exact());
            onFlat.prefill(0, qp, b, flat.length(0) - rows, rows, AttentionConfig.exact());
            assertArrayEquals(b, a, dtype.id() + " prefill " + sch.id());
          }
        }
      }
    }
  }

  /** B forks of a prefix with suffixes of their own, one unrelated sequence, one cut inside the prefix. */
  private static KvCache[] batch(PagePool pool, Random r) {
    KvCache root = pool.newSequence();
    append(root, 2600, r); // 5 full pages and a partial one
    List<KvCache> seqs = new ArrayList<>();
    for (int b = 0; b < 5; b++) {
      KvCache f = root.fork();
      append(f, 1 + 211 * b, r);
      seqs.add(f);
    }
    KvCache cut = root.fork();
    cut.truncate(1300); // shares pages 0-1 whole, page 2 with fewer keys than the others
    seqs.add(cut);
    KvCache lone = pool.newSequence();
    append(lone, 999, r);
    seqs.add(lone);
    seqs.add(root); // root itself: shares its partial page with no one any more
    return seqs.toArray(new KvCache[0]);
  }

  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"F16", "F32", "BF16", "Q8_0"})
  void batchedExactIsPerSequenceDecodeWithinRounding(DType dtype) {
    KvCacheLayout l = new KvCacheLayout(1, KV_HEADS, D, 4000, dtype, TILE);
    Random r = new Random(9);
    try (PagePool pool = PagePool.allocate(l, 512, 60)) {
      KvCache[] seqs = batch(pool, r);
      int bsz = seqs.length, row = HEADS * D;
      float[] q = query(r, bsz);
      float scale = (float) (1 / Math.sqrt(D));
      float[] single = new float[bsz * row];
      long separate = 0;
      for (int b = 0; b < bsz; b++) {
        try (DecodeAttention a = DecodeAttention.create(seqs[b], HEADS, 1, scale, Scheduler.SERIAL)) {
          float[] o = new float[row];
          a.decode(0, java.util.Arrays.copyOfRange(q, b * row, (b + 1) * row), o);
          System.arraycopy(o, 0, single, b * row, row);
          separate += a.report().kvBytesRead();
        }
      }
      double[][] exact = new double[bsz][]; // float64, once per sequence
      for (int b = 0; b < bsz; b++) {
        exact[b] = ReferenceAttention.decode(seqs[b], 0, java.util.Arrays.copyOfRange(q, b * row, (b + 1) * row),
            HEADS, seqs[b].length(0), scale);
      }
      float[] serialBits = null;
      for (Scheduler sch : Scheduler.values()) {
        int[] threadCounts = switch (sch) { // serial ignores the count; pipeline needs 2; 4 = two pipelines
          case SERIAL -> new int[] {1};
          case SPLITK -> new int[] {1, 2, 3};
          case PIPELINE -> new int[] {2, 3, 4};
        };
        for (int threads : threadCounts) {
          try (BatchedDecode bd = BatchedDecode.create(pool, HEADS, threads, scale, sch)) {
            float[] out = new float[bsz * row];
            bd.decode(0, seqs, q, out, AttentionConfig.exact());
            if (sch == Scheduler.SERIAL && threads == 1) {
              serialBits = out.clone();
            }
            if (sch == Scheduler.PIPELINE && threads < 4) { // one pipeline: the serial cascade's operations
              assertArrayEquals(serialBits, out, dtype.id() + " pipeline t=" + threads);
            }
            for (int b = 0; b < bsz; b++) {
              double err = 0, ref = 0;
              for (int i = b * row; i < (b + 1) * row; i++) {
                err = Math.max(err, Math.abs(out[i] - single[i]));
                ref = Math.max(ref, Math.abs(single[i]));
              }
              assertTrue(err <= CASCADE_TOLERANCE * ref, dtype.id() + " " + sch.id() + " t=" + threads + " seq " + b
                  + ": " + err + " > " + CASCADE_TOLERANCE + " * " + ref);
              double e64 = 0;
              for (int i = 0; i < row; i++) {
                e64 = Math.max(e64, Math.abs(out[b * row + i] - exact[b][i]));
              }
              assertTrue(e64 <= CASCADE_TOLERANCE * ref, "vs float64: " + e64);
              assertEquals((long) seqs[b].length(0) * KV_HEADS, bd.report().perSequence(b).keysScored());
            }
            BatchReport rep = bd.report();
            assertTrue(rep.cascade());
            assertEquals(separate, rep.separateKvBytes());
            // pages 0-1: 7 sequences (5 forks, cut, root); pages 2-4: the 5 forks and root (cut holds
            // page 2 with fewer keys: its own unit); page 5: each fork copied it on its first append
            assertEquals(5, rep.pagesShared(), "shared pages");
            assertTrue(rep.kvBytesRead() < separate / 2, rep.kvBytesRead() + " vs " + separate);
            long shares = 0;
            for (int b = 0; b < bsz; b++) {
              shares += rep.perSequence(b).kvBytesRead();
            }
            assertEquals(rep.kvBytesRead(), shares, bsz); // equal shares, rounded per sequence
          }
        }
      }
    }
  }

  /** A rotating pool: the cascade rotates every sequence's query in and its output back, as decode does. */
  @Test
  void batchedExactOnARotatingPool() {
    int d = 64, heads = 4, kvHeads = 2;
    KvCacheLayout l = new KvCacheLayout(1, kvHeads, d, 3000, DType.F16, TILE);
    Random r = new Random(21);
    try (PagePool pool = PagePool.allocate(l, 512, 30, hflash.memory.HadamardRotation.of(d, 3))) {
      KvCache root = pool.newSequence();
      float[] k = new float[1700 * kvHeads * d], v = new float[k.length];
      for (int i = 0; i < k.length; i++) {
        k[i] = (float) r.nextGaussian();
        v[i] = (float) r.nextGaussian();
      }
      root.append(0, 1700, k, v);
      KvCache[] seqs = {root.fork(), root.fork(), root};
      int n = 300 * kvHeads * d;
      seqs[0].append(0, 300, java.util.Arrays.copyOf(k, n), java.util.Arrays.copyOf(v, n));
      int row = heads * d;
      float[] q = new float[3 * row];
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) r.nextGaussian();
      }
      float scale = (float) (1 / Math.sqrt(d));
      try (BatchedDecode bd = BatchedDecode.create(pool, heads, 2, scale, Scheduler.SPLITK)) {
        float[] out = new float[q.length];
        bd.decode(0, seqs, q, out, AttentionConfig.exact());
        assertEquals(4, bd.report().pagesShared()); // pages 0-2 by all three, page 3 (164 keys) by root and seqs[1]
        for (int b = 0; b < 3; b++) {
          float[] qb = java.util.Arrays.copyOfRange(q, b * row, (b + 1) * row);
          double[] ref = ReferenceAttention.decode(seqs[b], 0, qb, heads, seqs[b].length(0), scale);
          double err = 0, max = 0;
          for (int i = 0; i < row; i++) {
            err = Math.max(err, Math.abs(out[b * row + i] - ref[i]));
            max = Math.max(max, Math.abs(ref[i]));
          }
          assertTrue(err <= CASCADE_TOLERANCE * max, "seq " + b + ": " + err);
        }
      }
    }
  }

  @Test
  void otherModesRunPerSequenceWithTheirBits() {
    KvCacheLayout l = new KvCacheLayout(1, KV_HEADS, D, 4000, DType.F16, TILE);
    Random r = new Random(13);
    try (PagePool pool = PagePool.allocate(l, 512, 60)) {
      KvCache[] seqs = batch(pool, r);
      int bsz = seqs.length, row = HEADS * D;
      float[] q = query(r, bsz);
      float scale = (float) (1 / Math.sqrt(D));
      for (AttentionConfig m : List.of(AttentionConfig.sampled(), AttentionConfig.certified(1e-3),
          AttentionConfig.streaming(32, 500))) {
        try (BatchedDecode bd = BatchedDecode.create(pool, HEADS, 2, scale, Scheduler.SPLITK)) {
          float[] out = new float[bsz * row];
          bd.decode(0, seqs, q, out, m);
          for (int b = 0; b < bsz; b++) {
            try (DecodeAttention a = DecodeAttention.create(seqs[b], HEADS, 1, scale, Scheduler.SERIAL)) {
              float[] o = new float[row];
              a.decode(0, java.util.Arrays.copyOfRange(q, b * row, (b + 1) * row), o, m);
              assertArrayEquals(o, java.util.Arrays.copyOfRange(out, b * row, (b + 1) * row), m + " seq " + b);
            }
          }
          assertTrue(!bd.report().cascade());
        }
      }
    }
  }

  @Test
  void badBatchesAreNamed() {
    KvCacheLayout l = new KvCacheLayout(1, KV_HEADS, D, 2000, DType.F16, TILE);
    try (PagePool pool = PagePool.allocate(l, 512, 8);
         PagePool other = PagePool.allocate(l, 512, 8);
         BatchedDecode bd = BatchedDecode.create(pool, HEADS, 1)) {
      KvCache a = pool.newSequence(), b = other.newSequence();
      float[] q = new float[2 * HEADS * D], out = new float[q.length];
      var e = assertThrows(IllegalArgumentException.class,
          () -> bd.decode(0, new KvCache[] {a, b}, q, out, AttentionConfig.exact()));
      assertTrue(e.getMessage().contains("sequences[1] is not a sequence of this pool"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> bd.decode(0, new KvCache[] {a}, q, out, AttentionConfig.exact()));
      assertTrue(e.getMessage().contains("B*numHeads*headDim"), e.getMessage());
      q[3] = Float.NaN;
      assertThrows(IllegalArgumentException.class,
          () -> bd.decode(0, new KvCache[] {a, a}, q, out, AttentionConfig.exact()));
      e = assertThrows(IllegalArgumentException.class,
          () -> BatchedDecode.create(pool, HEADS, 1, 1f, Scheduler.PIPELINE));
      assertEquals("the pipeline scheduler needs at least 2 threads: 1", e.getMessage());
      a.close();
      q[3] = 0;
      assertThrows(IllegalStateException.class,
          () -> bd.decode(0, new KvCache[] {a, a}, q, out, AttentionConfig.exact()));
    }
  }

  /**
   * One thread decodes a batch again and again while two others fork the batch's prefix, append to
   * the forks and close them (page churn: copies, fresh pages, releases) and finally close one
   * sequence of the batch: every decode that ran gives the first decode's bits, and the pool ends
   * with exactly the pages of the sequences still open.
   */
  @Test
  void decodesAndPageChurnRunAtOnce() throws Exception {
    KvCacheLayout l = new KvCacheLayout(1, KV_HEADS, D, 4000, DType.F16, TILE);
    Random r = new Random(17);
    try (PagePool pool = PagePool.allocate(l, 512, 120)) {
      KvCache[] seqs = batch(pool, r);
      int row = HEADS * D;
      float[] q = query(r, seqs.length);
      float[] first = new float[seqs.length * row];
      AtomicBoolean stop = new AtomicBoolean();
      AtomicReference<Throwable> failure = new AtomicReference<>();
      try (BatchedDecode bd = BatchedDecode.create(pool, HEADS, 2)) {
        bd.decode(0, seqs, q, first, AttentionConfig.exact());
        List<Thread> churn = new ArrayList<>();
        for (int t = 0; t < 2; t++) {
          long seed = t;
          churn.add(Thread.ofPlatform().start(() -> {
            Random cr = new Random(seed);
            try {
              while (!stop.get()) {
                KvCache f = seqs[0].fork(); // forks a sequence the decoder is reading
                append(f, 1 + cr.nextInt(600), cr);
                f.truncate(cr.nextInt(f.length(0) + 1));
                append(f, 1 + cr.nextInt(100), cr);
                f.close();
              }
            } catch (Throwable e) {
              failure.compareAndSet(null, e);
            }
          }));
        }
        float[] out = new float[first.length];
        for (int i = 0; i < 40; i++) {
          bd.decode(0, seqs, q, out, AttentionConfig.exact());
          assertArrayEquals(first, out, "iteration " + i);
        }
        stop.set(true);
        for (Thread t : churn) {
          t.join();
        }
        if (failure.get() != null) {
          throw new AssertionError(failure.get());
        }
        // a sequence closed from another thread during a decode keeps its pages until the decode ends
        KvCache victim = seqs[1];
        Thread closer = Thread.ofPlatform().start(victim::close);
        try {
          bd.decode(0, seqs, q, out, AttentionConfig.exact());
          assertArrayEquals(first, out); // it ran before or while the close: its pages were still there
        } catch (IllegalStateException e) {
          assertTrue(e.getMessage().contains("closed"), e.getMessage()); // the close came first
        }
        closer.join();
      }
      int open = 0;
      java.util.Set<Integer> held = new java.util.HashSet<>();
      for (KvCache s : seqs) {
        if (!s.isClosed()) {
          open++;
          for (int p : s.pageIds()) {
            held.add(p);
          }
        }
      }
      assertEquals(open, pool.stats().sequences());
      assertEquals(held.size(), pool.stats().pagesUsed());
    }
  }
}
