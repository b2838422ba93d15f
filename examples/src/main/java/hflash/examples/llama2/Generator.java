package hflash.examples.llama2;

import hflash.engine.AttentionConfig;
import hflash.engine.Scheduler;
import hflash.memory.DType;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Objects;

/**
 * Prompt prefill plus autoregressive generation, the loop of llama2.c {@code run.c}'s {@code generate()}: while the
 * prompt lasts the next token is forced from it, afterwards it is sampled; generation stops after {@code steps}
 * positions or when the model emits BOS. Text is streamed as tokens are produced.
 *
 * <p>The prompt goes through {@link Transformer#prefill} (layer by layer, one batched K/V append per layer) unless
 * the generator was built with {@code batchedPrefill = false}, in which case every prompt position runs its own
 * forward pass as in run.c. Both give the same tokens and logits ({@code PrefillTest}); the batched path prints the
 * prompt once it is processed rather than token by token.
 *
 * <p>Borrows its transformer and tokenizer (does not close them). Not thread-safe.
 */
public final class Generator {

  private final Transformer transformer;
  private final Tokenizer tokenizer;
  private final boolean batchedPrefill;

  /**
   * A generator that prefills the prompt in one batched pass per layer.
   *
   * @throws IllegalArgumentException if the tokenizer's vocab size differs from the model's
   */
  public Generator(Transformer transformer, Tokenizer tokenizer) {
    this(transformer, tokenizer, true);
  }

  /**
   * @param batchedPrefill true: the prompt goes through {@link Transformer#prefill}; false: one
   *     {@link Transformer#forward} per prompt position (run.c's loop)
   * @throws IllegalArgumentException if the tokenizer's vocab size differs from the model's
   */
  public Generator(Transformer transformer, Tokenizer tokenizer, boolean batchedPrefill) {
    this.batchedPrefill = batchedPrefill;
    this.transformer = Objects.requireNonNull(transformer, "transformer");
    this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
    int expected = transformer.config().vocabSize();
    if (tokenizer.vocabSize() != expected) {
      throw new IllegalArgumentException(
          "tokenizer has " + tokenizer.vocabSize() + " tokens but the model expects " + expected);
    }
  }

  /**
   * Loads the model and tokenizer named in {@code options}, generates, streams the text to {@code out}, and
   * releases everything (cache, attention threads) before returning.
   *
   * @throws IllegalArgumentException for an invalid file, an unknown mode or dtype, a malformed budget, or a prompt
   *     longer than the context
   */
  public static GenerateResult run(GenerateOptions options, PrintStream out) throws IOException {
    return run(options, out, Scheduler.SPLITK);
  }

  /** As {@link #run(GenerateOptions, PrintStream)} with the scheduler of every attention call. */
  public static GenerateResult run(GenerateOptions options, PrintStream out, Scheduler scheduler)
      throws IOException {
    return run(options, out, scheduler, false);
  }

  /**
   * As {@link #run(GenerateOptions, PrintStream, Scheduler)}; {@code hadamard} rotates K and V by the default
   * {@link hflash.memory.HadamardRotation} before they are cached (power-of-two head dims only).
   */
  public static GenerateResult run(GenerateOptions options, PrintStream out, Scheduler scheduler, boolean hadamard)
      throws IOException {
    // parse first: a typo in --mode, --budget or --dtype fails before megabytes of weights are read
    AttentionConfig mode = options.attentionConfig();
    DType dtype = DType.parse(options.dtype());
    Llama2Checkpoint model = Llama2Checkpoint.load(options.model());
    Tokenizer tokenizer = Tokenizer.load(options.tokenizer(), model.config().vocabSize());
    int capacity = model.config().seqLen();
    var rotation = hadamard
        ? hflash.memory.HadamardRotation.of(model.config().headDim(), hflash.memory.HadamardRotation.DEFAULT_SEED)
        : null;
    try (Transformer transformer = new Transformer(model, capacity, dtype, mode, options.threads(),
        Transformer.DEFAULT_TILE_TOKENS, scheduler, rotation)) {
      return new Generator(transformer, tokenizer)
          .generate(options.prompt(), options.steps(), options.temperature(), options.seed(), out);
    }
  }

