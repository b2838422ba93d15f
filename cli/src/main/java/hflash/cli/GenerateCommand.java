package hflash.cli;

import hflash.bench.ModeSpec;
import hflash.bench.Schedulers;
import hflash.bench.TextGenerator;
import hflash.engine.Scheduler;
import hflash.io.UsageException;
import hflash.memory.DType;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code hflash generate}: text from a llama2.c checkpoint whose every attention call goes through
 * hflash. The runtime is found with the service loader ({@link TextGenerator#find()}: the examples
 * module's llama2.c runtime, which the application jar includes), so the CLI does not link against
 * it. The text streams to stdout as it is produced; the speed and the attention totals follow on
 * stderr (as llama2.c prints its tok/s), so stdout holds the text only.
 */
@Command(
    name = "generate",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Generate text with a llama2.c-format model (e.g. stories260K) running in Java, every attention call",
      "through hflash in the chosen mode. Prints the text as it streams, then tokens/s and the summed",
      "attention report on stderr. --model and --tokenizer default to shared/data/stories260K/",
      "{stories260K.bin, tok512.bin} in the working directory or a parent, when there."
    })
final class GenerateCommand implements Callable<Integer> {

  /** Where the default model lives, relative to the working directory or one of its parents. */
  static final String SHARED_MODEL_DIR = "shared/data/stories260K";

  @Option(names = "--model", paramLabel = "FILE", description = "llama2.c checkpoint (version 0 .bin).")
  Path model;

  @Option(names = "--tokenizer", paramLabel = "FILE", description = "llama2.c tokenizer (.bin) for that model.")
  Path tokenizer;

  @Option(names = "--prompt", defaultValue = "", paramLabel = "TEXT", description = "Text to continue (default: none, start from BOS).")
  String prompt;

  @Option(
      names = "--steps",
      defaultValue = "" + TextGenerator.DEFAULT_STEPS,
      paramLabel = "N",
      description = "Positions to run, prompt included; 0 = the whole context (default ${DEFAULT-VALUE}).")
  int steps;

  @Option(names = "--temperature", defaultValue = "0", paramLabel = "T", description = "0 = greedy (default ${DEFAULT-VALUE}).")
  float temperature;

  @Option(
      names = "--seed",
      defaultValue = "" + TextGenerator.DEFAULT_SEED,
      paramLabel = "S",
      description = "Sampling seed (default ${DEFAULT-VALUE}).")
  long seed;

  /** {@code --mode} (one mode) and every mode's parameters, as {@code bench} and {@code eval} take them. */
  @Mixin ModeOptions modeOptions;

  @Mixin SharedOptions.Dtype dtypeOption;

  @Mixin SharedOptions.KvRotation rotationOption;

  @Option(names = "--threads", defaultValue = "1", description = "Attention threads (default ${DEFAULT-VALUE}).")
  int threads;

  @Option(
      names = "--scheduler",
      defaultValue = Schedulers.DEFAULT,
      paramLabel = "S",
      description = "serial (one attention thread, whatever --threads) or splitk; pipeline is not available here yet"
          + " (the llama2 example builds its attention with splitk) (default ${DEFAULT-VALUE}).")
  String scheduler;

  @Option(names = "--samples", defaultValue = "1", paramLabel = "N",
      description = "N continuations of the prompt, each on a fork of one page-pool sequence that holds the prompt"
          + " once (sample i samples with --seed + i) (default ${DEFAULT-VALUE}: one plain cache).")
  int samples;

  @Spec CommandSpec spec;

  @Override
  public Integer call() throws IOException {
    DType dtype = dtypeOption.dtype;
    UsageException.positive("--threads", threads);
    Scheduler sched = Schedulers.one(scheduler, threads);
    int attentionThreads = threads;
    if (steps < 0) {
      throw new UsageException("--steps must be >= 0: " + steps);
    }
    if (!(temperature >= 0) || Float.isInfinite(temperature)) {
      throw new UsageException("--temperature must be finite and >= 0: " + temperature);
    }
    ModeSpec mode = modeOptions.one(); // before any file is read: a typo fails at once
    Path modelFile = file("--model", model, "stories260K.bin", "model");
    Path tokenizerFile = file("--tokenizer", tokenizer, "tok512.bin", "tokenizer");
    TextGenerator runtime = TextGenerator.find().orElseThrow(() -> new UsageException(
        "no text-generation runtime on the class path (the examples module's llama2.c runtime, which the"
            + " hflash-cli.jar that ./hflash builds includes)"));
    TextGenerator.Request request = new TextGenerator.Request(modelFile, tokenizerFile, prompt, steps, temperature,
        seed, mode.config(), dtype.id(), attentionThreads, sched, rotationOption.hadamard());
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    UsageException.positive("--samples", samples);
    if (samples > 1) {
      return samples(runtime, request, mode, sched, out, err);
    }
    String summary;
    try (PrintStream text = new PrintStream(new WriterOutputStream(out), true, StandardCharsets.UTF_8)) {
      try {
        summary = runtime.run(request, text);
      } catch (IllegalArgumentException e) {
        // invalid checkpoint or tokenizer, a tokenizer of another model, a prompt longer than the context
        throw new UsageException(e.getMessage(), e);
      }
    }
    out.println();
    out.flush();
    String label = mode.label();
    String cache = dtype.id() + (rotationOption.hadamard() ? " (hadamard-rotated)" : "");
    err.println("mode " + label + ", " + cache + " cache, " + attentionThreads + " thread(s), " + sched.id());
    err.println(summary.strip());
    err.flush();
    return 0;
  }

  /** {@code --samples N > 1}: the runtime's forked continuations, then its summary (a line per sample, the pool's). */
  private Integer samples(TextGenerator runtime, TextGenerator.Request request, ModeSpec mode, Scheduler sched,
      PrintWriter out, PrintWriter err) throws IOException {
    if (rotationOption.hadamard()) {
      throw new UsageException("--kv-rotation does not apply to --samples yet");
    }
    String summary;
    try (PrintStream text = new PrintStream(new WriterOutputStream(out), true, StandardCharsets.UTF_8)) {
      try {
        summary = runtime.runSamples(request, samples, text);
      } catch (IllegalArgumentException e) {
        throw new UsageException(e.getMessage(), e);
      }
    }
    out.flush();
    err.println("mode " + mode.label() + ", " + dtypeOption.dtype.id() + " cache, " + threads + " thread(s), "
        + sched.id() + ", " + samples + " samples");
    err.println(summary.strip());
    err.flush();
    return 0;
  }

  /** The file given, else the shared default when found, else a usage error. */
  private static Path file(String option, Path given, String defaultName, String what) {
    Path f = given;
    if (f == null) {
      Path dir = sharedModelDir();
      if (dir == null) {
        throw new UsageException(option + " is required (no " + SHARED_MODEL_DIR + " in "
            + Path.of("").toAbsolutePath() + " or a parent)");
      }
      f = dir.resolve(defaultName);
    }
    if (!Files.isRegularFile(f)) {
      throw new UsageException("no such " + what + " file: " + f);
    }
    return f;
  }

  /** {@code shared/data/stories260K} in the working directory or a parent, or null. */
  static Path sharedModelDir() {
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      Path candidate = dir.resolve(SHARED_MODEL_DIR);
      if (Files.isDirectory(candidate)) {
        return candidate;
      }
    }
    return null;
  }

  /**
   * Bytes to a writer, decoded as UTF-8 incrementally: a character split across two writes (a
   * multi-byte piece of the tokenizer's byte fallback) is held back until it is complete.
   */
  static final class WriterOutputStream extends OutputStream {
    private final PrintWriter out;
    private final CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
        .onMalformedInput(CodingErrorAction.REPLACE)
        .onUnmappableCharacter(CodingErrorAction.REPLACE);
    private final ByteBuffer in = ByteBuffer.allocate(256);
    private final CharBuffer chars = CharBuffer.allocate(256);

    WriterOutputStream(PrintWriter out) {
      this.out = out;
    }

    @Override
    public void write(int b) {
      write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public void write(byte[] b, int off, int len) {
      while (len > 0) {
        int n = Math.min(len, in.remaining());
        in.put(b, off, n);
        off += n;
        len -= n;
        in.flip();
        decoder.decode(in, chars, false);
        drain();
        in.compact();
      }
    }

    private void drain() {
      chars.flip();
      out.append(chars);
      chars.clear();
    }

    @Override
    public void flush() {
      out.flush();
    }

    @Override
    public void close() {
      in.flip();
      decoder.decode(in, chars, true);
      decoder.flush(chars);
      drain();
      in.clear();
      out.flush();
    }
  }
}
