package hflash.examples.llama2;

import hflash.engine.AttentionConfig;
import hflash.io.Safetensors;
import hflash.memory.DType;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * What the approximate attention modes do to the model's predictions: teacher-forced decoding of real text, once per
 * attention configuration, compared with exact attention.
 *
 * <p>For a sequence of token ids {@code x_0 .. x_{n-1}} (BOS first) every configuration runs {@link
 * Transformer#forward} at positions {@code 0 .. n-2} with the true token as input (teacher forcing; every attention
 * call in that mode, so errors reach later layers' K/V and later positions as they would in generation) and scores
 * the prediction of {@code x_{t+1}}:
 *
 * <ul>
 *   <li>agreement: share of positions whose argmax equals the exact run's argmax;
 *   <li>mean NLL: {@code -log softmax(logits_t)[x_{t+1}]} in nats, averaged over the positions (computed in double);
 *   <li>delta NLL: mean NLL minus the exact run's;
 *   <li>bytes read / exact: K, V, summaries and samples read, over the K and V an exact pass reads;
 *   <li>max error bound: the largest per-head bound on {@code ||out_h - exact_h||} the engine reported.
 * </ul>
 *
 * The token ids come from the {@code token_ids} metadata of the shared stories260K traces ({@code [BOS] +
 * encode(story)} per story, concatenated, cut at 512), so no tokenizer is involved.
 */
public final class QualityEval {

  /** Tile size of the evaluation: 32 keys, so 512 positions make at most 16 tiles per KV head. */
  public static final int DEFAULT_TILE_TOKENS = 32;

  /** One attention configuration under test and its label in the table. */
  public record Variant(String label, AttentionConfig config) {
    public Variant {
      Objects.requireNonNull(label, "label");
      Objects.requireNonNull(config, "config");
    }
  }

  /**
   * One configuration on one text.
   *
   * @param text the trace's name (file name without extension), or "all" for the pooled rows
   * @param variant the configuration's label
   * @param predictions positions scored
   * @param agreement share of positions whose argmax equals exact's
   * @param meanNll mean negative log-likelihood of the true next token, nats
   * @param deltaNll meanNll minus exact's on the same positions
   * @param kvFraction K and V bytes read over those an exact pass reads
   * @param bytesFraction every byte read (K, V, summaries, samples) over the K+V bytes an exact pass reads
   * @param maxErrorBound largest reported per-head output error bound (0 for exact and sampled)
   */
  public record Row(String text, String variant, int predictions, double agreement, double meanNll,
      double deltaNll, double kvFraction, double bytesFraction, double maxErrorBound) {}

  private QualityEval() {}

  /** The configurations of docs/CLAIMS.md: exact, sampled, certified 1e-1..1e-3, budgeted 10/25/50 % of tiles. */
  public static List<Variant> defaultVariants() {
    return List.of(
        new Variant("exact", AttentionConfig.exact()),
        new Variant("sampled", AttentionConfig.sampled()),
        new Variant("certified eps=1e-1", AttentionConfig.certified(1e-1)),
        new Variant("certified eps=1e-2", AttentionConfig.certified(1e-2)),
        new Variant("certified eps=1e-3", AttentionConfig.certified(1e-3)),
        new Variant("budgeted 10%", AttentionConfig.budgetedShare(0.10)),
        new Variant("budgeted 25%", AttentionConfig.budgetedShare(0.25)),
        new Variant("budgeted 50%", AttentionConfig.budgetedShare(0.50)),
        new Variant("certified maxError=1e-2", AttentionConfig.certifiedMaxError(1e-2)),
        new Variant("estimated maxError=1e-2", AttentionConfig.estimated(1e-2)));
  }

  /**
   * Loads the checkpoint and evaluates {@link #defaultVariants()} on every trace: the entry point for a CLI.
   *
   * @param traces stories260K trace files ({@code .safetensors} with {@code token_ids} metadata)
   * @param progress receives one line per (text, configuration) as it finishes; may be null
   * @return per-text rows in trace order, then pooled "all" rows when there is more than one trace
   * @throws IllegalArgumentException for an invalid checkpoint or trace, or ids that do not fit the model
   */
  public static List<Row> run(Path model, List<Path> traces, int tileTokens, int threads, PrintStream progress)
      throws IOException {
    Llama2Checkpoint m = Llama2Checkpoint.load(model);
    List<Row> rows = new ArrayList<>();
    for (Path trace : traces) {
      rows.addAll(evaluate(m, textName(trace), tokenIds(trace), defaultVariants(), tileTokens, threads, progress));
    }
    if (traces.size() > 1) {
      rows.addAll(pooled(rows, defaultVariants()));
    }
    return rows;
  }

  /**
   * Teacher-forced decoding of {@code ids} with exact attention and then each variant (an exact variant is reported from
   * the baseline run: exact decoding is deterministic). Every run uses an f32 cache of the model's context with {@code tileTokens}-key
   * tiles.
   */
  public static List<Row> evaluate(Llama2Checkpoint model, String text, int[] ids, List<Variant> variants,
      int tileTokens, int threads, PrintStream progress) {
    int n = ids.length - 1; // predictions: x_1 .. x_{len-1}
    if (n < 1 || ids.length > model.config().seqLen()) {
      throw new IllegalArgumentException("token ids must number 2 to " + model.config().seqLen() + ": "
          + ids.length + " (" + text + ")");
    }
    List<Row> rows = new ArrayList<>();
    try (Transformer t = new Transformer(model, model.config().seqLen(), DType.F32, AttentionConfig.exact(),
        threads, tileTokens)) {
      int[] exactArgmax = new int[n];
      double exactNll = decode(t, ids, exactArgmax);
      AttentionTotals exactTotals = t.attentionTotals();
      for (Variant variant : variants) {
        boolean exact = variant.config().equals(AttentionConfig.exact()); // the baseline's own config: reuse it
        int[] argmax = exact ? exactArgmax : new int[n];
        t.setAttentionConfig(variant.config());
        double nll = exact ? exactNll : decode(t, ids, argmax);
        AttentionTotals a = exact ? exactTotals : t.attentionTotals();
        int agree = 0;
        for (int i = 0; i < n; i++) {
          agree += argmax[i] == exactArgmax[i] ? 1 : 0;
        }
        Row row = new Row(text, variant.label(), n, (double) agree / n, nll, nll - exactNll,
            (double) a.kvBytesRead() / a.exactKvBytes(), a.bytesFraction(), a.maxErrorBound());
        rows.add(row);
        if (progress != null) {
          progress.println(format(row));
        }
      }
    }
    return rows;
  }

  /** Resets {@code t}, decodes ids teacher-forced, fills argmax per position; returns the mean NLL. */
  static double decode(Transformer t, int[] ids, int[] argmax) {
    t.reset();
    t.resetAttentionTotals();
    double nll = 0;
    for (int pos = 0; pos < ids.length - 1; pos++) {
      float[] logits = t.forward(ids[pos], pos);
      argmax[pos] = argmax(logits);
      nll += nll(logits, ids[pos + 1]);
    }
    return nll / (ids.length - 1);
  }

  static int argmax(float[] x) {
    int best = 0;
    for (int i = 1; i < x.length; i++) {
      if (x[i] > x[best]) {
        best = i;
      }
    }
    return best;
  }

  /** {@code -log softmax(logits)[target]}, log-sum-exp in double. */
  static double nll(float[] logits, int target) {
    double max = Double.NEGATIVE_INFINITY;
    for (float v : logits) {
      max = Math.max(max, v);
    }
    double sum = 0;
    for (float v : logits) {
      sum += Math.exp(v - max);
    }
    return Math.log(sum) + max - logits[target];
  }

  /** Rows over all texts, weighted by predictions, one per variant. */
  static List<Row> pooled(List<Row> rows, List<Variant> variants) {
    List<Row> out = new ArrayList<>();
    for (Variant v : variants) {
      int n = 0;
      double agree = 0, nll = 0, delta = 0, kv = 0, bytes = 0, bound = 0;
      for (Row r : rows) {
        if (r.variant().equals(v.label())) {
          n += r.predictions();
          agree += r.agreement() * r.predictions();
          nll += r.meanNll() * r.predictions();
          delta += r.deltaNll() * r.predictions();
          kv += r.kvFraction() * r.predictions(); // same context lengths per text: a plain mean
          bytes += r.bytesFraction() * r.predictions();
          bound = Math.max(bound, r.maxErrorBound());
        }
      }
      if (n > 0) {
        out.add(new Row("all", v.label(), n, agree / n, nll / n, delta / n, kv / n, bytes / n, bound));
      }
    }
    return out;
  }

  /** The {@code token_ids} metadata of a trace: comma-separated ids. */
  public static int[] tokenIds(Path trace) {
    try (Safetensors st = Safetensors.open(trace)) {
      String ids = st.metadata().get("token_ids");
      if (ids == null || ids.isBlank()) {
        throw new IllegalArgumentException("no token_ids metadata in " + trace);
      }
      String[] parts = ids.split(",");
      int[] out = new int[parts.length];
      for (int i = 0; i < parts.length; i++) {
        try {
          out[i] = Integer.parseInt(parts[i].trim());
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("token_ids[" + i + "] is not an integer: " + parts[i] + " in " + trace);
        }
      }
      return out;
    }
  }

  private static String textName(Path trace) {
    String name = trace.getFileName().toString();
    int dot = name.lastIndexOf('.');
    return dot > 0 ? name.substring(0, dot) : name;
  }

  private static String format(Row r) {
    return String.format(Locale.ROOT, "%s %-20s agreement %.4f  nll %.4f  delta %+.1e  kv %.3f  bytes %.3f"
        + "  bound %.3g", r.text(), r.variant(), r.agreement(), r.meanNll(), r.deltaNll(), r.kvFraction(),
        r.bytesFraction(), r.maxErrorBound());
  }

  /** The rows as a Markdown table (the one in docs/CLAIMS.md). */
  public static String markdown(List<Row> rows) {
    StringBuilder b = new StringBuilder();
    b.append("| text | mode | predictions | agreement with exact | mean NLL (nats) | change vs exact |")
        .append(" K+V read / exact | all bytes read / exact | max error bound |\n")
        .append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (Row r : rows) {
      b.append(String.format(Locale.ROOT, "| %s | %s | %d | %.4f | %.4f | %+.1e | %.3f | %.3f | %.3g |%n",
          r.text(), r.variant(), r.predictions(), r.agreement(), r.meanNll(), r.deltaNll(), r.kvFraction(),
          r.bytesFraction(), r.maxErrorBound()));
    }
    return b.toString();
  }

  /**
   * {@code QualityEval --model FILE --trace FILE [--trace FILE ...] [--tile-tokens 32] [--threads 1]}: progress
   * lines on stderr, the Markdown table on stdout. Exit status 2 on a usage error or invalid input.
   */
  public static void main(String[] args) throws IOException {
    Path model = null;
    List<Path> traces = new ArrayList<>();
    int tileTokens = DEFAULT_TILE_TOKENS, threads = 1;
    try {
      for (int i = 0; i < args.length; i += 2) {
        if (i + 1 >= args.length) {
          throw new IllegalArgumentException("missing value after " + args[i]);
        }
        String value = args[i + 1];
        switch (args[i]) {
          case "--model" -> model = Path.of(value);
          case "--trace" -> traces.add(Path.of(value));
          case "--tile-tokens" -> tileTokens = Integer.parseInt(value);
          case "--threads" -> threads = Integer.parseInt(value);
          default -> throw new IllegalArgumentException("unknown option: " + args[i]);
        }
      }
      if (model == null || traces.isEmpty()) {
        throw new IllegalArgumentException("--model and at least one --trace are required");
      }
      List<Row> rows = run(model, traces, tileTokens, threads, System.err);
      System.out.print(markdown(rows));
    } catch (IllegalArgumentException e) { // NumberFormatException included
      System.err.println("error: " + e.getMessage());
      System.err.println("usage: QualityEval --model FILE --trace FILE [--trace FILE ...] [--tile-tokens N]"
          + " [--threads N]");
      // a process entry point, not library code: its job is the exit status scripts test
      System.exit(2);
    }
  }
}
