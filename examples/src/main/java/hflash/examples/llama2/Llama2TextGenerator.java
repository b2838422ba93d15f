package hflash.examples.llama2;

import hflash.bench.TextGenerator;
import java.io.IOException;
import java.io.PrintStream;

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
  public void checkBudget(String budget) {
    GenerateOptions.parseBudget(budget);
  }

  @Override
  public String run(Request r, PrintStream text) throws IOException {
    GenerateOptions options = new GenerateOptions(r.model(), r.tokenizer(), r.prompt(), r.steps(), r.temperature(),
        r.seed(), r.mode(), r.epsilon(), r.budget(), r.dtype(), r.threads());
    return Generator.run(options, text, r.scheduler(), r.hadamard()).summary();
  }
}
