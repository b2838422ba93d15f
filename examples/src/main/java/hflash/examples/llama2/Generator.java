package hflash.examples.llama2;

import hflash.engine.AttentionConfig;
import hflash.engine.BatchedDecode;
import hflash.engine.Scheduler;
import hflash.memory.DType;
import hflash.memory.PagePool;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
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

  /** The end of the line refusing a KV cache the machine cannot hold: what generate can ask for instead. */
  static final String CACHE_ADVICE =
      "the cache holds the model's whole context (seq_len) of every layer; try a smaller --dtype (bf16, q8_0, q4_0)";

  /**
   * As {@link #run(GenerateOptions, PrintStream, Scheduler)}; {@code hadamard} rotates K and V by the default
   * {@link hflash.memory.HadamardRotation} before they are cached (power-of-two head dims only).
   */
  public static GenerateResult run(GenerateOptions options, PrintStream out, Scheduler scheduler, boolean hadamard)
      throws IOException {
    // parse first: a typo in --mode, --budget or --dtype fails before megabytes of weights are read
    return run(options, options.attentionConfig(), out, scheduler, hadamard);
  }

  /**
   * As {@link #run(GenerateOptions, PrintStream, Scheduler, boolean)} with every attention call in
   * {@code mode} (a front end that parsed its own mode flags); the options' mode, epsilon and budget
   * are not used.
   */
  public static GenerateResult run(GenerateOptions options, AttentionConfig mode, PrintStream out, Scheduler scheduler,
      boolean hadamard) throws IOException {
    DType dtype = DType.parse(options.dtype());
    Llama2Checkpoint model = Llama2Checkpoint.load(options.model());
    int capacity = model.config().seqLen();
    Llama2Checkpoint.Config c = model.config();
    // refused here, before anything is allocated: a cache the machine cannot hold exits 1 with one line
    hflash.bench.Resources.requireFits("the KV cache", new hflash.memory.KvCacheLayout(c.layers(), c.kvHeads(),
        c.headDim(), capacity, dtype, Transformer.DEFAULT_TILE_TOKENS), CACHE_ADVICE);
    Tokenizer tokenizer = Tokenizer.load(options.tokenizer(), model.config().vocabSize());
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

  /**
   * {@code samples} continuations of one prompt that share its cached pages: the model and tokenizer of
   * {@code options} are loaded, the prompt is prefilled once into a sequence of a {@link PagePool}, and each sample
   * runs on a fork of it ({@link Transformer#fork()}: the prompt's pages are shared, a page is copied only when a
   * sample writes into it), sampling with seed {@code options.seed() + i}; the samples advance together, one batched
   * decode per layer and step. Each sample's text (prompt included) is printed to {@code out} after a
   * {@code --- sample i ---} line once every sample has ended. Pages hold {@link Transformer#DEFAULT_TILE_TOKENS}
   * positions (512 in the sampled mode, whose key samples need whole 512-position pages).
   *
   * @return one result per sample (each one's {@code promptSeconds} is the shared prefill's) and the pool's
   *     occupancy with every sample still open
   * @throws IllegalArgumentException for samples &lt; 1 and everything {@link #run} rejects
   */
  public static SampleRun runSamples(GenerateOptions options, int samples, PrintStream out,
      Scheduler scheduler) throws IOException {
    return runSamples(options, options.attentionConfig(), samples, out, scheduler);
  }

  /** As {@link #runSamples(GenerateOptions, int, PrintStream, Scheduler)} with every attention call in {@code mode}. */
  public static SampleRun runSamples(GenerateOptions options, AttentionConfig mode, int samples, PrintStream out,
      Scheduler scheduler) throws IOException {
    if (samples < 1) {
      throw new IllegalArgumentException("samples must be >= 1: " + samples);
    }
    DType dtype = DType.parse(options.dtype());
    Llama2Checkpoint model = Llama2Checkpoint.load(options.model());
    Tokenizer tokenizer = Tokenizer.load(options.tokenizer(), model.config().vocabSize());
    Llama2Checkpoint.Config c = model.config();
    int tile = Transformer.DEFAULT_TILE_TOKENS;
    // a mode that reads the key-sample store needs pages aligned to its sample blocks
    int pageTokens = mode.modeConfig().readsSamples() ? PagePool.defaultPageTokens(tile) : tile;
    int capacity = c.seqLen();
    int perSequence = (capacity + pageTokens - 1) / pageTokens;
    var layout = new hflash.memory.KvCacheLayout(c.layers(), c.kvHeads(), c.headDim(), capacity, dtype, tile);
    hflash.bench.Resources.requireFits("the page pool of " + samples + " samples", Math.multiplyExact(
        2 * layout.segmentBytes() / capacity * pageTokens, (long) perSequence * (samples + 1)), CACHE_ADVICE);
    try (PagePool pool = PagePool.allocate(layout, pageTokens, perSequence * (samples + 1));
         Transformer root = new Transformer(model, pool, mode, options.threads(), scheduler)) {
      return new Generator(root, tokenizer).samples(options.prompt(), options.steps(), options.temperature(),
          options.seed(), samples, out, pool);
    }
  }

  /**
   * The prompt prefilled once on this generator's transformer (a page-pool sequence), then {@code samples}
   * continuations on forks of it that advance together: every step runs each layer's attention as one batched
   * decode over the samples still going ({@link Transformer#forwardTogether}), so the prompt's shared pages are read
   * once per layer and step for all of them. A sample's tokens are those it would draw alone with its seed (the
   * cascade's attention differs from per-sequence decode by float32 rounding only). The texts are printed when the
   * last sample ends, one after the other.
   */
  SampleRun samples(String prompt, int steps, float temperature, long seed, int samples, PrintStream out,
      PagePool pool) {
    int capacity = transformer.capacity();
    int[] promptTokens = tokenizer.encode(prompt, true);
    if (promptTokens.length > capacity) {
      throw new IllegalArgumentException(
          "prompt longer than the context: " + promptTokens.length + " tokens > " + capacity);
    }
    int positions = steps == 0 ? capacity : Math.min(steps, capacity);
    int prefilled = Math.min(promptTokens.length, positions);
    transformer.reset();
    transformer.resetAttentionTotals();
    long start = System.nanoTime();
    float[] promptLogits = transformer.prefill(promptTokens, prefilled, 0).clone();
    double promptSeconds = (System.nanoTime() - start) / 1e9;
    Transformer[] forks = new Transformer[samples]; // kept open until every sample ran: the pool then holds all
    long sharedReads = 0;
    try (BatchedDecode batch = BatchedDecode.create(pool, transformer.config().heads(),
        transformer.attention().threads(), (float) (1.0 / Math.sqrt(transformer.config().headDim())),
        transformer.attention().scheduler())) {
      for (int i = 0; i < samples; i++) {
        forks[i] = transformer.fork();
      }
      long t0 = System.nanoTime();
      Sample[] all = new Sample[samples];
      for (int i = 0; i < samples; i++) {
        all[i] = new Sample(i, forks[i], new Sampler(temperature, seed + i), positions, promptTokens, prefilled,
            promptLogits);
      }
      Transformer[] active = new Transformer[samples];
      int[] last = new int[samples];
      Sample[] going = new Sample[samples];
      for (int pos = prefilled - 1; pos < positions; pos++) {
        int count = 0;
        for (Sample x : all) {
          if (!x.done) {
            going[count] = x;
            active[count] = x.fork;
            last[count++] = x.tokens[x.n - 1];
          }
        }
        if (count == 0) {
          break;
        }
        if (pos >= prefilled) {
          float[][] logits = Transformer.forwardTogether(active, count, last, pos, batch);
          sharedReads += batch.report().pagesShared();
          for (int i = 0; i < count; i++) {
            going[i].logits = logits[i];
          }
        }
        for (int i = 0; i < count; i++) {
          Sample x = going[i];
          int next = pos + 1 < promptTokens.length ? promptTokens[pos + 1] : x.sampler.sample(x.logits);
          if (next == Tokenizer.BOS) {
            x.done = true;
          } else {
            x.n = emit(x.tokens, x.n, next, x.text, null);
          }
        }
      }
      double seconds = promptSeconds + (System.nanoTime() - t0) / 1e9;
      List<GenerateResult> results = new ArrayList<>();
      for (Sample x : all) {
        String text = x.text.toString(StandardCharsets.UTF_8);
        if (out != null) {
          out.print((x.index == 0 ? "" : "\n") + "--- sample " + x.index + " ---\n" + text);
        }
        results.add(new GenerateResult(Arrays.copyOf(x.tokens, x.n), Math.min(promptTokens.length, x.n), text,
            Math.min(x.n, positions), seconds, x.fork.attentionTotals(), prefilled, promptSeconds));
      }
      if (out != null) {
        out.print("\n");
        out.flush();
      }
      return new SampleRun(results, pool.stats(), PagePool.pageBytes(pool.layout(), pool.pageTokens()),
          pool.pageTokens(), sharedReads);
    } finally {
      for (Transformer f : forks) {
        if (f != null) {
          f.close();
        }
      }
    }
  }

  /** One continuation's state in {@link #samples}: its tokens so far, its text, its sampler. */
  private final class Sample {
    final int index;
    final Transformer fork;
    final Sampler sampler;
    final int[] tokens;
    final ByteArrayOutputStream text;
    int n;
    boolean done;
    float[] logits; // the sampler overwrites its input: every sample starts from its own copy of the prompt's

    Sample(int index, Transformer fork, Sampler sampler, int positions, int[] promptTokens, int prefilled,
        float[] promptLogits) {
      this.index = index;
      this.fork = fork;
      this.sampler = sampler;
      this.tokens = new int[positions + 1];
      this.text = new ByteArrayOutputStream(positions * tokenizer.maxTokenLength() + 16);
      tokens[n++] = promptTokens[0];
      for (int p = 1; p < prefilled; p++) {
        n = emit(tokens, n, promptTokens[p], text, null);
      }
      this.logits = promptLogits.clone();
    }
  }

  /**
   * What {@link #runSamples} did.
   *
   * @param results one per sample
   * @param pool the pool's occupancy with the prompt and every sample still held
   * @param pageBytes bytes of one page
   * @param pageTokens positions of one page
   * @param sharedPageReads over every step and layer: pages the batched decode read once for several samples
   */
  public record SampleRun(List<GenerateResult> results, PagePool.Stats pool, long pageBytes, int pageTokens,
      long sharedPageReads) {

    /**
     * One line: the pages the pool holds (prompt and every sample, shared pages once) against what one flat cache
     * per sample reserves (the whole context) and what private pages per sample would take.
     */
    public String poolSummary() {
      long privatePages = 0;
      for (GenerateResult r : results) {
        privatePages += (r.positions() + pageTokens - 1) / pageTokens;
      }
      return String.format(java.util.Locale.ROOT,
          "page pool: %d pages of %d positions (%.1f KiB) hold the prompt and %d samples, %d of them shared by"
              + " several; unshared pages would take %d (%.1f KiB); the samples advanced together, %d page reads"
              + " served several samples at once",
          pool.pagesUsed(), pageTokens, pool.pagesUsed() * pageBytes / 1024.0, results.size(), pool.pagesShared(),
          privatePages, privatePages * pageBytes / 1024.0, sharedPageReads);
    }
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
