package hflash.examples.llama2;

import hflash.engine.AttentionConfig;
import hflash.memory.DType;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * What the cache dtype does to the model's predictions: teacher-forced decoding of real text with
 * exact attention over a cache of each dtype, compared with an f32 cache (the {@link QualityEval}
 * statistics, with "exact" meaning exact attention over an f32 cache). {@code kvFraction} and
 * {@code bytesFraction} in the rows are the dtype's K+V bytes per position over f32's.
 */
public final class CacheQualityEval {

  /** The rows of docs/CLAIMS.md. */
  public static final String DEFAULT_VARIANTS = "f32,f16,bf16,q8_0,q8_0+hadamard,q4_0,q4_0+hadamard";

  private CacheQualityEval() {}

  /** Teacher-forced decoding of ids with an f32 cache, then one cache per dtype; one row per dtype. */
  public static List<QualityEval.Row> evaluate(Llama2Checkpoint model, String text, int[] ids, List<Variant> variants,
      int tileTokens, int threads, PrintStream progress) {
    int n = ids.length - 1;
    if (n < 1 || ids.length > model.config().seqLen()) {
      throw new IllegalArgumentException("token ids must number 2 to " + model.config().seqLen() + ": "
          + ids.length + " (" + text + ")");
    }
    int[] refArgmax = new int[n];
    double refNll = run(model, new Variant(DType.F32, false), ids, refArgmax, tileTokens, threads);
    List<QualityEval.Row> rows = new ArrayList<>();
    int d = model.config().headDim();
    for (Variant variant : variants) {
      DType dt = variant.dtype();
      boolean reference = dt == DType.F32 && !variant.rotated();
      int[] argmax = reference ? refArgmax : new int[n];
      double nll = reference ? refNll : run(model, variant, ids, argmax, tileTokens, threads);
      int agree = 0;
      for (int i = 0; i < n; i++) {
        agree += argmax[i] == refArgmax[i] ? 1 : 0;
      }
      double bytes = (double) dt.rowBytes(d) / DType.F32.rowBytes(d);
      QualityEval.Row row = new QualityEval.Row(text, variant.label(), n, (double) agree / n, nll, nll - refNll, bytes,
          bytes, 0);
      rows.add(row);
      if (progress != null) {
        progress.println(String.format(Locale.ROOT, "%s %-14s agreement %.4f  nll %.5f  delta %+.2e", text, variant.label(),
            row.agreement(), nll, row.deltaNll()));
      }
    }
    return rows;
  }

  /** A cache dtype, optionally with K/V rotated by the default Hadamard rotation (label "q4_0+hadamard"). */
  public record Variant(DType dtype, boolean rotated) {
    public String label() {
      return dtype.id() + (rotated ? "+hadamard" : "");
    }

    /** "q8_0" or "q4_0+hadamard". */
    public static Variant parse(String s) {
      boolean rot = s.endsWith("+hadamard");
      return new Variant(DType.parse(rot ? s.substring(0, s.length() - "+hadamard".length()) : s), rot);
    }
  }

  private static double run(Llama2Checkpoint model, Variant v, int[] ids, int[] argmax, int tileTokens, int threads) {
    hflash.memory.HadamardRotation rot = v.rotated()
        ? hflash.memory.HadamardRotation.of(model.config().headDim(), hflash.memory.HadamardRotation.DEFAULT_SEED)
        : null;
    try (Transformer t = new Transformer(model, model.config().seqLen(), v.dtype(), AttentionConfig.exact(), threads,
        tileTokens, hflash.engine.Scheduler.SPLITK, rot)) {
      return QualityEval.decode(t, ids, argmax);
    }
  }

  /**
   * {@code CacheQualityEval --model FILE --trace FILE [--trace FILE ...] [--dtypes f16,q8_0,q4_0+hadamard]}: the Markdown
   * table of {@link QualityEval#markdown} on stdout, one row per text and dtype (pooled "all" rows for several
   * texts). Exit status 2 on a usage error or invalid input.
   */
  public static void main(String[] args) throws IOException {
    Path model = null;
    List<Path> traces = new ArrayList<>();
    List<Variant> variants = java.util.Arrays.stream(DEFAULT_VARIANTS.split(",")).map(Variant::parse).toList();
    try {
      for (int i = 0; i < args.length; i += 2) {
        if (i + 1 >= args.length) {
          throw new IllegalArgumentException("missing value after " + args[i]);
        }
        switch (args[i]) {
          case "--model" -> model = Path.of(args[i + 1]);
          case "--trace" -> traces.add(Path.of(args[i + 1]));
          case "--dtypes" -> variants = java.util.Arrays.stream(args[i + 1].split(",")).map(Variant::parse).toList();
          default -> throw new IllegalArgumentException("unknown option: " + args[i]);
        }
      }
      if (model == null || traces.isEmpty()) {
        throw new IllegalArgumentException("--model and at least one --trace are required");
      }
      Llama2Checkpoint m = Llama2Checkpoint.load(model);
      List<QualityEval.Row> rows = new ArrayList<>();
      for (Path trace : traces) {
        String name = trace.getFileName().toString().replaceFirst("\\.[^.]*$", "");
        rows.addAll(evaluate(m, name, QualityEval.tokenIds(trace), variants, QualityEval.DEFAULT_TILE_TOKENS, 1,
            System.err));
      }
      if (traces.size() > 1) {
        List<QualityEval.Variant> labels = new ArrayList<>();
        for (Variant v : variants) {
          labels.add(new QualityEval.Variant(v.label(), AttentionConfig.exact()));
        }
        rows.addAll(QualityEval.pooled(rows, labels));
      }
      System.out.print(QualityEval.markdown(rows));
    } catch (IllegalArgumentException e) {
      System.err.println("error: " + e.getMessage());
      System.err.println("usage: CacheQualityEval --model FILE --trace FILE [--trace FILE ...] [--dtypes LIST]");
      System.exit(2); // a process entry point: its job is the exit status scripts test
    }
  }
}
