package hflash.examples.llama2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.engine.AttentionMode;
import hflash.memory.DType;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class GeneratorTest {

  /** Greedy decoding with exact attention over an f32 cache reproduces llama2.c run.c token for token. */
  @ParameterizedTest(name = "{0}")
  @MethodSource("hflash.examples.llama2.Reference#greedy")
  void greedyMatchesLlama2cReference(Reference ref) {
    ByteArrayOutputStream streamed = new ByteArrayOutputStream();
    GenerateResult r;
    try (Transformer t = TestModels.transformer("f32");
        PrintStream out = new PrintStream(streamed, true, StandardCharsets.UTF_8)) {
      r = new Generator(t, TestModels.tokenizer()).generate(ref.prompt(), ref.steps(), 0f, 0, out);
    }
    assertArrayEquals(ref.tokens(), r.tokens(), ref.source());
    assertEquals(ref.text(), r.text());
    assertEquals(ref.text(), streamed.toString(StandardCharsets.UTF_8), "streamed text");
    assertEquals(ref.steps(), r.positions());
    assertEquals(TestModels.tokenizer().encode(ref.prompt(), true).length, r.promptTokens());
  }

  @Test
  void runLoadsFilesAndMatchesReference() throws Exception {
    Reference zoo = Reference.greedy().stream().filter(r -> r.prompt().equals("Zoo")).findFirst().orElseThrow();
    GenerateOptions o = new GenerateOptions(SharedData.model(), SharedData.tokenizer(), "Zoo", zoo.steps(), 0f, 7,
        "exact", "f32", 1);
    GenerateResult r = Generator.run(o, null);
    assertArrayEquals(zoo.tokens(), r.tokens());
    AttentionTotals a = r.attention();
    assertEquals(5L * zoo.steps(), a.calls(), "one decode call per position per layer");
    assertTrue(a.keysScored() > 0, a.toString());
    assertTrue(r.summary().contains("tokens/s"), r.summary());
    // the prompt ("Zoo" with BOS) is timed apart from generation, which runs one forward pass per position
    assertEquals(TestModels.tokenizer().encode("Zoo", true).length, r.promptPositions());
    assertTrue(r.promptSeconds() > 0 && r.promptSeconds() <= r.seconds(), r.summary());
    assertTrue(r.summary().contains("prompt: " + r.promptPositions() + " positions in "), r.summary());
    assertTrue(r.summary().contains("generation: " + (r.positions() - r.promptPositions()) + " positions in "),
        r.summary());
  }

  @Test
  void promptLongerThanContextIsRejected() {
    try (Transformer t = new Transformer(TestModels.model(), 8, DType.F32, AttentionMode.EXACT, 1)) {
      Generator g = new Generator(t, TestModels.tokenizer());
      String prompt = "Once upon a time, there was a little girl named Lily. She loved to play outside.";
      int n = TestModels.tokenizer().encode(prompt, true).length;
      IllegalArgumentException e =
          assertThrows(IllegalArgumentException.class, () -> g.generate(prompt, 0, 0f, 0, null));
      assertEquals("prompt longer than the context: " + n + " tokens > 8", e.getMessage());
    }
  }

  @Test
  void stepsBeyondContextStopAtCapacity() {
    try (Transformer t = new Transformer(TestModels.model(), 16, DType.F32, AttentionMode.EXACT, 1)) {
      GenerateResult r = new Generator(t, TestModels.tokenizer()).generate("", 100, 0f, 0, null);
      assertEquals(17, r.tokens().length);
      assertArrayEquals(Arrays.copyOf(Reference.greedy().get(0).tokens(), 17), r.tokens());
      assertEquals(16, t.length());
    }
  }

  @Test
  void samplingIsDeterministicPerSeed() {
    long seed = 133742;
    try (Transformer t = TestModels.transformer("f32")) {
      Generator g = new Generator(t, TestModels.tokenizer());
      int[] a = g.generate("Zoo", 40, 1.0f, seed, null).tokens();
      int[] b = g.generate("Zoo", 40, 1.0f, seed, null).tokens();
      assertArrayEquals(a, b, "seed=" + seed);
      for (int id : a) {
        assertTrue(id >= 0 && id < 512, "seed=" + seed + " id=" + id);
      }
    }
  }

  @Test
  void forwardRewindsToAnEarlierPosition() {
    int[] ref = Reference.greedy().get(0).tokens();
    try (Transformer t = TestModels.transformer("f32")) {
      for (int pos = 0; pos < 10; pos++) {
        t.forward(ref[pos], pos);
      }
      float[] first = t.forward(ref[10], 10).clone();
      t.forward(ref[3], 3); // rewind: drops positions 3..10
      assertEquals(4, t.length());
      for (int pos = 4; pos < 10; pos++) {
        t.forward(ref[pos], pos);
      }
      assertArrayEquals(first, t.forward(ref[10], 10));
      IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> t.forward(ref[0], 13));
      assertEquals("position out of range [0, 11]: 13", e.getMessage());
    }
  }

  @Test
  void mainParsesFlags() {
    GenerateOptions o = Main.parse(new String[] {"--model", "m.bin", "--tokenizer", "t.bin", "--prompt", "Zoo",
        "--steps", "60", "--temperature", "0.8", "--seed", "9", "--mode", "exact", "--dtype", "bf16", "--threads", "2"});
    assertEquals("m.bin", o.model().toString());
    assertEquals(60, o.steps());
    assertEquals(0.8f, o.temperature());
    assertEquals("bf16", o.dtype());
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> Main.parse(new String[] {"--model", "m"}));
    assertEquals("--model and --tokenizer are required", e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> Main.parse(new String[] {"--steps", "x"}));
    assertEquals("--steps expects an integer: x", e.getMessage());
  }
}
