package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.memory.DType;
import hflash.memory.HadamardRotation;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.tiles.PrefillKernels;
import java.util.Arrays;
import java.util.Random;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The exact tiled prefill ({@link TiledPrefill}) against the float64 reference and against one
 * single-threaded decode call per row (the same bits: same scores, max, exp and p.V order), over
 * prompt lengths around the block size ({@value TiledPrefill#BLOCK_ROWS}), with and without a
 * cached prefix that makes rows end inside tiles, head dims 8..128, GQA 1..8, every dtype and 1..3
 * threads. The grid is walked diagonally (each case changes several parameters) to stay cheap.
 */
class TiledPrefillTest {

  private static final int BQ = TiledPrefill.BLOCK_ROWS;

  static Stream<Arguments> grid() {
    return Stream.of(
        // count, prefix, headDim, kvHeads, gqa, dtype, tileTokens, threads
        Arguments.of(1, 0, 8, 1, 1, DType.F32, 32, 1),
        Arguments.of(1, 77, 64, 2, 4, DType.F16, 64, 2),
        Arguments.of(BQ - 1, 0, 80, 1, 2, DType.BF16, 32, 3),
        Arguments.of(BQ - 1, 77, 128, 1, 8, DType.F32, 64, 2),
        Arguments.of(BQ, 0, 128, 2, 3, DType.F16, 96, 1),
        Arguments.of(BQ, 77, 8, 3, 1, DType.BF16, 32, 3),
        Arguments.of(BQ + 1, 0, 64, 1, 5, DType.F32, 32, 2),
        Arguments.of(BQ + 1, 77, 80, 2, 2, DType.F16, 64, 3),
        Arguments.of(1000, 0, 8, 2, 4, DType.BF16, 64, 2),
        Arguments.of(1000, 77, 64, 1, 2, DType.F32, 96, 3),
        Arguments.of(4096, 0, 8, 1, 2, DType.F16, 128, 3),
        Arguments.of(4096, 77, 8, 1, 1, DType.F32, 64, 2),
        // block dtypes: the tiled path calls the same kernel entry points, which read the blocks
        Arguments.of(BQ + 1, 77, 64, 2, 4, DType.Q8_0, 64, 2),
        Arguments.of(1000, 0, 8, 1, 2, DType.Q4_0, 32, 3));
  }

  @ParameterizedTest(name = "count={0} prefix={1} d={2} kvHeads={3} gqa={4} {5} tile={6} threads={7}")
  @MethodSource("grid")
  void prefillMatchesReferenceAndRowPath(int count, int prefix, int d, int kvHeads, int gqa, DType dtype,
      int tile, int threads) {
    long seed = 1000L * count + 31L * prefix + d + gqa;
    Random r = new Random(seed);
    int numHeads = kvHeads * gqa;
    int n = prefix + count;
    int row = numHeads * d;
    String what = "seed=" + seed + " count=" + count + " prefix=" + prefix;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, kvHeads, d, n, dtype, tile));
        DecodeAttention tiled = DecodeAttention.create(cache, numHeads, threads);
        DecodeAttention rows = DecodeAttention.create(cache, numHeads, 1)) {
      TestData.fill(cache, 0, n, r);
      float[] q = TestData.queryWithScoreMagnitude(count * numHeads, d, 3f, r); // (count, numHeads, d)
      float[] out = new float[count * row];
      tiled.prefill(0, q, out, prefix, count, AttentionConfig.exact());
      long attended = (long) count * prefix + (long) count * (count + 1) / 2;
      assertEquals(attended * kvHeads, tiled.report().keysInContext(), what);
      // each block reads its prefix once: far fewer key rows than one decode per row
      assertTrue(tiled.report().keysScored() <= attended * kvHeads, what);

      float[] single = new float[count * row];
      rows.prefill(0, q, single, prefix, count, AttentionConfig.exact());
      assertArrayEquals(out, single, "thread count changed the bits, " + what);

      double scale = 1.0 / Math.sqrt(d);
      float[] qi = new float[row], oi = new float[row], got = new float[row];
      for (int i : checkedRows(count, prefix, tile, r)) {
        System.arraycopy(q, i * row, qi, 0, row);
        System.arraycopy(out, i * row, got, 0, row);
        rows.decode(0, qi, oi, prefix + i + 1);
        TestData.assertDecodeBits(rows.kernels(), oi, got, "row " + i + " differs from its decode call, " + what);
        double rel = ReferenceAttention.relError(got, ReferenceAttention.decode(cache, 0, qi, numHeads,
            prefix + i + 1, scale));
        assertTrue(rel < 3e-6, "row " + i + " relError " + rel + ", " + what);
      }
    }
  }

  /** First and last rows, rows on both sides of every block and tile edge near the start, a few random. */
  private static TreeSet<Integer> checkedRows(int count, int prefix, int tile, Random r) {
    TreeSet<Integer> rows = new TreeSet<>();
    for (int i : new int[] {0, 1, BQ - 1, BQ, BQ + 1, tile - prefix % tile - 1, tile - prefix % tile,
        count - 2, count - 1}) {
      if (i >= 0 && i < count) {
        rows.add(i);
      }
    }
    for (int i = 0; i < 6; i++) {
      rows.add(r.nextInt(count));
    }
    return rows;
  }

  @Test
  void prefillOfAWholePromptEqualsPrefillInChunks() {
    Random r = new Random(21);
    int n = 300, d = 16, numHeads = 4;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, d, n, DType.F32, 32));
        DecodeAttention att = DecodeAttention.create(cache, numHeads, 2)) {
      TestData.fill(cache, 0, n, r);
      float[] q = TestData.queryWithScoreMagnitude(n * numHeads, d, 3f, r);
      float[] whole = new float[n * numHeads * d];
      att.prefill(0, q, whole, 0, n, AttentionConfig.exact());
      // a chat: the prompt in one call, then a follow-up turn over the cached prefix
      int split = 211;
      float[] a = Arrays.copyOfRange(q, 0, split * numHeads * d);
      float[] b = Arrays.copyOfRange(q, split * numHeads * d, q.length);
      float[] outA = new float[a.length], outB = new float[b.length];
      att.prefill(0, a, outA, 0, split, AttentionConfig.exact());
      att.prefill(0, b, outB, split, n - split, AttentionConfig.exact());
      float[] joined = new float[whole.length];
      System.arraycopy(outA, 0, joined, 0, outA.length);
      System.arraycopy(outB, 0, joined, outA.length, outB.length);
      assertArrayEquals(whole, joined, "seed=21");
    }
  }

  /**
   * The prefill micro-kernels (default) and the decode kernels ({@code -Dhflash.prefillKernels=decode},
   * kept for A/B timing) give the same bits, here on a 16-bit cache with a head dim that is not a
   * lane multiple and tiles that are not whole 64-key chunks.
   */
  @Test
  void microKernelsAndDecodeKernelsGiveTheSameBits() {
    Random r = new Random(29);
    int n = 260, prefix = 37, d = 80, numHeads = 6;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, d, n, DType.F16, 96))) {
      TestData.fill(cache, 0, n, r);
      float[] q = TestData.queryWithScoreMagnitude((n - prefix) * numHeads, d, 3f, r);
      float[] micro = new float[q.length], decode = new float[q.length];
      try (DecodeAttention att = DecodeAttention.create(cache, numHeads, 2)) {
        att.prefill(0, q, micro, prefix, n - prefix, AttentionConfig.exact());
      }
      String old = System.setProperty(PrefillKernels.PROPERTY, "decode");
      try (DecodeAttention att = DecodeAttention.create(cache, numHeads, 2)) {
        att.prefill(0, q, decode, prefix, n - prefix, AttentionConfig.exact());
      } finally {
        if (old == null) {
          System.clearProperty(PrefillKernels.PROPERTY);
        } else {
          System.setProperty(PrefillKernels.PROPERTY, old);
        }
      }
      assertArrayEquals(decode, micro, "seed=29");
    }
  }

  /**
   * A rotating (Hadamard) cache on the tiled path: q rows rotated into the block, outputs rotated
   * back, each row with the bits of its decode call (which rotates the same way), on a 16-bit
   * and a block dtype.
   */
  @ParameterizedTest(name = "{0}")
  @MethodSource("rotatingDtypes")
  void rotatingCachePrefillsTiledWithTheDecodeBits(DType dtype) {
    Random r = new Random(31);
    int n = 150, prefix = 41, d = 64, numHeads = 4, row = numHeads * d, count = n - prefix;
    HadamardRotation rotation = HadamardRotation.of(d, HadamardRotation.DEFAULT_SEED);
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, d, n, dtype, 64), rotation);
        DecodeAttention att = DecodeAttention.create(cache, numHeads, 2)) {
      TestData.fill(cache, 0, n, r);
      float[] q = TestData.queryWithScoreMagnitude(count * numHeads, d, 3f, r);
      float[] out = new float[q.length];
      att.prefill(0, q, out, prefix, count, AttentionConfig.exact());
      assertTrue(att.report().keysScored() < (long) count * prefix * 2, "tiled: each block reads its prefix once");
      float[] qi = new float[row], oi = new float[row], got = new float[row];
      for (int i : new int[] {0, 22, 23, 86, count - 1}) {
        System.arraycopy(q, i * row, qi, 0, row);
        System.arraycopy(out, i * row, got, 0, row);
        att.decode(0, qi, oi, prefix + i + 1);
        TestData.assertDecodeBits(att.kernels(), oi, got, dtype + " row " + i + ", seed=31");
      }
    }
  }

  static Stream<DType> rotatingDtypes() {
    return Stream.of(DType.F16, DType.Q4_0);
  }

  /** Fewer (block, KV head) items than threads over a long prefix: the items' tiles split across threads. */
  @Test
  void shortPromptOverLongPrefixSplitsKeysAndStaysExact() {
    Random r = new Random(17);
    int prefix = 3000, count = 5, d = 64, numHeads = 2, row = numHeads * d;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 1, d, prefix + count, DType.F16, 64));
        DecodeAttention three = DecodeAttention.create(cache, numHeads, 3);
        DecodeAttention one = DecodeAttention.create(cache, numHeads, 1)) {
      TestData.fill(cache, 0, prefix + count, r);
      float[] q = TestData.queryWithScoreMagnitude(count * numHeads, d, 3f, r);
      float[] out = new float[q.length], again = new float[q.length], single = new float[q.length];
      three.prefill(0, q, out, prefix, count, AttentionConfig.exact());
      three.prefill(0, q, again, prefix, count, AttentionConfig.exact());
      assertArrayEquals(out, again, "same bits for the same thread count, seed=17");
      one.prefill(0, q, single, prefix, count, AttentionConfig.exact());
      float[] qi = new float[row], got = new float[row];
      for (int i = 0; i < count; i++) {
        System.arraycopy(q, i * row, qi, 0, row);
        System.arraycopy(out, i * row, got, 0, row);
        double rel = ReferenceAttention.relError(got, ReferenceAttention.decode(cache, 0, qi, numHeads,
            prefix + i + 1, 1.0 / Math.sqrt(d)));
        assertTrue(rel < 3e-6, "row " + i + " relError " + rel + ", seed=17");
      }
      // three chunks of the 47 tiles: the merged rows differ from one thread's only by float32 rounding
      double diff = 0;
      for (int i = 0; i < out.length; i++) {
        diff = Math.max(diff, Math.abs(out[i] - single[i]));
      }
      assertTrue(diff > 0 && diff < 1e-5, "split-K changed the bits within rounding: " + diff + ", seed=17");
      assertEquals((long) count * prefix + 15, three.report().keysInContext());
    }
  }

  @Test
  void badInputGivesTheClearErrorsAndTouchesNothing() {
    Random r = new Random(5);
    int n = 100, d = 8, numHeads = 2, row = numHeads * d;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 1, d, n, DType.F16, 32));
        DecodeAttention att = DecodeAttention.create(cache, numHeads, 2)) {
      TestData.fill(cache, 0, 90, r);
      float[] keysBefore = keys(cache, 90, d);
      float[] q = TestData.queryWithScoreMagnitude(20 * numHeads, d, 3f, r);
      float[] out = new float[20 * row];
      assertEquals("prefill rows past the cache: 80+20 > 90 (layer=0)",
          assertThrows(IndexOutOfBoundsException.class,
              () -> att.prefill(0, q, out, 80, 20, AttentionConfig.exact())).getMessage());
      assertEquals("q and out length must be count*numHeads*headDim: 5, 320 != 320",
          assertThrows(IllegalArgumentException.class,
              () -> att.prefill(0, new float[5], out, 0, 20, AttentionConfig.exact())).getMessage());
      q[7 * row + 3] = Float.NaN;
      assertEquals("non-finite value at q[" + (7 * row + 3) + "]=NaN",
          assertThrows(IllegalArgumentException.class,
              () -> att.prefill(0, q, out, 0, 20, AttentionConfig.exact())).getMessage());
      assertArrayEquals(new float[20 * row], out, "out untouched");
      assertEquals(90, cache.length(0));
      assertArrayEquals(keysBefore, keys(cache, 90, d), "cache untouched");
      q[7 * row + 3] = 0.5f;
      att.prefill(0, q, out, 0, 20, AttentionConfig.exact()); // and the instance still works
      att.close();
      assertThrows(IllegalStateException.class, () -> att.prefill(0, q, out, 0, 20, AttentionConfig.exact()));
    }
  }

  private static float[] keys(KvCache cache, int n, int d) {
    float[] k = new float[n * d];
    for (int j = 0; j < n; j++) {
      for (int c = 0; c < d; c++) {
        k[j * d + c] = cache.key(0, 0, j, c) + 3 * cache.value(0, 0, j, c);
      }
    }
    return k;
  }

  @Test
  void prefillAllocatesNothingInSteadyState() {
    Random r = new Random(4);
    int n = 256, d = 32, numHeads = 4;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, d, n, DType.F16, 64));
        DecodeAttention att = DecodeAttention.create(cache, numHeads, 1)) {
      TestData.fill(cache, 0, n, r);
      float[] q = TestData.queryWithScoreMagnitude(64 * numHeads, d, 3f, r);
      float[] out = new float[q.length];
      var threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
      // warm up: let the JIT compile and escape-analyse; under load the C2 queue of the vector
      // kernels can take more than a few hundred calls, so warm up until a round of 100 calls
      // allocates nothing (at most 3000 calls), then measure
      for (int round = 0; round < 30; round++) {
        long start = threads.getCurrentThreadAllocatedBytes();
        for (int i = 0; i < 100; i++) {
          att.prefill(0, q, out, n - 64, 64, AttentionConfig.exact());
        }
        if (round >= 2 && threads.getCurrentThreadAllocatedBytes() - start < 64 * 100) {
          break;
        }
      }
      long before = threads.getCurrentThreadAllocatedBytes();
      for (int i = 0; i < 50; i++) {
        att.prefill(0, q, out, n - 64, 64, AttentionConfig.exact());
      }
      long perCall = (threads.getCurrentThreadAllocatedBytes() - before) / 50;
      assertTrue(perCall < 64, "bytes allocated per prefill call on the calling thread: " + perCall);
    }
  }
}
