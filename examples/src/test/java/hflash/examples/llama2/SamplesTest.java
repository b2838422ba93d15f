package hflash.examples.llama2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/**
 * {@code generate --samples N}: N continuations on forks of one page-pool sequence, advancing together with one
 * batched (cascade) decode per layer and step, give token for token what N separate runs with seeds seed, seed + 1,
 * ... give one after the other on plain caches, and the pool holds the prompt once.
 */
class SamplesTest {

  private static final String PROMPT = "Once upon a time, there was a little girl named Lily. She loved to play"
      + " outside in the park with her dog. One day, she saw a big red ball under a tree. She ran to the ball and"
      + " kicked it very high. The dog barked and ran after it. Lily laughed and";

  @Test
  void eachSampleIsTheSeparateRunWithItsSeed() throws Exception {
    int samples = 3;
    GenerateOptions o = new GenerateOptions(SharedData.model(), SharedData.tokenizer(), PROMPT, 200, 1.0f, 42,
        "exact", "f16", 1);
    ByteArrayOutputStream streamed = new ByteArrayOutputStream();
    Generator.SampleRun run;
    try (PrintStream out = new PrintStream(streamed, true, StandardCharsets.UTF_8)) {
      run = Generator.runSamples(o, samples, out, hflash.engine.Scheduler.SPLITK);
    }
    assertEquals(samples, run.results().size());
    boolean differ = false;
    for (int i = 0; i < samples; i++) {
      GenerateOptions alone = new GenerateOptions(o.model(), o.tokenizer(), PROMPT, 200, 1.0f, 42 + i, "exact", "f16",
          1);
      GenerateResult single = Generator.run(alone, null);
      assertArrayEquals(single.tokens(), run.results().get(i).tokens(), "sample " + i);
      assertEquals(single.text(), run.results().get(i).text());
      differ |= i > 0 && !single.text().equals(run.results().get(0).text());
      assertTrue(streamed.toString(StandardCharsets.UTF_8).contains("--- sample " + i + " ---\n" + single.text()));
    }
    assertTrue(differ, "temperature 1 with different seeds gives different stories");
    // 64-position pages: the prompt's full pages are held once, every sample's own pages apart
    int promptTokens = run.results().get(0).promptTokens();
    assertTrue(promptTokens >= run.pageTokens(), "the prompt fills a page: " + promptTokens);
    assertEquals(promptTokens / run.pageTokens(), run.pool().pagesShared(), run.poolSummary());
    int separate = 0;
    for (GenerateResult r : run.results()) {
      separate += (r.positions() + run.pageTokens() - 1) / run.pageTokens();
    }
    assertTrue(run.pool().pagesUsed() < separate + 1, run.poolSummary());
    assertTrue(run.poolSummary().startsWith("page pool: "), run.poolSummary());
    // the samples advanced together: every layer of every generated step read the prompt's full pages once for all
    int generatedSteps = run.results().get(0).positions() - promptTokens;
    assertTrue(run.sharedPageReads() >= (long) generatedSteps * 1 * (promptTokens / run.pageTokens()),
        run.sharedPageReads() + " shared page reads over " + generatedSteps + " steps");
  }
}
