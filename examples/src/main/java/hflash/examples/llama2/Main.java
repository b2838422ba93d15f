package hflash.examples.llama2;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;

/**
 * Runs {@link Generator#run} from the command line, without the hflash CLI:
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp ... hflash.examples.llama2.Main \
 *     --model stories260K.bin --tokenizer tok512.bin [--prompt TEXT] [--steps N] [--temperature T] [--seed S] \
 *     [--mode exact|sampled|certified|budgeted] [--epsilon E] [--budget N|P%] [--dtype f32|bf16|f16] [--threads N]
 * </pre>
 *
 * The text goes to stdout, the summary (tokens/s, attention totals) to stderr. Exit status 2 on a usage error, 1 on
 * an invalid input file or option value.
 */
public final class Main {

  private static final String USAGE = "usage: Main --model FILE --tokenizer FILE [--prompt TEXT] [--steps N]"
      + " [--temperature T] [--seed S] [--mode exact|sampled|certified|budgeted] [--epsilon E] [--budget N|P%]"
      + " [--dtype f32|bf16|f16] [--threads N] [--samples N]";

  private Main() {}

  public static void main(String[] args) throws IOException {
    GenerateOptions options;
    int samples = 1;
    try {
      for (int i = 0; i + 1 < args.length; i += 2) { // --samples N: continuations sharing the prompt's pages
        if (args[i].equals("--samples")) {
          samples = parseInt("--samples", args[i + 1]);
          String[] rest = new String[args.length - 2];
          System.arraycopy(args, 0, rest, 0, i);
          System.arraycopy(args, i + 2, rest, i, args.length - i - 2);
          args = rest;
          break;
        }
      }
      options = parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println(e.getMessage());
      System.err.println(USAGE);
      // a process entry point, not library code: its job is the exit status scripts test
      System.exit(2);
      return;
    }
    try {
      PrintStream out = System.out;
      if (samples != 1) {
        Generator.SampleRun run = Generator.runSamples(options, samples, out, hflash.engine.Scheduler.SPLITK);
        System.err.println(run.poolSummary());
        return;
      }
      GenerateResult result = Generator.run(options, out);
      out.println();
      System.err.println(result.summary());
    } catch (IllegalArgumentException e) {
      System.err.println("error: " + e.getMessage());
      System.exit(1);
    }
  }

  /** Parses {@code --flag value} pairs into options; unknown flags and missing values are IAEs. */
  static GenerateOptions parse(String[] args) {
    String model = null, tokenizer = null, prompt = "", mode = "exact", dtype = "f32";
    int steps = GenerateOptions.DEFAULT_STEPS, threads = 1;
    float temperature = 0f;
    long seed = GenerateOptions.DEFAULT_SEED;
    double epsilon = GenerateOptions.DEFAULT_EPSILON;
    String budget = GenerateOptions.DEFAULT_BUDGET;
    for (int i = 0; i < args.length; i += 2) {
      String flag = args[i];
      if (i + 1 >= args.length) {
        throw new IllegalArgumentException("missing value after " + flag);
      }
      String value = args[i + 1];
      switch (flag) {
        case "--model" -> model = value;
        case "--tokenizer" -> tokenizer = value;
        case "--prompt" -> prompt = value;
        case "--steps" -> steps = parseInt(flag, value);
        case "--temperature" -> temperature = parseFloat(flag, value);
        case "--seed" -> seed = parseLong(flag, value);
        case "--mode" -> mode = value;
        case "--epsilon" -> epsilon = parseDouble(flag, value);
        case "--budget" -> budget = value;
        case "--dtype" -> dtype = value;
        case "--threads" -> threads = parseInt(flag, value);
        default -> throw new IllegalArgumentException("unknown option: " + flag);
      }
    }
    if (model == null || tokenizer == null) {
      throw new IllegalArgumentException("--model and --tokenizer are required");
    }
    return new GenerateOptions(Path.of(model), Path.of(tokenizer), prompt, steps, temperature, seed, mode, epsilon,
        budget, dtype, threads);
  }

  private static int parseInt(String flag, String value) {
    try {
      return Integer.parseInt(value);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(flag + " expects an integer: " + value);
    }
  }

  private static long parseLong(String flag, String value) {
    try {
      return Long.parseLong(value);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(flag + " expects an integer: " + value);
    }
  }

  private static double parseDouble(String flag, String value) {
    try {
      return Double.parseDouble(value);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(flag + " expects a number: " + value);
    }
  }

  private static float parseFloat(String flag, String value) {
    try {
      return Float.parseFloat(value);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(flag + " expects a number: " + value);
    }
  }
}
