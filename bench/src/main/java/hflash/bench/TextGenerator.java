package hflash.bench;

import hflash.engine.AttentionConfig;
import hflash.engine.Scheduler;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;
import java.util.ServiceLoader;

/**
 * An end-to-end runtime that generates text with every attention call going through hflash: what a
 * real model's decode loop costs (tokens/s) and reads (the summed attention report). Front ends do
 * not link against a runtime: they find one with {@link ServiceLoader} ({@link #find()}), so the
 * runtime stays a leaf module (the examples module's llama2.c runtime registers itself this way).
 */
public interface TextGenerator {

  /** Positions to run, prompt included, unless asked otherwise; 0 means the whole context. */
  int DEFAULT_STEPS = 256;
  /** Sampling seed unless asked otherwise. */
  long DEFAULT_SEED = 42L;
  /** certified: relative tolerance on the unread softmax mass unless asked otherwise. */
  double DEFAULT_EPSILON = 1e-3;
  /** budgeted: tiles per KV head ({@code "8"}) or a share of them ({@code "5%"}) unless asked otherwise. */
  String DEFAULT_BUDGET = "5%";

  /**
   * One generation.
   *
   * @param model the checkpoint file
   * @param tokenizer the tokenizer file of that model
   * @param prompt text to continue, empty to start from the beginning-of-sequence token
   * @param steps positions to run, prompt included; 0 = the whole context
   * @param temperature 0 = greedy
   * @param attention every attention call's mode and parameters, as the front end parsed them
   *     ({@code AttentionConfig.parse}, the one {@code --mode} parser)
   * @param dtype KV cache element type id (f32, bf16, f16, q8_0, q4_0)
   * @param threads attention threads
   * @param scheduler how one attention call spreads over the threads
   * @param hadamard K and V rotated before they are cached
   */
  record Request(Path model, Path tokenizer, String prompt, int steps, float temperature, long seed,
      AttentionConfig attention, String dtype, int threads, Scheduler scheduler, boolean hadamard) {

    public Request {
      Objects.requireNonNull(model, "model");
      Objects.requireNonNull(tokenizer, "tokenizer");
      Objects.requireNonNull(prompt, "prompt");
      Objects.requireNonNull(attention, "attention");
      Objects.requireNonNull(dtype, "dtype");
      Objects.requireNonNull(scheduler, "scheduler");
    }
  }

  /** For messages, e.g. {@code "llama2.c"}. */
  String name();

  /**
   * Generates, streaming the text to {@code text} as it is produced, and returns the summary: the
   * speed and the summed attention report, a few lines of plain text.
   *
   * @throws IllegalArgumentException for an invalid checkpoint or tokenizer, a tokenizer of another
   *     model, a prompt longer than the context
   */
  String run(Request request, PrintStream text) throws IOException;

  /**
   * {@code samples} continuations of one prompt (sample i samples with the request's seed + i), each
   * on a fork of one page-pool sequence that holds the prompt once; streams each sample's text after a
   * {@code --- sample i ---} line and returns the summary: one line per sample, then the pool's pages.
   *
   * @throws IllegalArgumentException as {@link #run}, and for a request the forked runtime cannot serve
   */
  String runSamples(Request request, int samples, PrintStream text) throws IOException;

  /** The first runtime registered on the class or module path, if any. */
  static Optional<TextGenerator> find() {
    return ServiceLoader.load(TextGenerator.class).findFirst();
  }
}
