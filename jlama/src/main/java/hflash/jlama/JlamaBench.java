package hflash.jlama;

import com.github.tjake.jlama.model.AbstractModel;
import com.github.tjake.jlama.model.ModelSupport;
import com.github.tjake.jlama.safetensors.DType;
import com.github.tjake.jlama.safetensors.SafeTensorSupport;
import com.github.tjake.jlama.safetensors.prompt.PromptContext;
import com.github.tjake.jlama.tensor.AbstractTensor;
import com.github.tjake.jlama.tensor.FloatBufferTensor;
import com.github.tjake.jlama.tensor.KvBufferCache;
import hflash.engine.AttentionConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.stream.Stream;

/**
 * Stock Jlama against the adapter, generated token by generated token, in the same process.
 *
 * <p>Random model ({@link #w1Model}): one layer with the W1 attention shape (hidden 4096, 32
 * heads, 8 KV heads, d = 128), a small MLP and vocabulary. Both sessions are brought to N
 * positions the same way: the same seeded K/V rows (normals, as if already rotated) are written
 * into Jlama's {@code KvBuffer} pages and into the adapter's hflash cache, no forward pass (stock
 * Jlama's prompt path attends position by position, about N^2/2 dot products per head: tens of
 * minutes at 32768). Then each side generates tokens at positions N, N+1, ... in turn (stock, adapter,
 * stock, ...), after warm-up tokens, and the median milliseconds per token of each is reported.
 * The fixed cost (the rest of the model) is the same measurement at 16 positions.
 *
 * <p>User model ({@link #realModel}): both sessions get the prompt's tokens through their own
 * batch forward (stock: Jlama's per-position attention; adapter: the tiled prefill), then the
 * same alternating timing.
 */
public final class JlamaBench {

  /** One row of results; field names are the CLI's JSON contract. */
  public record Result(int context, int threads, String kvDtype, String mode, double stockMsPerToken,
      double hflashMsPerToken, double speedup, double fixedMsPerToken, double hflashFixedMsPerToken,
      int tokens, int tokensAgree, String weights, String fill, String model) {}

  // the user-model path runs the model's weights as they are on disk

  /** Settings of a run. */
  public record Params(int[] contexts, int threads, String kvDtype, List<AttentionConfig> modes,
      List<String> modeLabels, int tokens, int warmup, String weights, Path workDir) {}

  private static final int FIXED_CONTEXT = 16;

  private JlamaBench() {}

  /** The random W1 model (one layer, hidden 4096, 32/8 heads, d 128, MLP 256, vocabulary 320). */
  public static RandomModel w1Model(int contextLength) {
    return new RandomModel("llama", 4096, 32, 8, 1, 256, 320, contextLength, 1f, 0x5eedL);
  }

  /**
   * The model directory with the weights {@code weights} asks for: f32 as written, or q4 made by
   * Jlama's own quantizer ({@code SafeTensorSupport.quantizeModel}, as Jlama's published Q4 models
   * are; embeddings, norms and the output head stay f32). Jlama 0.8.4 cannot run f32 files
   * quantized at load: its q4 path then multiplies I8 inputs with f32 weights and fails.
   */
  static Path weights(Path modelDir, String weights, Path workDir) throws IOException {
    return switch (weights) {
      case "f32" -> modelDir;
      case "q4" -> SafeTensorSupport.quantizeModel(modelDir, DType.Q4, new String[] {"embed_tokens", "norm", "lm_head"},
          null, Optional.of(workDir.resolve(modelDir.getFileName() + "-q4")));
      default -> throw new IllegalArgumentException("weights must be f32 or q4: " + weights);
    };
  }

  /** The random-model comparison, one result per context and mode. */
  public static List<Result> randomModel(Params p) throws IOException {
    int maxContext = Arrays.stream(p.contexts()).max().orElseThrow();
    int capacity = maxContext + p.warmup() + p.tokens() + 1;
    Path dir = Files.createTempDirectory(p.workDir(), "hflash-jlama-bench");
    try {
      RandomModel spec = w1Model(capacity + 64);
      Path modelDir = weights(spec.write(dir.resolve("model")), p.weights(), dir);
      Path work = Files.createDirectories(dir.resolve("jlama-pages"));
      List<Result> out = new ArrayList<>();
      try (AbstractModel stock = ModelSupport.loadModel(modelDir.toFile(), work.toFile(), DType.F32, DType.I8, Optional.empty(), Optional.empty())) {
        for (int m = 0; m < p.modes().size(); m++) {
          HflashJlama.Options o = HflashJlama.Options.defaults().kvDtype(p.kvDtype()).threads(p.threads())
              .capacity(capacity).attention(p.modes().get(m));
          try (AbstractModel ours = HflashJlama.loadModel(modelDir, o)) {
            Timing fixed = filledRun(stock, ours, FIXED_CONTEXT, p);
            for (int n : p.contexts()) {
              Timing t = filledRun(stock, ours, n, p);
              out.add(new Result(n, p.threads(), p.kvDtype(), p.modeLabels().get(m), t.stock, t.hflash, t.stock / t.hflash,
                  fixed.stock, fixed.hflash, p.tokens(), t.agree, p.weights(),
                  "the same seeded K/V rows written into both caches", "random W1 llama, 1 layer"));
            }
          }
        }
      }
      return out;
    } finally {
      deleteTree(dir);
    }
  }

