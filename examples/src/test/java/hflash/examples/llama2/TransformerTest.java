package hflash.examples.llama2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import hflash.engine.AttentionMode;
import hflash.engine.DecodeAttention;
import hflash.engine.ReferenceAttention;
import hflash.memory.DType;
import hflash.memory.KvCache;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The hflash side of the integration: cache shape and memory, threads, dtypes, lifecycle, no allocation. */
class TransformerTest {

  private static int[] story; // 257 ids, BOS first

  /**
   * llama2.c's second greedy story, read on first use (not in a static initializer: without the
   * shared folder the tests that need it are skipped and the others still run).
   */
  private static synchronized int[] story() {
    if (story == null) {
      story = Reference.greedy().get(1).tokens();
    }
    return story;
  }

  /** Memory per token is 2 * layers * kvHeads * rowBytes(headDim), whatever the dtype (q8_0 at d = 8: 10 bytes a row). */
  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(DType.class)
  void cacheHoldsOneRowPerPositionPerLayer(DType dtype) {
    try (Transformer t = new Transformer(TestModels.model(), 128, dtype, AttentionMode.EXACT, 1)) {
      for (int pos = 0; pos < 60; pos++) {
        t.forward(story()[pos], pos);
      }
      KvCache cache = t.cache();
      assertEquals(60, t.length());
      for (int layer = 0; layer < 5; layer++) {
        assertEquals(60, cache.length(layer));
      }
      long perToken = 2L * 5 * 4 * dtype.rowBytes(8);
      assertEquals(60 * perToken, cache.bytesUsed(), "dtype=" + dtype);
      assertEquals(128 * perToken, cache.bytesReserved(), "dtype=" + dtype);
    }
  }

  /** A 16-bit cache changes the numbers a little, not the story: the opening stays the greedy one. */
  @ParameterizedTest(name = "dtype={0}")
  @EnumSource(value = DType.class, names = {"BF16", "F16"})
  void halfPrecisionCacheKeepsTheOpening(DType dtype) {
    try (Transformer t = new Transformer(TestModels.model(), 512, dtype, AttentionMode.EXACT, 1)) {
      int[] got = new Generator(t, TestModels.tokenizer()).generate("", 12, 0f, 0, null).tokens();
      int[] want = Arrays.copyOf(story(), 13);
      assertArrayEquals(want, got, "dtype=" + dtype + ": \"" + TestModels.tokenizer().decode(got) + "\"");
    }
  }

  /**
   * The target for q8_0, greedy generation equal to the reference story for 256 tokens: met with the Hadamard
   * rotation; plain q8_0 (one block per 8-channel row, scale set by the row's largest channel) keeps the first 118
   * tokens and then takes another word (docs/CLAIMS.md).
   */
  @org.junit.jupiter.api.Test
  void q8CacheKeepsTheGreedyStory() {
    int[] plain = greedy(DType.Q8_0, false), rotated = greedy(DType.Q8_0, true);
    assertArrayEquals(story(), rotated, "q8_0+hadamard: \"" + TestModels.tokenizer().decode(rotated) + "\"");
    // plain q8_0 keeps 186 of the 257 ids since its scales are searched (QuantBlocks.searchScale;
    // 118 with ggml's first scale): where it leaves is a near-tie, docs/CLAIMS.md
    assertArrayEquals(Arrays.copyOf(story(), 180), Arrays.copyOf(plain, 180), "q8_0: \""
        + TestModels.tokenizer().decode(plain) + "\"");
  }

  private static int[] greedy(DType dtype, boolean rotated) {
    var rotation = rotated ? hflash.memory.HadamardRotation.of(8, hflash.memory.HadamardRotation.DEFAULT_SEED) : null;
    try (Transformer t = new Transformer(TestModels.model(), 512, dtype, hflash.engine.AttentionConfig.exact(), 1, 32,
        hflash.engine.Scheduler.SPLITK, rotation)) {
      return new Generator(t, TestModels.tokenizer()).generate("", 256, 0f, 0, null).tokens();
    }
  }

  /**
   * Worker threads: the greedy story is unchanged, and past 2 * SPLIT_MIN_KEYS keys (where split-K really splits;
   * capacity beyond the trained context is allowed) two runs give identical tokens, because the partial states are
   * merged in a fixed order.
   */
  @Test
  void threadsKeepTheReferenceAndAreDeterministic() {
    Reference ref = Reference.greedy().get(1);
    int steps = 3 * DecodeAttention.SPLIT_MIN_KEYS + 32;
    int[][] runs = new int[2][];
    for (int run = 0; run < 2; run++) {
      try (Transformer t = new Transformer(TestModels.model(), steps, DType.F32, AttentionMode.EXACT, 3, 32)) {
        runs[run] = new Generator(t, TestModels.tokenizer()).generate("", steps, 0f, 0, null).tokens();
      }
    }
    assertArrayEquals(ref.tokens(), Arrays.copyOf(runs[0], ref.tokens().length));
    assertArrayEquals(runs[0], runs[1]);
  }

