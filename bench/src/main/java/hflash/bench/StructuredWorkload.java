package hflash.bench;

import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.lang.reflect.RecordComponent;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * A seeded long-context workload for one decode step: keys, values and the decode queries of one
 * layer, with the structure long-context studies report (StreamingLLM's attention sinks and recent
 * window, Quest's and DuoAttention's retrieval heads that read a few far-away spans, and broad heads
 * that spread their mass). {@code docs/WORKLOAD.md} gives the model, the defaults, and how they
 * compare with the real traces.
 *
 * <p><b>Model.</b> Each KV head {@code g} has its own random orthonormal directions in R^dim: a sink
 * direction, a recent direction, one per cluster and {@code r} background directions (the low-rank
 * part); the rest of R^dim is the noise subspace. Key {@code j} is {@code keyScale} times
 *
 * <pre>
 *   sink(j) e_sink + recent(j) e_recent + sum_c cluster_c(j) e_c + sum_i z_i(j) u_i + noise(j)
 *   sink(j)      = max(0.5, 1 - 0.1 j) for j &lt; sinks, else 0
 *   recent(j)    = (j - (n - window) + 1) / window for the last window positions, else 0 (linear ramp)
 *   cluster_c(j) = sin^2(pi (i + 0.5) / clusterLength) * (0.6 + 0.4 U) for the i-th key of cluster c
 *   z(j)         = AR(1) over positions, correlation backgroundCorrelation, unit variance
 *   noise(j)     = an isotropic N(0, 1) vector with the structured directions projected out
 * </pre>
 *
 * Queries are built in logit units: a query with coordinates {@code a} along the structured
 * directions and a noise part of norm {@code noiseStd} (divided by {@code scale * keyScale}) scores
 * key {@code j} as {@code a . coords(j) + N(0, noiseStd^2)}. With {@code L = ln(n)}: streaming heads
 * put {@code L + sinkBoost} on the sinks and {@code L + recentBoost} on the recent direction;
 * retrieval heads {@code L + retrievalSinkBoost} on the sinks and {@code L + clusterBoost} on one or two
 * of the clusters; broad heads {@code L / 2} on the sinks only. Every head adds a background weight
 * vector of logit standard deviation {@code backgroundStd} ({@code broadStd} for broad heads). Logits
 * that grow like {@code ln n} keep the head types' shares of mass roughly independent of n.
 *
 * <p><b>Determinism.</b> Everything is a function of the parameters: every KV head and every query
 * head draws from its own generator split off the seed, so {@link #keys(int)} streams, {@link #fill}
 * and {@link #query(int)} agree whatever order they are called in, and any dtype stores the same
 * floats (rounded by the cache). Values are i.i.d. N(0, 1), scaled by {@code sinkValueScale} on the
 * sinks (sink tokens carry small values in trained models).
 *
 * <p>Thread-safe: immutable after construction; each {@link KeyStream} is single-threaded.
 */
public final class StructuredWorkload implements Workload {

  /** How a KV head's query heads attend; the proportions are parameters. */
  public enum HeadType {
    /** Sinks and the recent window carry almost all the mass (StreamingLLM, DuoAttention). */
    STREAMING,
    /** A few clusters at random depths carry most of the mass (retrieval heads, Quest). */
    RETRIEVAL,
    /** Mass spread over many keys. */
    BROAD;

    /** Lower-case name, as in trace metadata. */
    public String id() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  /** Which structure a key position belongs to (first match in this order). */
  public enum Region {
    SINK,
    RECENT,
    CLUSTER,
    BACKGROUND
  }

  /**
   * The generator's parameters; {@link #of} fills the documented defaults and {@link #with} changes
   * one by name. Every component is stored in trace metadata under its own name.
   *
   * @param context positions n, &gt; 0
   * @param heads query heads, a multiple of kvHeads
   * @param kvHeads KV heads, &gt; 0
   * @param dim head dimension, at least clusters + 3
   * @param seed seed of everything
   * @param queries decode query rows, at positions n - queries .. n - 1, in [1, n]
   * @param sinks attention-sink positions at the start, &ge; 0
   * @param window recent-window positions at the end, &ge; 0
   * @param clusters retrieved clusters per KV head, &ge; 0
   * @param clusterLength positions per cluster, &ge; 1
   * @param backgroundRank rank of the background (reduced to dim - clusters - 3 if larger)
   * @param backgroundCorrelation AR(1) correlation of neighbouring background keys, in [0, 1)
   * @param backgroundStd logit std of the background for streaming and retrieval heads, &ge; 0
   * @param broadStd logit std of the background for broad heads, &ge; 0
   * @param noiseStd logit std of the i.i.d. (full-rank) part of every score, &ge; 0
   * @param sinkBoost streaming heads' sink logit minus ln n
   * @param recentBoost streaming heads' newest-key logit minus ln n
   * @param clusterBoost retrieval heads' cluster-peak logit minus ln n
   * @param retrievalSinkBoost retrieval heads' sink logit minus ln n
   * @param streamingShare share of KV heads that are streaming, in [0, 1]
   * @param retrievalShare share of KV heads that are retrieval (the rest are broad), in [0, 1]
   * @param keyScale key magnitude (scores do not depend on it; it sets the stored range), &gt; 0
   * @param sinkValueScale value magnitude on the sinks relative to the others, &ge; 0
   */
  public record Params(
      int context,
      int heads,
      int kvHeads,
      int dim,
      long seed,
      int queries,
      int sinks,
      int window,
      int clusters,
      int clusterLength,
      int backgroundRank,
      double backgroundCorrelation,
      double backgroundStd,
      double broadStd,
      double noiseStd,
      double sinkBoost,
      double recentBoost,
      double clusterBoost,
      double retrievalSinkBoost,
      double streamingShare,
      double retrievalShare,
      double keyScale,
      double sinkValueScale) {

    /** Validates every component; messages name the parameter and the value. */
    public Params {
      positive("context", context);
      positive("heads", heads);
      positive("kvHeads", kvHeads);
      positive("dim", dim);
      if (heads % kvHeads != 0) {
        throw new IllegalArgumentException(
            "heads must be a multiple of kvHeads: " + heads + " % " + kvHeads + " != 0");
      }
      if (queries < 1 || queries > context) {
        throw new IllegalArgumentException("queries must be in [1, context=" + context + "]: " + queries);
      }
      nonNegative("sinks", sinks);
      nonNegative("window", window);
      nonNegative("clusters", clusters);
      positive("clusterLength", clusterLength);
      nonNegative("backgroundRank", backgroundRank);
      if (dim < clusters + 3) {
        throw new IllegalArgumentException("dim must be at least clusters + 3: " + dim + " < " + (clusters + 3));
      }
      if (!(backgroundCorrelation >= 0 && backgroundCorrelation < 1)) {
        throw new IllegalArgumentException("backgroundCorrelation must be in [0, 1): " + backgroundCorrelation);
      }
      nonNegative("backgroundStd", backgroundStd);
      nonNegative("broadStd", broadStd);
      nonNegative("noiseStd", noiseStd);
      finite("sinkBoost", sinkBoost);
      finite("recentBoost", recentBoost);
      finite("clusterBoost", clusterBoost);
      finite("retrievalSinkBoost", retrievalSinkBoost);
      if (!(streamingShare >= 0 && retrievalShare >= 0 && streamingShare + retrievalShare <= 1 + 1e-9)) {
        throw new IllegalArgumentException("streamingShare and retrievalShare must be >= 0 with a sum <= 1: "
            + streamingShare + " + " + retrievalShare);
      }
      if (!(keyScale > 0) || !Double.isFinite(keyScale)) {
        throw new IllegalArgumentException("keyScale must be positive and finite: " + keyScale);
      }
      nonNegative("sinkValueScale", sinkValueScale);
    }

    /** The documented defaults (docs/WORKLOAD.md) for a shape and seed. */
    public static Params of(int context, int heads, int kvHeads, int dim, long seed) {
      return new Params(context, heads, kvHeads, dim, seed, 4, 4, 64, 4, 32, 16, 0.7, 1.0, 1.5, 0.5,
          3.0, 1.0, 3.0, 0.0, 0.6, 0.3, 4.0, 0.2);
    }

    /** Every component by name, as strings (the metadata form). */
    public Map<String, String> toMap() {
      Map<String, String> m = new LinkedHashMap<>();
      for (RecordComponent c : Params.class.getRecordComponents()) {
        try {
          m.put(c.getName(), String.valueOf(c.getAccessor().invoke(this)));
        } catch (ReflectiveOperationException e) {
          throw new IllegalStateException(e);
        }
      }
      return m;
    }

    /** A copy with component {@code name} parsed from {@code value}. */
    public Params with(String name, String value) {
      Map<String, String> m = toMap();
      if (!m.containsKey(name)) {
        throw new IllegalArgumentException("unknown workload parameter: " + name + " (expected one of "
            + String.join(", ", m.keySet()) + ")");
      }
      m.put(name, value);
      return fromMap(m);
    }

    /** Parses every component from {@code m} (as written by {@link #toMap}); extra keys are ignored. */
    public static Params fromMap(Map<String, String> m) {
      RecordComponent[] cs = Params.class.getRecordComponents();
      Object[] args = new Object[cs.length];
      Class<?>[] types = new Class<?>[cs.length];
      for (int i = 0; i < cs.length; i++) {
        String name = cs[i].getName();
        String s = m.get(name);
        if (s == null) {
          throw new IllegalArgumentException("workload parameter missing: " + name);
        }
        types[i] = cs[i].getType();
        try {
          args[i] = types[i] == int.class ? (Object) Integer.parseInt(s.strip())
              : types[i] == long.class ? (Object) Long.parseLong(s.strip()) : (Object) Double.parseDouble(s.strip());
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("workload parameter " + name + " is not a number: " + s);
        }
      }
      try {
        return Params.class.getDeclaredConstructor(types).newInstance(args);
      } catch (java.lang.reflect.InvocationTargetException e) {
        if (e.getCause() instanceof IllegalArgumentException iae) {
          throw iae;
        }
        throw new IllegalStateException(e.getCause());
      } catch (ReflectiveOperationException e) {
        throw new IllegalStateException(e);
      }
    }

    private static void positive(String name, int v) {
      if (v <= 0) {
        throw new IllegalArgumentException(name + " must be positive: " + v);
      }
    }

    private static void nonNegative(String name, double v) {
      if (!(v >= 0) || !Double.isFinite(v)) {
        throw new IllegalArgumentException(name + " must be >= 0 and finite: " + v);
      }
    }

    private static void finite(String name, double v) {
      if (!Double.isFinite(v)) {
        throw new IllegalArgumentException(name + " must be finite: " + v);
      }
    }
  }

  /** Positions appended per {@link KvCache#append(int, int, float[], float[])} call in {@link #fill}. */
  public static final int FILL_BATCH = 1024;

  private static final int SINK = 0;
  private static final int RECENT = 1;
  private static final int FIRST_CLUSTER = 2;

  private final Params p;
  private final int rank; // effective background rank
  private final int structured; // 2 + clusters + rank directions
  private final float scale; // 1/sqrt(dim) rounded to float, as the traces store it
  private final HeadType[] types; // (kvHeads)
  private final double[][][] dirs; // (kvHeads, structured, dim): orthonormal rows
  private final int[][] clusterStart; // (kvHeads, clusters), ascending
  private volatile float[] lastQuery; // (heads, dim), made on first use of query()

  /** Builds the per-head directions, head types and cluster positions; O(kvHeads * dim^2). */
  public StructuredWorkload(Params params) {
    this.p = java.util.Objects.requireNonNull(params, "params");
    this.rank = Math.max(0, Math.min(p.backgroundRank(), p.dim() - 3 - p.clusters()));
    this.structured = FIRST_CLUSTER + p.clusters() + rank;
    this.scale = (float) (1.0 / Math.sqrt(p.dim()));
    this.types = assignTypes(p);
    this.dirs = new double[p.kvHeads()][][];
    this.clusterStart = new int[p.kvHeads()][];
    for (int g = 0; g < p.kvHeads(); g++) {
      SplittableRandom rng = rng(p.seed(), 1, g, 0);
      dirs[g] = orthonormal(rng, structured, p.dim());
      clusterStart[g] = placeClusters(rng, p);
    }
  }

  /** "structured", the name {@code --workload} takes. */
  @Override
  public String name() {
    return "structured";
  }

  public Params params() {
    return p;
  }

  /** The softmax scale the queries are built for: 1/sqrt(dim) as a float. */
  public float scale() {
    return scale;
  }

  /** Background rank in use: {@code min(backgroundRank, dim - clusters - 3)}, at least 0. */
  public int backgroundRank() {
    return rank;
  }

  public HeadType headType(int kvHead) {
    return types[java.util.Objects.checkIndex(kvHead, types.length)];
  }

  /** Start positions of the clusters of a KV head, ascending; each spans clusterLength positions (clipped to n). */
  public int[] clusterStarts(int kvHead) {
    return clusterStart[java.util.Objects.checkIndex(kvHead, types.length)].clone();
  }

  /** The region of key {@code pos} of {@code kvHead}: sink, recent window, cluster, else background. */
  public Region region(int kvHead, int pos) {
    java.util.Objects.checkIndex(pos, p.context());
    if (pos < p.sinks()) {
      return Region.SINK;
    }
    if (pos >= p.context() - p.window()) {
      return Region.RECENT;
    }
    for (int s : clusterStart[java.util.Objects.checkIndex(kvHead, types.length)]) {
      if (pos >= s && pos < s + p.clusterLength()) {
        return Region.CLUSTER;
      }
    }
    return Region.BACKGROUND;
  }

  /** Position of decode query row {@code row}: {@code context - queries + row}. */
  public int queryPosition(int row) {
    return p.context() - p.queries() + java.util.Objects.checkIndex(row, p.queries());
  }

  /**
   * The decode query at the last position (n - 1, which sees every key): (heads, dim), row-major.
   * The same array every call (as bench's workloads return it): callers must not modify it.
   */
  @Override
  public float[] query() {
    float[] q = lastQuery;
    if (q == null) {
      q = query(p.queries() - 1);
      lastQuery = q;
    }
    return q;
  }

  /** Query row {@code row} (position {@link #queryPosition}) for every head: (heads, dim), row-major, a new array. */
  public float[] query(int row) {
    java.util.Objects.checkIndex(row, p.queries());
    int d = p.dim();
    int group = p.heads() / p.kvHeads();
    double lnN = Math.log(p.context());
    float[] out = new float[p.heads() * d];
    double toQuery = 1.0 / (scale * p.keyScale());
    for (int h = 0; h < p.heads(); h++) {
      int g = h / group;
      double[] a = headLogits(g, h, lnN);
      SplittableRandom rowRng = rng(p.seed(), 3, h, row);
      // the background weights move a little from row to row, as consecutive queries do
      for (int i = 0; i < rank; i++) {
        a[FIRST_CLUSTER + p.clusters() + i] += 0.3 * bgStd(g) * rowRng.nextGaussian() / Math.sqrt(rank);
      }
      double[] q = new double[d];
      for (int m = 0; m < structured; m++) {
        axpy(a[m], dirs[g][m], q);
      }
      double[] u = complementUnit(rowRng, dirs[g], d);
      axpy(p.noiseStd(), u, q);
      for (int c = 0; c < d; c++) {
        out[h * d + c] = (float) (q[c] * toQuery);
      }
    }
    return out;
  }

  /** Logit coordinates of query head h (of KV head g) along the structured directions, before the per-row part. */
  private double[] headLogits(int g, int h, double lnN) {
    SplittableRandom rng = rng(p.seed(), 2, h, 0);
    double[] a = new double[structured];
    switch (types[g]) {
      case STREAMING -> {
        a[SINK] = jitter(rng, lnN + p.sinkBoost());
        a[RECENT] = jitter(rng, lnN + p.recentBoost());
      }
      case RETRIEVAL -> {
        a[SINK] = jitter(rng, lnN + p.retrievalSinkBoost());
        if (p.clusters() > 0) {
          int first = rng.nextInt(p.clusters());
          a[FIRST_CLUSTER + first] = jitter(rng, lnN + p.clusterBoost());
          if (p.clusters() > 1 && rng.nextBoolean()) { // about half the heads read a second cluster
            int second = (first + 1 + rng.nextInt(p.clusters() - 1)) % p.clusters();
            a[FIRST_CLUSTER + second] = jitter(rng, lnN + p.clusterBoost());
          }
        }
      }
      case BROAD -> a[SINK] = jitter(rng, 0.5 * lnN);
    }
    double std = bgStd(g);
    for (int i = 0; i < rank; i++) {
      a[FIRST_CLUSTER + p.clusters() + i] = std * rng.nextGaussian() / Math.sqrt(rank);
    }
    return a;
  }

  private double bgStd(int g) {
    return types[g] == HeadType.BROAD ? p.broadStd() : p.backgroundStd();
  }

  private static double jitter(SplittableRandom rng, double logit) {
    return logit * (1 + 0.05 * rng.nextGaussian());
  }

  /** A fresh stream of the keys and values of {@code kvHead}, from position 0. */
  public KeyStream keys(int kvHead) {
    return new KeyStream(java.util.Objects.checkIndex(kvHead, types.length));
  }

  /**
   * Appends all n positions to {@code layer} of {@code cache}, {@link #FILL_BATCH} at a time,
   * generating each batch as it goes (K and V are never held whole on the heap). Every layer filled
   * gets the same keys and values.
   *
   * @throws IllegalArgumentException if the cache's kvHeads or headDim differ from the workload's
   * @throws IllegalStateException if the layer has no room for n more positions (nothing is appended)
   */
  public void fill(KvCache cache, int layer) {
    fill(cache, layer, s -> { });
  }

  /** {@link #fill(KvCache, int)}, reporting progress every 2^18 positions for long contexts. */
  @Override
  public void fill(KvCache cache, int layer, java.util.function.Consumer<String> progress) {
    KvCacheLayout l = cache.layout();
    if (l.kvHeads() != p.kvHeads() || l.headDim() != p.dim()) {
      throw new IllegalArgumentException("cache shape differs from the workload's (kvHeads, headDim): ("
          + l.kvHeads() + ", " + l.headDim() + ")!=(" + p.kvHeads() + ", " + p.dim() + ")");
    }
    int room = l.capacity() - cache.length(layer);
    if (room < p.context()) {
      throw new IllegalStateException("cache has room for " + room + " positions, workload needs "
          + p.context() + " (layer=" + layer + ")");
    }
    KeyStream[] streams = new KeyStream[p.kvHeads()];
    Arrays.setAll(streams, this::keys);
    int row = p.kvHeads() * p.dim();
    float[] k = new float[FILL_BATCH * row]; // (batch, kvHeads, dim)
    float[] v = new float[FILL_BATCH * row];
    for (int pos = 0; pos < p.context(); pos += FILL_BATCH) {
      int count = Math.min(FILL_BATCH, p.context() - pos);
      if (count < FILL_BATCH) {
        k = new float[count * row];
        v = new float[count * row];
      }
      float[] kb = k;
      float[] vb = v;
      // heads are independent streams: generate them in parallel, the result does not depend on it
      IntStream.range(0, p.kvHeads()).parallel()
          .forEach(g -> streams[g].next(count, kb, g * p.dim(), row, vb, g * p.dim(), row));
      cache.append(layer, count, k, v);
      if ((pos + count) % (1 << 18) == 0 && pos + count < p.context()) {
        progress.accept("structured workload: " + (pos + count) + " of " + p.context() + " positions");
      }
    }
  }

  /**
   * The positions of {@link #fill}, appended a few at a time ({@code bench --decode-steps}: a prefill,
   * then one position per step); at most {@code context} positions in all. Single-threaded.
   */
  @Override
  public Workload.Stream stream() {
    KeyStream[] streams = new KeyStream[p.kvHeads()];
    Arrays.setAll(streams, this::keys);
    int row = p.kvHeads() * p.dim();
    return (cache, layer, count) -> {
      for (int done = 0; done < count; done += FILL_BATCH) {
        int n = Math.min(FILL_BATCH, count - done);
        float[] k = new float[n * row]; // (n, kvHeads, dim)
        float[] v = new float[n * row]; // (n, kvHeads, dim)
        IntStream heads = IntStream.range(0, p.kvHeads());
        // a parallel stream costs more than it saves for a position or two (a decode step)
        (n >= 64 ? heads.parallel() : heads).forEach(g -> streams[g].next(n, k, g * p.dim(), row, v, g * p.dim(), row));
        cache.append(layer, n, k, v);
      }
    };
  }

  /** Sequential generator of one KV head's keys and values; not thread-safe. */
  public final class KeyStream {
    private final int g;
    private final SplittableRandom rng;
    private final double[] z; // (rank) AR(1) background state
    private final double[] eps; // (dim) scratch
    private int pos;

    private KeyStream(int g) {
      this.g = g;
      this.rng = rng(p.seed(), 4, g, 0);
      this.z = new double[rank];
      this.eps = new double[p.dim()];
    }

    /** Next position to be generated. */
    public int position() {
      return pos;
    }

    /**
     * Generates the next {@code count} positions: key t goes to {@code k[kOff + t * kStride ..+dim)},
     * value t to {@code v[vOff + t * vStride ..+dim)}.
     *
     * @throws IllegalStateException if fewer than count positions remain
     */
    public void next(int count, float[] k, int kOff, int kStride, float[] v, int vOff, int vStride) {
      if (count < 0 || count > p.context() - pos) {
        throw new IllegalStateException("count out of range [0, " + (p.context() - pos) + "]: " + count);
      }
      int d = p.dim();
      double rho = p.backgroundCorrelation();
      double innov = Math.sqrt(1 - rho * rho);
      double[][] dir = dirs[g];
      for (int t = 0; t < count; t++, pos++) {
        int j = pos;
        for (int c = 0; c < d; c++) {
          eps[c] = rng.nextGaussian();
        }
        for (int m = 0; m < structured; m++) { // project the noise off the structured directions
          axpy(-dot(dir[m], eps), dir[m], eps);
        }
        if (j < p.sinks()) {
          axpy(Math.max(0.5, 1 - 0.1 * j), dir[SINK], eps);
        }
        int fromEnd = p.context() - 1 - j;
        if (fromEnd < p.window()) {
          axpy((p.window() - fromEnd) / (double) p.window(), dir[RECENT], eps);
        }
        for (int c = 0; c < p.clusters(); c++) {
          int i = j - clusterStart[g][c];
          if (i >= 0 && i < p.clusterLength()) {
            double hann = Math.sin(Math.PI * (i + 0.5) / p.clusterLength());
            axpy(hann * hann * (0.6 + 0.4 * rng.nextDouble()), dir[FIRST_CLUSTER + c], eps);
          }
        }
        for (int i = 0; i < rank; i++) {
          z[i] = j == 0 ? rng.nextGaussian() : rho * z[i] + innov * rng.nextGaussian();
          axpy(z[i], dir[FIRST_CLUSTER + p.clusters() + i], eps);
        }
        int ko = kOff + t * kStride;
        for (int c = 0; c < d; c++) {
          k[ko + c] = (float) (p.keyScale() * eps[c]);
        }
        double vs = j < p.sinks() ? p.sinkValueScale() : 1.0;
        int vo = vOff + t * vStride;
        for (int c = 0; c < d; c++) {
          v[vo + c] = (float) (vs * rng.nextGaussian());
        }
      }
    }
  }

  // ---- construction helpers --------------------------------------------------------------

  /** Head types by largest remainder of the shares, in a seeded random order of KV heads. */
  public static HeadType[] assignTypes(Params p) {
    int n = p.kvHeads();
    double[] want = {p.streamingShare() * n, p.retrievalShare() * n, (1 - p.streamingShare() - p.retrievalShare()) * n};
    int[] count = new int[3];
    int given = 0;
    for (int i = 0; i < 3; i++) {
      count[i] = (int) Math.floor(want[i] + 1e-9);
      given += count[i];
    }
    while (given < n) { // hand out the rest by largest remainder, ties to the earlier type
      int best = 0;
      for (int i = 1; i < 3; i++) {
        if (want[i] - count[i] > want[best] - count[best] + 1e-12) {
          best = i;
        }
      }
      count[best]++;
      given++;
    }
    HeadType[] t = new HeadType[n];
    int at = 0;
    for (int i = 0; i < 3; i++) {
      for (int c = 0; c < count[i]; c++) {
        t[at++] = HeadType.values()[i];
      }
    }
    SplittableRandom rng = rng(p.seed(), 0, 0, 0);
    for (int i = n - 1; i > 0; i--) { // Fisher-Yates
      int j = rng.nextInt(i + 1);
      HeadType x = t[i];
      t[i] = t[j];
      t[j] = x;
    }
    return t;
  }

  /** Cluster starts drawn uniformly between the sinks and the recent window, ascending. */
  private static int[] placeClusters(SplittableRandom rng, Params p) {
    int lo = Math.min(p.sinks(), p.context() - 1);
    int hi = Math.max(lo + 1, p.context() - p.window() - p.clusterLength() + 1);
    int[] s = new int[p.clusters()];
    for (int c = 0; c < s.length; c++) {
      s[c] = rng.nextInt(lo, hi);
    }
    Arrays.sort(s);
    return s;
  }

  /** {@code count} orthonormal rows in R^dim: Gram-Schmidt of Gaussian vectors, done twice for accuracy. */
  private static double[][] orthonormal(SplittableRandom rng, int count, int dim) {
    double[][] b = new double[count][dim];
    for (int m = 0; m < count; m++) {
      double[] x = b[m];
      do {
        for (int c = 0; c < dim; c++) {
          x[c] = rng.nextGaussian();
        }
        for (int pass = 0; pass < 2; pass++) {
          for (int i = 0; i < m; i++) {
            axpy(-dot(b[i], x), b[i], x);
          }
        }
      } while (normalize(x) < 1e-6);
    }
    return b;
  }

  /** A unit vector orthogonal to every row of {@code dirs} (all rows span less than R^dim). */
  private static double[] complementUnit(SplittableRandom rng, double[][] dirs, int dim) {
    double[] x = new double[dim];
    do {
      for (int c = 0; c < dim; c++) {
        x[c] = rng.nextGaussian();
      }
      for (int pass = 0; pass < 2; pass++) {
        for (double[] e : dirs) {
          axpy(-dot(e, x), e, x);
        }
      }
    } while (normalize(x) < 1e-6);
    return x;
  }

  private static double normalize(double[] x) {
    double n = Math.sqrt(dot(x, x));
    if (n > 0) {
      for (int c = 0; c < x.length; c++) {
        x[c] /= n;
      }
    }
    return n;
  }

  private static double dot(double[] a, double[] b) {
    double s = 0;
    for (int c = 0; c < a.length; c++) {
      s += a[c] * b[c];
    }
    return s;
  }

  /** y += alpha * x. */
  private static void axpy(double alpha, double[] x, double[] y) {
    for (int c = 0; c < y.length; c++) {
      y[c] += alpha * x[c];
    }
  }

  /** An independent generator for (purpose, index, sub): SplittableRandom's mixer applied to a seed chain. */
  private static SplittableRandom rng(long seed, int purpose, int index, int sub) {
    long s = new SplittableRandom(seed).nextLong() ^ (0x9E3779B97F4A7C15L * (purpose + 1));
    s = new SplittableRandom(s).nextLong() ^ (0xC2B2AE3D27D4EB4FL * (index + 1L));
    s = new SplittableRandom(s).nextLong() ^ (0x165667B19E3779F9L * (sub + 1L));
    return new SplittableRandom(s);
  }
}