  /** The comparison on a user's model directory, both sessions filled by their own prompt forward. */
  public static List<Result> realModel(Params p, Path modelDir, String prompt) {
    List<Result> out = new ArrayList<>();
    try (AbstractModel stock = ModelSupport.loadModel(modelDir.toFile(), null, DType.F32, DType.I8, Optional.empty(), Optional.empty())) {
      int[] tokens = stock.encodePrompt(PromptContext.of(prompt));
      for (int m = 0; m < p.modes().size(); m++) {
        HflashJlama.Options o = HflashJlama.Options.defaults().kvDtype(p.kvDtype()).threads(p.threads())
            .attention(p.modes().get(m));
        try (AbstractModel ours = HflashJlama.loadModel(modelDir, o)) {
          for (int n : p.contexts().length == 0 ? new int[] {tokens.length} : p.contexts()) {
            int[] use = Arrays.copyOf(tokens, Math.min(n, tokens.length));
            KvBufferCache.KvBuffer s = new KvBufferCache(stock).getKvBuffer(UUID.randomUUID());
            KvBufferCache.KvBuffer h = HflashJlama.kvBuffer(ours, UUID.randomUUID());
            int ts = sample(stock, stock.batchForward(use, 0, s), true);
            int th = sample(ours, ours.batchForward(use, 0, h), true);
            Timing t = alternate(stock, s, ts, ours, h, th, use.length, p);
            out.add(new Result(use.length, p.threads(), HflashJlama.options(ours).kvDtype(), p.modeLabels().get(m), t.stock,
                t.hflash, t.stock / t.hflash, Double.NaN, Double.NaN, p.tokens(), t.agree, p.weights(),
                "the prompt's tokens through each side's batch forward", modelDir.toString()));
          }
        }
      }
    }
    return out;
  }

  private record Timing(double stock, double hflash, int agree) {}

  /** Both sessions filled with the same K/V rows to {@code n} positions, then timed in turn. */
  private static Timing filledRun(AbstractModel stock, AbstractModel ours, int n, Params p) {
    var c = stock.getConfig();
    KvBufferCache.KvBuffer s = new KvBufferCache(stock).getKvBuffer(UUID.randomUUID());
    UUID id = UUID.randomUUID();
    KvBufferCache.KvBuffer h = HflashJlama.kvBuffer(ours, id);
    Session session = ((HflashModel) ours).hflashSessions().session(h);
    int kv = c.kvLength;
    int chunk = 1024;
    SplittableRandom rnd = new SplittableRandom(n * 31L + 7);
    try (FloatBufferTensor row = new FloatBufferTensor(1, kv)) {
      for (int layer = 0; layer < c.dctx().numberOfLayers; layer++) {
        for (int p0 = 0; p0 < n; p0 += chunk) {
          int rows = Math.min(chunk, n - p0);
          float[] k = new float[rows * kv];
          float[] v = new float[rows * kv];
          for (int i = 0; i < k.length; i++) {
            k[i] = (float) gaussian(rnd);
            v[i] = (float) gaussian(rnd);
          }
          for (int r = 0; r < rows; r++) {
            put(row, k, r * kv, kv, s.getKeyTensorForPosition(layer, p0 + r));
            put(row, v, r * kv, kv, s.getValTensorForPosition(layer, p0 + r));
          }
          session.appendRows(layer, rows, k, v);
        }
      }
    }
    s.setCurrentContextPosition(n);
    try {
      return alternate(stock, s, 10, ours, h, 10, n, p);
    } finally {
      s.close();
      HflashJlama.release(ours, id);
    }
  }

  private static void put(FloatBufferTensor row, float[] src, int off, int len, AbstractTensor dst) {
    for (int j = 0; j < len; j++) {
      row.set(src[off + j], 0, j);
    }
    dst.copyFrom(row, row.getOffset(0, 0), dst.getOffset(0, 0), len);
  }

  /** Warm-up tokens, then {@code tokens} tokens of each side in turn; medians in ms. */
  private static Timing alternate(AbstractModel stock, KvBufferCache.KvBuffer s, int firstStock, AbstractModel ours,
      KvBufferCache.KvBuffer h, int firstOurs, int n, Params p) {
    int ts = firstStock;
    int th = firstOurs;
    double[] st = new double[p.tokens()];
    double[] ht = new double[p.tokens()];
    int agree = 0;
    for (int i = 0; i < p.warmup() + p.tokens(); i++) {
      int pos = n + i;
      long t0 = System.nanoTime();
      AbstractTensor a = stock.forward(ts, pos, s, Optional.empty());
      long t1 = System.nanoTime();
      ts = sample(stock, a, false);
      long t2 = System.nanoTime();
      AbstractTensor b = ours.forward(th, pos, h, Optional.empty());
      long t3 = System.nanoTime();
      th = sample(ours, b, false);
      if (i >= p.warmup()) {
        st[i - p.warmup()] = (t1 - t0) / 1e6;
        ht[i - p.warmup()] = (t3 - t2) / 1e6;
        agree += ts == th ? 1 : 0;
      }
    }
    return new Timing(median(st), median(ht), agree);
  }

  private static int sample(AbstractModel m, AbstractTensor out, boolean lastRow) {
    try (AbstractTensor logits = m.makeDenseTensor(m.getConfig().vocabularySize)) {
      AbstractTensor row = lastRow ? out.slice(out.shape().first() - 1) : out;
      return m.sample(row, 0f, 0f, logits);
    } finally {
      out.close();
    }
  }

  private static double median(double[] x) {
    double[] s = x.clone();
    Arrays.sort(s);
    int n = s.length;
    return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  }

  private static double gaussian(SplittableRandom r) {
    double u = 1 - r.nextDouble();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r.nextDouble());
  }

  private static void deleteTree(Path dir) throws IOException {
    try (Stream<Path> w = Files.walk(dir)) {
      for (Path f : w.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(f);
      }
    }
  }

}
