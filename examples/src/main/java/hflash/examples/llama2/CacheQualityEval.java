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

  private CacheQualityEval() {}

  /** Teacher-forced decoding of ids with an f32 cache, then one cache per dtype; one row per dtype. */
  public static List<QualityEval.Row> evaluate(Llama2Checkpoint model, String text, int[] ids, List<DType> dtypes,
      int tileTokens, int threads, PrintStream progress) {
    int n = ids.length - 1;
    if (n < 1 || ids.length > model.config().seqLen()) {
      throw new IllegalArgumentException("token ids must number 2 to " + model.config().seqLen() + ": "
          + ids.length + " (" + text + ")");
    }
    int[] refArgmax = new int[n];
    double refNll = run(model, DType.F32, ids, refArgmax, tileTokens, threads);
    List<QualityEval.Row> rows = new ArrayList<>();
    int d = model.config().headDim();
    for (DType dt : dtypes) {
      int[] argmax = new int[n];
      double nll = dt == DType.F32 ? refNll : run(model, dt, ids, argmax, tileTokens, threads);
      if (dt == DType.F32) {
        argmax = refArgmax;
      }
      int agree = 0;
      for (int i = 0; i < n; i++) {
        agree += argmax[i] == refArgmax[i] ? 1 : 0;
      }
      double bytes = (double) dt.rowBytes(d) / DType.F32.rowBytes(d);
      QualityEval.Row row = new QualityEval.Row(text, dt.id(), n, (double) agree / n, nll, nll - refNll, bytes,
          bytes, 0);
      rows.add(row);
      if (progress != null) {
        progress.println(String.format(Locale.ROOT, "%s %-6s agreement %.4f  nll %.5f  delta %+.2e", text, dt.id(),
            row.agreement(), nll, row.deltaNll()));
      }
    }
    return rows;
  }

  private static double run(Llama2Checkpoint model, DType dt, int[] ids, int[] argmax, int tileTokens, int threads) {
    try (Transformer t = new Transformer(model, model.config().seqLen(), dt, AttentionConfig.exact(), threads,
        tileTokens)) {
      return QualityEval.decode(t, ids, argmax);
    }
  }

  /**
   * {@code CacheQualityEval --model FILE --trace FILE [--trace FILE ...] [--dtypes f16,q8_0,q4_0]}: the Markdown
   * table of {@link QualityEval#markdown} on stdout, one row per text and dtype (pooled "all" rows for several
   * texts). Exit status 2 on a usage error or invalid input.
   */
  public static void main(String[] args) throws IOException {
    Path model = null;
    List<Path> traces = new ArrayList<>();
    List<DType> dtypes = List.of(DType.F32, DType.F16, DType.BF16, DType.Q8_0, DType.Q4_0);
    try {
      for (int i = 0; i < args.length; i += 2) {
        if (i + 1 >= args.length) {
          throw new IllegalArgumentException("missing value after " + args[i]);
        }
        switch (args[i]) {
          case "--model" -> model = Path.of(args[i + 1]);
          case "--trace" -> traces.add(Path.of(args[i + 1]));
          case "--dtypes" -> dtypes = java.util.Arrays.stream(args[i + 1].split(",")).map(DType::parse).toList();
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
        rows.addAll(evaluate(m, name, QualityEval.tokenIds(trace), dtypes, QualityEval.DEFAULT_TILE_TOKENS, 1,
            System.err));
      }
      if (traces.size() > 1) {
        List<QualityEval.Variant> labels = new ArrayList<>();
        for (DType dt : dtypes) {
          labels.add(new QualityEval.Variant(dt.id(), AttentionConfig.exact()));
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
