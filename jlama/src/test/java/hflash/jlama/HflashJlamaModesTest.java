package hflash.jlama;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.github.tjake.jlama.model.AbstractModel;
import hflash.engine.AttentionConfig;
import java.nio.file.Path;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Lossy caches and approximate modes run through the adapter, and their agreement with the exact
 * f32 run is reported: 32 greedy tokens after a 300-token prompt. Greedy decoding of a random
 * model amplifies any difference once one token differs, so agreement is reported, and only the
 * first token's logits are held to a bound each configuration's error should meet.
 */
class HflashJlamaModesTest {

  static final int TOKENS = 32;

  @TempDir Path dir;

  @Test
  void q8AndBudgetedRunAndTheirAgreementIsReported() throws Exception {
    RandomModel spec = new RandomModel("llama", 128, 4, 2, 2, 96, 300, 1024, 3f, 51);
    Path modelDir = spec.write(dir.resolve("llama"));
    int[] prompt = Runs.prompt(300, spec.vocab(), 52);
    HflashJlama.Options base = HflashJlama.Options.defaults().threads(2).tileTokens(32);
    // 32 tokens (the exact-match test holds 64): past the first differing token a random model's greedy
    // tokens diverge anyway, so more tokens only add time
    Runs.Greedy exact = run(modelDir, base, prompt, TOKENS);
    Object[][] variants = {
        {"q8_0 exact", base.kvDtype("q8_0"), 5e-2},
        {"f16 exact", base.kvDtype("f16"), 5e-3},
        // every tile opened: the budgeted code path, exact arithmetic up to the summation order
        {"f32 budgeted 100%", base.attention(AttentionConfig.budgetedShare(1.0)), 1e-4},
        // half the tiles: random weights spread attention over all keys, so this loses mass; reported
        {"f32 budgeted 50%", base.attention(AttentionConfig.budgetedShare(0.5)), Double.POSITIVE_INFINITY},
        {"q8_0 budgeted 25%", base.kvDtype("q8_0").attention(AttentionConfig.budgetedShare(0.25)), Double.POSITIVE_INFINITY},
    };
    for (Object[] v : variants) {
      HflashJlama.Options o = (HflashJlama.Options) v[1];
      Runs.Greedy g = run(modelDir, o, prompt, TOKENS);
      double rel = Runs.relative(g.firstLogits(), exact.firstLogits());
      int agree = Runs.agreement(g.tokens(), exact.tokens());
      int prefix = 0;
      while (prefix < TOKENS && g.tokens()[prefix] == exact.tokens()[prefix]) {
        prefix++;
      }
      System.out.printf("%-26s tokens equal to exact: %d/%d (first %d in a row), first-token logits rel diff %.3g%n",
          v[0], agree, TOKENS, prefix, rel);
      assertEquals(TOKENS, g.tokens().length);
      for (float x : g.lastLogits()) {
        assertTrue(Float.isFinite(x), v[0] + ": non-finite logit");
      }
      assertTrue(rel <= (double) v[2], v[0] + ": first-token logits differ by " + rel + " relative");
      if ((double) v[2] <= 1e-4) {
        assertEquals(TOKENS, agree, v[0] + ": tokens differ from exact");
      }
    }
  }

  private static Runs.Greedy run(Path modelDir, HflashJlama.Options o, int[] prompt, int tokens) {
    try (AbstractModel m = HflashJlama.loadModel(modelDir, o)) {
      return Runs.greedy(m, HflashJlama.kvBuffer(m, UUID.randomUUID()), prompt, 0, tokens);
    }
  }
}
