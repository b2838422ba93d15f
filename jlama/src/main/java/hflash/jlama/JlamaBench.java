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
import hflash.engine.DecodeAttention;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.memory.PagePool;
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
 * minutes at 32768). Then each side generates tokens at positions N, N+1, ... in turn, together
 * with a session of each side at 16 positions (the fixed cost: the rest of the model), one token
 * of each of the four per round after warm-up rounds, so that whatever load the machine has falls
 * on all four alike; the median milliseconds per token of each is reported.
 *
 * <p>User model ({@link #realModel}): both sessions get the prompt's tokens through their own
 * batch forward (stock: Jlama's per-position attention; adapter: the tiled prefill), then the
 * same alternating timing.
 */
public final class JlamaBench {

  /** One row of results; field names are the CLI's JSON contract. */
  public record Result(int context, int threads, String kvDtype, String mode, double stockMsPerToken,
      double hflashMsPerToken, double speedup, double fixedMsPerToken, double hflashFixedMsPerToken,
      int tokens, int tokensAgree, String weights, String fill, String model, double hflashAttendMsPerToken,
      double hflashBlockMsPerToken, double engineMsPerToken, double hflashFixedBlockMsPerToken,
      double enginePagedMsPerToken) {}

  // hflashAttendMsPerToken: median per token of the adapter's append + hflash call (all layers), inside
  // the hflashMsPerToken tokens; hflashBlockMsPerToken: the whole attention block (projections to
  // output projection; hflashFixedBlockMsPerToken: the same at 16 positions); enginePagedMsPerToken: as
  // engineMsPerToken on a page-pool sequence, as the adapter's sessions are; engineMsPerToken: hflash alone (a flat KvCache holding the same rows, its own
  // DecodeAttention, one append + decode per layer), timed in the same rounds; NaN for a user's model

  // the user-model path runs the model's weights as they are on disk

  /** Settings of a run. */
  public record Params(int[] contexts, int threads, String kvDtype, List<AttentionConfig> modes,
      List<String> modeLabels, int tokens, int warmup, String weights, Path workDir, int pageTokens) {

    /** Without a page size: the adapter's default. */
    public Params(int[] contexts, int threads, String kvDtype, List<AttentionConfig> modes,
        List<String> modeLabels, int tokens, int warmup, String weights, Path workDir) {
      this(contexts, threads, kvDtype, modes, modeLabels, tokens, warmup, weights, workDir, 0);
    }

    /** The adapter's options for this run's dtype, threads and page size, mode {@code mode}. */
    HflashJlama.Options options(AttentionConfig mode) {
      HflashJlama.Options o = HflashJlama.Options.defaults().kvDtype(kvDtype).threads(threads).attention(mode);
      return pageTokens > 0 ? o.pageTokens(pageTokens) : o;
    }
  }

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
    int capacity = Math.max(maxContext, FIXED_CONTEXT) + p.warmup() + p.tokens() + 1;
    Path dir = Files.createTempDirectory(p.workDir(), "hflash-jlama-bench");
    try {
      RandomModel spec = w1Model(capacity + 64);
      Path modelDir = weights(spec.write(dir.resolve("model")), p.weights(), dir);
      Path work = Files.createDirectories(dir.resolve("jlama-pages"));
      List<Result> out = new ArrayList<>();
      try (AbstractModel stock = ModelSupport.loadModel(modelDir.toFile(), work.toFile(), DType.F32, DType.I8, Optional.empty(), Optional.empty())) {
        for (int m = 0; m < p.modes().size(); m++) {
          // the pool holds both adapter sessions: the long one and the 16-position one (a page of its own, <= 4096)
          HflashJlama.Options o = p.options(p.modes().get(m)).capacity(capacity).poolCapacity(capacity + 4096);
          try (AbstractModel ours = HflashJlama.loadModel(modelDir, o)) {
            for (int n : p.contexts()) {
              List<Lane> lanes = List.of(filled(stock, false, FIXED_CONTEXT), filled(ours, true, FIXED_CONTEXT),
                  filled(stock, false, n), filled(ours, true, n));
              try (EngineLane engine = new EngineLane(ours, n, p.tokens(), false);
                  EngineLane paged = new EngineLane(ours, n, p.tokens(), true)) {
                alternate(lanes, List.of(engine, paged), p);
                out.add(result(n, p, HflashJlama.options(ours).kvDtype(), p.modeLabels().get(m), lanes,
                    "the same seeded K/V rows written into both caches", "random W1 llama, 1 layer", median(engine.times), median(paged.times)));
              } finally {
                lanes.forEach(Lane::close);
              }
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
        // the pool holds both adapter sessions (the prompt and its 16-token head) at their longest
        int longest = Math.min(stock.getConfig().contextLength, HflashJlama.MAX_DEFAULT_CAPACITY);
        HflashJlama.Options o = p.options(p.modes().get(m)).poolCapacity(longest + 4096);
        try (AbstractModel ours = HflashJlama.loadModel(modelDir, o)) {
          for (int n : p.contexts().length == 0 ? new int[] {tokens.length} : p.contexts()) {
            int[] use = Arrays.copyOf(tokens, Math.min(n, tokens.length));
            int[] fixed = Arrays.copyOf(tokens, Math.min(FIXED_CONTEXT, tokens.length));
            List<Lane> lanes = List.of(prompted(stock, false, fixed), prompted(ours, true, fixed),
                prompted(stock, false, use), prompted(ours, true, use));
            try {
              alternate(lanes, List.of(), p);
            } finally {
              lanes.forEach(Lane::close);
            }
            out.add(result(use.length, p, HflashJlama.options(ours).kvDtype(), p.modeLabels().get(m), lanes,
                "the prompt's tokens through each side's batch forward", modelDir.toString(), Double.NaN, Double.NaN));
          }
        }
      }
    }
    return out;
  }

  private static Result result(int n, Params p, String kvDtype, String mode, List<Lane> l, String fill, String model,
      double engine, double enginePaged) {
    double fixedStock = median(l.get(0).times);
    double fixedOurs = median(l.get(1).times);
    double stock = median(l.get(2).times);
    double ours = median(l.get(3).times);
    int agree = 0;
    for (int i = 0; i < p.tokens(); i++) {
      agree += l.get(2).tokens[i] == l.get(3).tokens[i] ? 1 : 0;
    }
    return new Result(n, p.threads(), kvDtype, mode, stock, ours, stock / ours, fixedStock, fixedOurs, p.tokens(), agree,
        p.weights(), fill, model, median(l.get(3).attend), median(l.get(3).block), engine, median(l.get(1).block),
        enginePaged);
  }

  /** One session being timed: its model, buffer, next token and position, and the times of its tokens. */
  private static final class Lane implements AutoCloseable {
    final AbstractModel model;
    final KvBufferCache.KvBuffer buffer;
    final UUID hflashSession; // null for stock
    int token;
    int position;
    double[] times;
    double[] attend; // the adapter's append + hflash call per token (hflash lanes)
    double[] block; // the adapter's whole attention block per token (hflash lanes)
    int[] tokens;

    Lane(AbstractModel model, KvBufferCache.KvBuffer buffer, UUID hflashSession, int token, int position) {
      this.model = model;
      this.buffer = buffer;
      this.hflashSession = hflashSession;
      this.token = token;
      this.position = position;
    }

    @Override
    public void close() {
      if (hflashSession != null) {
        HflashJlama.release(model, hflashSession);
      } else {
        buffer.close();
      }
    }
  }

  /** A session of {@code m} whose cache holds {@code n} seeded K/V rows per layer (the same rows for either side). */
  private static Lane filled(AbstractModel m, boolean hflash, int n) {
    var c = m.getConfig();
    UUID id = UUID.randomUUID();
    KvBufferCache.KvBuffer buf = hflash ? HflashJlama.kvBuffer(m, id) : new KvBufferCache(m).getKvBuffer(id);
    Session session = hflash ? ((HflashModel) m).hflashSessions().session(buf) : null;
    int kv = c.kvLength;
    try (FloatBufferTensor row = new FloatBufferTensor(1, kv)) {
      int[] next = new int[c.dctx().numberOfLayers]; // stock: the next position of each layer
      fill(kv, n, (layer, rows, k, v) -> {
        if (hflash) {
          session.appendRows(layer, rows, k, v);
        } else {
          for (int r = 0; r < rows; r++) {
            put(row, k, r * kv, kv, buf.getKeyTensorForPosition(layer, next[layer] + r));
            put(row, v, r * kv, kv, buf.getValTensorForPosition(layer, next[layer] + r));
          }
          next[layer] += rows;
        }
      }, c.dctx().numberOfLayers);
    }
    buf.setCurrentContextPosition(n);
    return new Lane(m, buf, hflash ? id : null, 10, n);
  }

  /** A session of {@code m} that ran {@code prompt} through its batch forward. */
  private static Lane prompted(AbstractModel m, boolean hflash, int[] prompt) {
    UUID id = UUID.randomUUID();
    KvBufferCache.KvBuffer buf = hflash ? HflashJlama.kvBuffer(m, id) : new KvBufferCache(m).getKvBuffer(id);
    int next = sample(m, m.batchForward(prompt, 0, buf), true);
    return new Lane(m, buf, hflash ? id : null, next, prompt.length);
  }

  private static void put(FloatBufferTensor row, float[] src, int off, int len, AbstractTensor dst) {
    for (int j = 0; j < len; j++) {
      row.set(src[off + j], 0, j);
    }
    dst.copyFrom(row, row.getOffset(0, 0), dst.getOffset(0, 0), len);
  }

  /**
   * Warm-up tokens, then {@code tokens} tokens of every lane in turn (lane 0, 1, 2, 3, 0, 1, ...):
   * the same load, whatever it is, falls on every lane alike.
   */
  private static void alternate(List<Lane> lanes, List<EngineLane> engines, Params p) {
    for (Lane l : lanes) {
      l.times = new double[p.tokens()];
      l.attend = new double[p.tokens()];
      l.block = new double[p.tokens()];
      l.tokens = new int[p.tokens()];
    }
    for (int i = 0; i < p.warmup() + p.tokens(); i++) {
      for (int li = 0; li < lanes.size(); li++) {
        Lane l = lanes.get(li);
        Session s = l.hflashSession == null ? null : ((HflashModel) l.model).hflashSessions().session(l.buffer);
        long a0 = s == null ? 0 : s.attendNanos;
        long b0 = s == null ? 0 : s.blockNanos;
        long t0 = System.nanoTime();
        AbstractTensor a = l.model.forward(l.token, l.position, l.buffer, Optional.empty());
        long t1 = System.nanoTime();
        l.token = sample(l.model, a, false);
        l.position++;
        if (i >= p.warmup()) {
          l.times[i - p.warmup()] = (t1 - t0) / 1e6;
          l.tokens[i - p.warmup()] = l.token;
          l.attend[i - p.warmup()] = s == null ? Double.NaN : (s.attendNanos - a0) / 1e6;
          l.block[i - p.warmup()] = s == null ? Double.NaN : (s.blockNanos - b0) / 1e6;
        }
        // the hflash-alone lanes run after stock at 16 positions and after the adapter at N, never right
        // after another lane's multi-threaded hflash call, whose worker still spins for a moment after it
        int e = li == 0 ? 0 : li == lanes.size() - 1 ? 1 : -1;
        if (e >= 0 && e < engines.size()) {
          engines.get(e).step(i - p.warmup());
        }
      }
    }
  }

  /**
   * hflash alone, for the same shape and rows: a flat {@code KvCache} (or a page-pool sequence) filled with the rows the
   * adapter's long session got, its own {@code DecodeAttention} (the adapter's threads, scale and
   * mode), and per round one appended row and one decode per layer, as the adapter does for a
   * token. What the adapter's attention costs above this is the adapter's (or the model's
   * surroundings': Jlama's thread pool, caches evicted by the rest of the layer).
   */
  private static final class EngineLane implements AutoCloseable {
    final PagePool pool; // null: a flat cache
    final KvCache cache;
    final DecodeAttention attention;
    final AttentionConfig config;
    final float[] q; // (numHeads, headDim)
    final float[] out; // (numHeads, headDim)
    final float[] k; // (kvHeads, headDim)
    final float[] v;
    final double[] times;
    final int layers;

    EngineLane(AbstractModel ours, int n, int tokens, boolean paged) {
      var c = ours.getConfig();
      HflashJlama.Options o = HflashJlama.options(ours);
      this.layers = c.dctx().numberOfLayers;
      this.config = o.attention;
      KvCacheLayout layout = Session.layout(layers, c.numberOfKeyValueHeads, c.headSize, o);
      this.pool = paged ? Session.pool(layout, o) : null; // the session's pool size: capacity positions
      this.cache = paged ? pool.newSequence() : KvCache.allocate(layout,
          o.kvRotation ? hflash.memory.HadamardRotation.of(c.headSize, hflash.memory.HadamardRotation.DEFAULT_SEED) : null);
      float scale = c.attentionMultiplier != null ? c.attentionMultiplier : (float) (1.0 / StrictMath.sqrt(c.headSize));
      this.attention = DecodeAttention.create(cache, c.numberOfHeads, o.threads, scale);
      fill(c.kvLength, n, (layer, rows, kr, vr) -> cache.append(layer, rows, kr, vr), layers);
      SplittableRandom r = new SplittableRandom(99);
      this.q = new float[c.numberOfHeads * c.headSize];
      this.out = new float[q.length];
      this.k = new float[c.kvLength];
      this.v = new float[c.kvLength];
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) gaussian(r);
      }
      for (int i = 0; i < k.length; i++) {
        k[i] = (float) gaussian(r);
        v[i] = (float) gaussian(r);
      }
      this.times = new double[tokens];
    }

    void step(int timed) {
      long t0 = System.nanoTime();
      for (int layer = 0; layer < layers; layer++) {
        cache.append(layer, k, v);
        attention.decode(layer, q, out, cache.length(layer), config);
      }
      long t1 = System.nanoTime();
      if (timed >= 0) {
        times[timed] = (t1 - t0) / 1e6;
      }
    }

    @Override
    public void close() {
      try {
        attention.close();
      } finally {
        cache.close();
        if (pool != null) {
          pool.close();
        }
      }
    }
  }

  /** Where seeded rows go: {@code rows} K and V rows of {@code layer}, (rows, kvHeads, headDim) each. */
  private interface RowSink {
    void accept(int layer, int rows, float[] k, float[] v);
  }

  /** The same seeded K/V rows for every cache of {@code n} positions (stock pages, adapter, engine alone). */
  private static void fill(int kv, int n, RowSink sink, int layers) {
    int chunk = 1024;
    SplittableRandom rnd = new SplittableRandom(n * 31L + 7);
    for (int layer = 0; layer < layers; layer++) {
      for (int p0 = 0; p0 < n; p0 += chunk) {
        int rows = Math.min(chunk, n - p0);
        float[] k = new float[rows * kv];
        float[] v = new float[rows * kv];
        for (int i = 0; i < k.length; i++) {
          k[i] = (float) gaussian(rnd);
          v[i] = (float) gaussian(rnd);
        }
        sink.accept(layer, rows, k, v);
      }
    }
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
