package hflash.examples.llama2;

import hflash.bench.TextGenerator;
import java.io.IOException;
import java.io.PrintStream;
import java.util.Locale;

/**
 * The llama2.c runtime as a {@link TextGenerator}: registered in
 * {@code META-INF/services/hflash.bench.TextGenerator}, so {@code hflash generate} finds it on the
 * class path without the CLI linking against this module.
 */
public final class Llama2TextGenerator implements TextGenerator {

  /** For the service loader. */
  public Llama2TextGenerator() {}

  @Override
  public String name() {
    return "llama2.c";
  }

  @Override
  public String run(Request r, PrintStream text) throws IOException {
    return Generator.run(options(r), r.attention(), text, r.scheduler(), r.hadamard()).summary();
  }

  @Override
  public String runSamples(Request r, int samples, PrintStream text) throws IOException {
    Generator.SampleRun run = Generator.runSamples(options(r), r.attention(), samples, text, r.scheduler());
    StringBuilder summary = new StringBuilder();
    for (int i = 0; i < run.results().size(); i++) {
      GenerateResult g = run.results().get(i);
      summary.append(String.format(Locale.ROOT, "sample %d: %d positions (%d prompt, %d generated), %.1f"
          + " tokens/s after the prompt%n", i, g.positions(), g.promptTokens(), g.generatedTokens(),
          g.generationTokensPerSecond()));
    }
    return summary.append(run.poolSummary()).toString();
  }

  private static GenerateOptions options(Request r) {
    // the mode comes as the front end parsed it (r.attention()); the options' own mode fields are not read
    return new GenerateOptions(r.model(), r.tokenizer(), r.prompt(), r.steps(), r.temperature(), r.seed(),
        r.attention().mode().id(), r.dtype(), r.threads());
  }
}