  /**
   * Runs prefill and generation from position 0 (the transformer is reset first).
   *
   * @param steps positions to run, prompt included (llama2.c {@code -n}); 0 or more than the context means the
   *     whole context
   * @param out receives the decoded text as it is produced (flushed per token); may be null
   * @throws IllegalArgumentException if the prompt (with BOS) has more tokens than the context holds
   */
  public GenerateResult generate(String prompt, int steps, float temperature, long seed, PrintStream out) {
    Objects.requireNonNull(prompt, "prompt");
    if (steps < 0) {
      throw new IllegalArgumentException("steps must be >= 0: " + steps);
    }
    Sampler sampler = new Sampler(temperature, seed);
    int capacity = transformer.capacity();
    int[] promptTokens = tokenizer.encode(prompt, true);
    if (promptTokens.length > capacity) {
      throw new IllegalArgumentException(
          "prompt longer than the context: " + promptTokens.length + " tokens > " + capacity);
    }
    int positions = steps == 0 ? capacity : Math.min(steps, capacity);
    int[] tokens = new int[positions + 1]; // BOS + one token per position
    ByteArrayOutputStream text = new ByteArrayOutputStream(positions * tokenizer.maxTokenLength() + 16);
    transformer.reset();
    transformer.resetAttentionTotals();
    long start = System.nanoTime();
    // the prompt positions: forced tokens, so only the last position's logits are needed
    int prefilled = batchedPrefill ? Math.min(promptTokens.length, positions) : 1;
    float[] logits = batchedPrefill ? transformer.prefill(promptTokens, prefilled, 0)
        : transformer.forward(promptTokens[0], 0);
    // the prompt is processed once the last prompt position's logits exist (batched: now)
    long promptEnd = batchedPrefill || prefilled == promptTokens.length ? System.nanoTime() : 0;
    int n = 0;
    tokens[n++] = promptTokens[0];
    for (int i = 1; i < prefilled; i++) {
      n = emit(tokens, n, promptTokens[i], text, out);
    }
    for (int pos = prefilled - 1; pos < positions; pos++) {
      if (pos >= prefilled) {
        logits = transformer.forward(tokens[n - 1], pos);
        if (pos == promptTokens.length - 1) {
          promptEnd = System.nanoTime(); // token by token: the last prompt position's pass
        }
      }
      int next = pos + 1 < promptTokens.length ? promptTokens[pos + 1] : sampler.sample(logits);
      if (next == Tokenizer.BOS) {
        break; // run.c: BOS delimits sequences, so the story is over
      }
      n = emit(tokens, n, next, text, out);
    }
    double seconds = (System.nanoTime() - start) / 1e9;
    int ran = Math.min(n, positions);
    int promptPositions = Math.min(promptTokens.length, ran);
    double promptSeconds = promptEnd == 0 ? seconds : (promptEnd - start) / 1e9;
    return new GenerateResult(Arrays.copyOf(tokens, n), Math.min(promptTokens.length, n),
        text.toString(StandardCharsets.UTF_8), ran, seconds, transformer.attentionTotals(), promptPositions,
        promptSeconds);
  }

  /** Appends {@code next} after {@code tokens[n - 1]}, prints its piece; returns the new count. */
  private int emit(int[] tokens, int n, int next, ByteArrayOutputStream text, PrintStream out) {
    byte[] piece = tokenizer.printedBytes(tokens[n - 1], next); // shared, no allocation
    if (out != null) {
      out.write(piece, 0, piece.length);
      out.flush();
    }
    text.write(piece, 0, piece.length);
    tokens[n] = next;
    return n + 1;
  }
}
