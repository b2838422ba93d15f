package hflash.examples.llama2;

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
 * @param mode attention mode, parsed by {@code hflash.engine.AttentionMode.parse} ("exact")
 * @param dtype KV cache element type, parsed by {@code hflash.memory.DType.parse} ("f32", "bf16", "f16")
 * @param threads attention worker threads (&gt;= 1)
 */
public record GenerateOptions(Path model, Path tokenizer, String prompt, int steps, float temperature, long seed,
    String mode, String dtype, int threads) {

  /** Default positions to run: 256, as llama2.c run.c. */
  public static final int DEFAULT_STEPS = 256;
  /** Default seed: fixed, so that two runs with the same options print the same text. */
  public static final long DEFAULT_SEED = 42L;

  public GenerateOptions {
    Objects.requireNonNull(model, "model");
    Objects.requireNonNull(tokenizer, "tokenizer");
    Objects.requireNonNull(prompt, "prompt");
    Objects.requireNonNull(mode, "mode");
    Objects.requireNonNull(dtype, "dtype");
    if (steps < 0) {
      throw new IllegalArgumentException("steps must be >= 0: " + steps);
    }
    if (!(temperature >= 0f) || Float.isInfinite(temperature)) {
      throw new IllegalArgumentException("temperature must be finite and >= 0: " + temperature);
    }
    if (threads < 1) {
      throw new IllegalArgumentException("threads must be >= 1: " + threads);
    }
  }

  /** Greedy, exact attention, f32 cache, one thread, empty prompt, {@link #DEFAULT_STEPS} steps. */
  public static GenerateOptions defaults(Path model, Path tokenizer) {
    return new GenerateOptions(model, tokenizer, "", DEFAULT_STEPS, 0f, DEFAULT_SEED, "exact", "f32", 1);
  }
}
