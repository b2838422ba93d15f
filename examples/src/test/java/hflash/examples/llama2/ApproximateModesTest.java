package hflash.examples.llama2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.engine.AttentionConfig;
import hflash.engine.AttentionMode;
import hflash.memory.DType;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The approximate attention modes inside the real decode loop, and the options that select them. */
class ApproximateModesTest {

  /** Sampled is float32-exact: greedy decoding keeps llama2.c's tokens. */
  @ParameterizedTest(name = "{0}")
  @MethodSource("hflash.examples.llama2.Reference#greedy")
  void sampledAtTemperatureZeroReproducesTheReference(Reference ref) {
    assertArrayEquals(ref.tokens(), greedy(ref, AttentionConfig.sampled()), ref.source());
  }

  /** With a tolerance far below float32 resolution of the logits, certified keeps every token. */
  @ParameterizedTest(name = "{0}")
  @MethodSource("hflash.examples.llama2.Reference#greedy")
  void certifiedWithTinyEpsilonReproducesTheReference(Reference ref) {
    assertArrayEquals(ref.tokens(), greedy(ref, AttentionConfig.certified(1e-6)), ref.source());
  }

  private static int[] greedy(Reference ref, AttentionConfig config) {
    // 32-key tiles: the 256-step references span 8 tiles, so the bounded modes really choose among tiles
    try (Transformer t = new Transformer(TestModels.model(), 512, DType.F32, config, 1, 32)) {
      return new Generator(t, TestModels.tokenizer()).generate(ref.prompt(), ref.steps(), 0f, 0, null).tokens();
    }
  }

  /** The path the CLI takes: options with --mode sampled, files loaded by Generator.run. */
  @Test
  void runWithSampledOptionsMatchesReference() throws Exception {
    Reference zoo = Reference.greedy().stream().filter(r -> r.prompt().equals("Zoo")).findFirst().orElseThrow();
    GenerateOptions o = new GenerateOptions(SharedData.model(), SharedData.tokenizer(), "Zoo", zoo.steps(), 0f, 7,
        "sampled", 1e-3, "5%", "f32", 1);
    GenerateResult r = Generator.run(o, null);
    assertArrayEquals(zoo.tokens(), r.tokens());
    AttentionTotals a = r.attention();
    assertTrue(a.sampleBytesRead() > 0, a.toString());
    assertTrue(a.bytesFraction() > 1, "sampled reads every key plus samples: " + a);
  }

  @Test
  void budgetedRunReportsItsBoundAndReadsLess() throws Exception {
    GenerateOptions o = new GenerateOptions(SharedData.model(), SharedData.tokenizer(), "", 256, 0f, 7, "budgeted",
        1e-3, "2", "f32", 1);
    AttentionTotals a = Generator.run(o, null).attention();
    assertTrue(a.kvBytesRead() < a.exactKvBytes(), a.toString());
    assertTrue(a.summaryBytesRead() > 0, a.toString());
    assertTrue(a.maxErrorBound() > 0, a.toString());
  }

  @Test
  void optionsMapToAttentionConfigs() {
    Path m = Path.of("m.bin"), t = Path.of("t.bin");
    assertEquals(AttentionConfig.exact(), GenerateOptions.defaults(m, t).attentionConfig());
    GenerateOptions o = new GenerateOptions(m, t, "", 10, 0f, 1, "CERTIFIED", 0.05, "5%", "f32", 1);
    assertEquals(AttentionConfig.certified(0.05), o.attentionConfig());
    assertEquals(AttentionConfig.budgetedShare(0.05), GenerateOptions.parseBudget("5%"));
    assertEquals(AttentionConfig.budgetedShare(0.125), GenerateOptions.parseBudget(" 12.5% "));
    assertEquals(AttentionConfig.budgetedTiles(8), GenerateOptions.parseBudget("8"));
    // the old nine-argument constructor keeps compiling and gets the defaults
    GenerateOptions old = new GenerateOptions(m, t, "", 10, 0f, 1, "budgeted", "f32", 1);
    assertEquals(GenerateOptions.DEFAULT_EPSILON, old.epsilon());
    assertEquals(AttentionConfig.budgetedShare(0.05), old.attentionConfig());
    for (AttentionMode mode : AttentionMode.values()) {
      assertEquals(mode, Transformer.defaultConfig(mode).mode());
    }
  }

  @Test
  void badBudgetsAndEpsilonsAreOneLineErrors() {
    Path m = Path.of("m.bin"), t = Path.of("t.bin");
    for (String[] c : List.of(new String[] {"x", "budget must be a tile count or a percentage: x"},
        new String[] {"0", "budget tiles must be > 0: 0"},
        new String[] {"150%", "budget share must be in (0%, 100%]: 150%"},
        new String[] {"%", "budget must be a tile count or a percentage: %"})) {
      IllegalArgumentException e =
          assertThrows(IllegalArgumentException.class, () -> GenerateOptions.parseBudget(c[0]));
      assertEquals(c[1], e.getMessage());
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new GenerateOptions(m, t, "", 10, 0f, 1, "certified", 0, "5%", "f32", 1));
    assertEquals("epsilon must be finite and > 0: 0.0", e.getMessage());
    // a bad budget fails even when the mode ignores it: the typo is reported, not silently dropped
    GenerateOptions o = new GenerateOptions(m, t, "", 10, 0f, 1, "exact", 1e-3, "lots", "f32", 1);
    assertThrows(IllegalArgumentException.class, o::attentionConfig);
  }

  @Test
  void mainParsesEpsilonAndBudget() {
    GenerateOptions o = Main.parse(new String[] {"--model", "m.bin", "--tokenizer", "t.bin", "--mode", "certified",
        "--epsilon", "0.01", "--budget", "25%"});
    assertEquals(0.01, o.epsilon());
    assertEquals("25%", o.budget());
    assertEquals(AttentionConfig.certified(0.01), o.attentionConfig());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Main.parse(new String[] {"--epsilon", "tiny"}));
    assertEquals("--epsilon expects a number: tiny", e.getMessage());
  }
}
