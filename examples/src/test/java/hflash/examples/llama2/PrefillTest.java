package hflash.examples.llama2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.engine.AttentionConfig;
import hflash.memory.DType;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The layer-major prefill against the token-by-token forward pass. */
class PrefillTest {

  private static int[] TEXT; // 512 ids, BOS at 0 and 408

  /** In a method, not a static initializer: without the shared folder the class is skipped, not broken. */
  @org.junit.jupiter.api.BeforeAll
  static void readText() {
    TEXT = QualityEval.tokenIds(SharedData.trace("seq0"));
  }

  /**
   * Every position's logits from one prefill call equal those of one forward call per position (within 1e-5: the
   * arithmetic is the same operation for operation, but in a cold JVM the Vector API's EXP can differ in the last bit
   * between the interpreter and C2), in every mode.
   */
  @ParameterizedTest(name = "mode={0}")
  @ValueSource(strings = {"exact", "sampled", "certified", "budgeted"})
  void prefillLogitsEqualTokenByTokenLogits(String mode) {
    AttentionConfig config = Transformer.defaultConfig(hflash.engine.AttentionMode.parse(mode));
    int n = 300; // past tile 9 at 32 keys per tile, across no story boundary
    float[][] expected = new float[n][];
    try (Transformer t = new Transformer(TestModels.model(), 512, DType.F32, config, 1, 32)) {
      for (int pos = 0; pos < n; pos++) {
        expected[pos] = t.forward(TEXT[pos], pos).clone();
      }
      AttentionTotals tokenByToken = t.attentionTotals();
      t.reset();
      t.resetAttentionTotals();
      float[][] got = new float[n][];
      float[] last = t.prefill(TEXT, n, 0, (pos, logits) -> got[pos] = logits.clone());
      assertEquals(n, t.length());
      for (int pos = 0; pos < n; pos++) {
        assertClose(expected[pos], got[pos], "mode=" + mode + " pos=" + pos);
      }
      assertArrayEquals(got[n - 1], last);
      assertEquals(tokenByToken.calls(), t.attentionTotals().calls());
      if (config.mode() == hflash.engine.AttentionMode.EXACT) { // tiled: each tile once per block of rows
        assertTrue(t.attentionTotals().kvBytesRead() * 4 < tokenByToken.kvBytesRead(), "tiled prefill reads less");
      } else { // bounded and sampled modes keep one decode call per row: the same tiles
        assertEquals(tokenByToken.kvBytesRead(), t.attentionTotals().kvBytesRead(), "same tiles read");
      }
    }
  }

  /** Prefill from a nonzero position continues a sequence; the next forward after it sees the same cache. */
  @Test
  void prefillContinuesAtAPositionAndForwardFollows() {
    int n = 100;
    float[] expected;
    try (Transformer t = new Transformer(TestModels.model())) {
      for (int pos = 0; pos <= n; pos++) {
        t.forward(TEXT[pos], pos);
      }
      expected = t.forward(TEXT[n + 1], n + 1).clone();
      t.reset();
      t.prefill(TEXT, 40, 0);
      t.prefill(Arrays.copyOfRange(TEXT, 40, n + 1), n + 1 - 40, 40);
      assertClose(expected, t.forward(TEXT[n + 1], n + 1), "after two prefills");
    }
  }

  /** The generator with batched prefill gives the same tokens and text as run.c's token-by-token loop. */
  @Test
  void generatorPrefillEqualsTokenByToken() {
    String prompt = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";
    try (Transformer t = TestModels.transformer("f32")) {
      GenerateResult batched = new Generator(t, TestModels.tokenizer(), true).generate(prompt, 120, 0f, 0, null);
      GenerateResult single = new Generator(t, TestModels.tokenizer(), false).generate(prompt, 120, 0f, 0, null);
      assertArrayEquals(single.tokens(), batched.tokens());
      assertEquals(single.text(), batched.text());
      assertEquals(single.promptTokens(), batched.promptTokens());
      assertEquals(single.positions(), batched.positions());
      // steps shorter than the prompt: both stop inside it
      assertArrayEquals(new Generator(t, TestModels.tokenizer(), false).generate(prompt, 5, 0f, 0, null).tokens(),
          new Generator(t, TestModels.tokenizer(), true).generate(prompt, 5, 0f, 0, null).tokens());
    }
  }

  @Test
  void badPrefillLeavesTheCacheAsItWas() {
    try (Transformer t = TestModels.transformer("f32")) {
      t.prefill(TEXT, 10, 0);
      IndexOutOfBoundsException e =
          assertThrows(IndexOutOfBoundsException.class, () -> t.prefill(new int[] {5, 600}, 2, 10));
      assertEquals("token out of range [0, 512): 600", e.getMessage());
      assertEquals(10, t.length());
      e = assertThrows(IndexOutOfBoundsException.class, () -> t.prefill(TEXT, 10, 505));
      assertEquals("position out of range [0, 10]: 505", e.getMessage());
      e = assertThrows(IndexOutOfBoundsException.class, () -> t.prefill(TEXT, 510, 5));
      assertEquals("position out of range [0, 512): 514 (context full)", e.getMessage());
      IllegalArgumentException iae = assertThrows(IllegalArgumentException.class, () -> t.prefill(TEXT, 0, 0));
      assertEquals("count out of range [1, 512]: 0", iae.getMessage());
      assertEquals(10, t.length());
    }
  }

  private static void assertClose(float[] want, float[] got, String what) {
    assertEquals(want.length, got.length, what);
    // with the native decode kernel, token-by-token decode and tiled prefill run different kernels whose
    // float32 roundings differ and grow through the layers (measured up to 1.3e-5 on a logit of 0.42): 5e-5 there
    boolean nativeDecode = hflash.tiles.TileKernelsProvider.get().nativeVariant() != null;
    float tol = nativeDecode ? 5e-5f : 1e-5f;
    for (int i = 0; i < want.length; i++) {
      assertEquals(want[i], got[i], tol, what + " logit " + i);
    }
  }
}