  /** hflash's output on the model's real K/V, per layer, against a float64 softmax over the same stored rows. */
  @Test
  void attentionMatchesFloat64OnModelKeys() {
    long seed = 20240611L;
    Random rnd = new Random(seed);
    try (Transformer t = new Transformer(TestModels.model(), 512, DType.F32, AttentionMode.EXACT, 1, 32);
        DecodeAttention probe = DecodeAttention.create(t.cache(), 8)) {
      for (int pos = 0; pos < 200; pos++) {
        t.forward(story()[pos], pos);
      }
      float[] q = new float[8 * 8];
      float[] out = new float[8 * 8];
      for (int layer = 0; layer < 5; layer++) {
        for (int i = 0; i < q.length; i++) {
          q[i] = (float) rnd.nextGaussian() * 2f;
        }
        probe.decode(layer, q, out);
        double[] ref = ReferenceAttention.decode(t.cache(), layer, q, 8, 200, 1.0 / Math.sqrt(8));
        double err = ReferenceAttention.relError(out, ref);
        assertTrue(err < 1e-5, "layer=" + layer + " relError=" + err + " seed=" + seed);
      }
    }
  }

  /** Each decode call's report is summed: one call per position per layer, every key scored once per KV head. */
  @Test
  void attentionTotalsSumEveryCall() {
    try (Transformer t = TestModels.transformer("f32")) {
      for (int pos = 0; pos < 10; pos++) {
        t.forward(story()[pos], pos);
      }
      AttentionTotals a = t.attentionTotals();
      assertEquals(50, a.calls());
      assertEquals(5L * 4 * (10 * 11 / 2), a.keysScored(), a.toString()); // layers * kvHeads * (1+2+...+10)
      assertEquals(2L * 4 * a.keysScored() * 8, a.kvBytesRead(), a.toString()); // K and V rows of 8 f32
      t.resetAttentionTotals();
      assertEquals(new AttentionTotals(0, 0, 0, 0, 0), t.attentionTotals());
    }
  }

  /**
   * The steady-state decode loop allocates nothing: all buffers are preallocated (ours and the engine's). Until the
   * JIT has compiled the Vector API kernels the interpreter boxes vectors, so rounds are repeated until one is
   * steady; a per-token allocation (&gt;= 16 bytes x 640 calls) never gets there.
   */
  @Test
  void forwardDoesNotAllocateInTheSteadyState() {
    com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    long[] perRound = new long[40];
    try (Transformer t = TestModels.transformer("f32")) {
      for (int round = 0; round < perRound.length; round++) {
        long before = mx.getCurrentThreadAllocatedBytes();
        runStory(t, 128);
        perRound[round] = mx.getCurrentThreadAllocatedBytes() - before;
        if (perRound[round] < 1024) {
          return;
        }
      }
    }
    fail("every round of 128 forward calls allocated: " + Arrays.toString(perRound));
  }

  private static void runStory(Transformer t, int n) {
    t.reset();
    for (int pos = 0; pos < n; pos++) {
      t.forward(story()[pos], pos);
    }
  }

  @Test
  void closeReleasesTheCache() {
    Transformer t = TestModels.transformer("f32");
    t.forward(story()[0], 0);
    t.close();
    assertTrue(t.cache().isClosed());
    assertThrows(IllegalStateException.class, () -> t.forward(story()[1], 1));
    t.close(); // idempotent
  }

  @Test
  void rejectsBadArguments() {
    Llama2Checkpoint model = TestModels.model(); // outside assertThrows, so a missing shared folder skips
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new Transformer(model, 0, DType.F32, AttentionMode.EXACT, 1));
    assertEquals("capacity must be positive: 0", e.getMessage());
    try (Transformer t = TestModels.transformer("f32")) {
      IndexOutOfBoundsException oob = assertThrows(IndexOutOfBoundsException.class, () -> t.forward(512, 0));
      assertEquals("token out of range [0, 512): 512", oob.getMessage());
    }
    try (Transformer t = new Transformer(TestModels.model(), 2, DType.F32, AttentionMode.EXACT, 1)) {
      t.forward(story()[0], 0);
      t.forward(story()[1], 1);
      IndexOutOfBoundsException oob = assertThrows(IndexOutOfBoundsException.class, () -> t.forward(story()[2], 2));
      assertEquals("position out of range [0, 2): 2 (context full)", oob.getMessage());
    }
  }

  @Test
  void unknownModeAndDtypeAreRejectedBeforeLoading() {
    GenerateOptions mode = new GenerateOptions(SharedData.model(), SharedData.tokenizer(), "", 4, 0f, 1, "fast",
        "f32", 1);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Generator.run(mode, null));
    assertTrue(e.getMessage().startsWith("unknown mode: fast (expected exact"), e.getMessage()); // more modes later
    GenerateOptions dtype = new GenerateOptions(SharedData.model(), SharedData.tokenizer(), "", 4, 0f, 1, "exact",
        "f8", 1);
    e = assertThrows(IllegalArgumentException.class, () -> Generator.run(dtype, null));
    assertEquals("unknown dtype: f8 (expected f32, bf16, f16, q8_0 or q4_0)", e.getMessage());
  }
}
