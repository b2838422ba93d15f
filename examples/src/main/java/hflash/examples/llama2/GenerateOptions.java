package hflash.examples.llama2;

import hflash.engine.AttentionConfig;
import hflash.engine.ModeConfig;
import java.nio.file.Path;
import java.util.Objects;

/**
 * Everything one {@code generate} run needs; the CLI's {@code ./hflash generate} flags map one to one.
 *
 * @param model llama2.c version-0 checkpoint
 * @param tokenizer llama2.c tokenizer file with the model's vocab_size tokens
 * @param prompt text to continue; "" starts from BOS alone
 * @param steps positions to run, prompt included, as llama2.c {@code -n}; 0 or more than the context means the
 *     whole context
 * @param temperature 0 for greedy argmax, else the softmax temperature
 * @param seed RNG seed for sampling (ignored at temperature 0)
 * @param mode attention mode, parsed by {@code hflash.engine.AttentionMode.parse} ("exact", "sampled",
 *     "certified", "budgeted")
 * @param epsilon certified mode: relative tolerance on the unread softmax mass ({@link #DEFAULT_EPSILON});
 *     validated whatever the mode, used only by certified
 * @param budget budgeted mode: tiles per KV head ("8") or a share of the tiles ("5%"); {@link #DEFAULT_BUDGET};
 *     parsed by {@link #parseBudget}, used only by budgeted
 * @param dtype KV cache element type, parsed by {@code hflash.memory.DType.parse} ("f32", "bf16", "f16")
 * @param threads attention worker threads (&gt;= 1)
 */
public record GenerateOptions(Path model, Path tokenizer, String prompt, int steps, float temperature, long seed,
    String mode, double epsilon, String budget, String dtype, int threads) {

  /** Default positions to run: 256, as llama2.c run.c. */
  public static final int DEFAULT_STEPS = hflash.bench.TextGenerator.DEFAULT_STEPS;
  /** Default seed: fixed, so that two runs with the same options print the same text. */
  public static final long DEFAULT_SEED = hflash.bench.TextGenerator.DEFAULT_SEED;
  /** Default certified tolerance: the unread mass is at most 0.1 % of the mass read. */
  public static final double DEFAULT_EPSILON = hflash.bench.TextGenerator.DEFAULT_EPSILON;
  /** Default budget: 5 % of the tiles (at least the first, last and open tile are always read). */
  public static final String DEFAULT_BUDGET = hflash.bench.TextGenerator.DEFAULT_BUDGET;

  public GenerateOptions {
    Objects.requireNonNull(model, "model");
    Objects.requireNonNull(tokenizer, "tokenizer");
    Objects.requireNonNull(prompt, "prompt");
    Objects.requireNonNull(mode, "mode");
    Objects.requireNonNull(budget, "budget");
    Objects.requireNonNull(dtype, "dtype");
    if (steps < 0) {
      throw new IllegalArgumentException("steps must be >= 0: " + steps);
    }
    if (!(temperature >= 0f) || Float.isInfinite(temperature)) {
      throw new IllegalArgumentException("temperature must be finite and >= 0: " + temperature);
    }
    if (!(epsilon > 0) || Double.isInfinite(epsilon)) {
      throw new IllegalArgumentException("epsilon must be finite and > 0: " + epsilon);
    }
    if (threads < 1) {
      throw new IllegalArgumentException("threads must be >= 1: " + threads);
    }
  }

  /** The options before epsilon and budget existed: certified and budgeted get their defaults. */
  public GenerateOptions(Path model, Path tokenizer, String prompt, int steps, float temperature, long seed,
      String mode, String dtype, int threads) {
    this(model, tokenizer, prompt, steps, temperature, seed, mode, DEFAULT_EPSILON, DEFAULT_BUDGET, dtype, threads);
  }

  /** Greedy, exact attention, f32 cache, one thread, empty prompt, {@link #DEFAULT_STEPS} steps. */
  public static GenerateOptions defaults(Path model, Path tokenizer) {
    return new GenerateOptions(model, tokenizer, "", DEFAULT_STEPS, 0f, DEFAULT_SEED, "exact", DEFAULT_EPSILON,
        DEFAULT_BUDGET, "f32", 1);
  }

  /**
   * The engine configuration of every attention call: {@code mode} with {@code epsilon} (certified) or
   * {@code budget} (budgeted); sampled uses the note's defaults. Parses and validates all of them whatever the mode,
   * so a typo fails even when the mode would ignore it.
   *
   * @throws IllegalArgumentException for an unknown mode or a malformed budget
   */
  public AttentionConfig attentionConfig() {
    return AttentionConfig.parse(mode, new ModeConfig.Parameters(epsilon, 0, AttentionConfig.DEFAULT_CONFIDENCE,
        AttentionConfig.DEFAULT_SEED, ModeConfig.Budgeted.parse(budget), new ModeConfig.Sampled()));
  }

  /**
   * A budgeted configuration from its CLI spelling: a positive integer is tiles per KV head ({@code "8"}), a number
   * followed by {@code %} is a share of the tiles in (0, 100] ({@code "5%"}, {@code "12.5%"}).
   *
   * @throws IllegalArgumentException "budget must be a tile count or a percentage: x"
   */
  public static AttentionConfig parseBudget(String budget) {
    return AttentionConfig.of(ModeConfig.Budgeted.parse(budget));
  }
}
