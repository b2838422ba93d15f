package hflash.bench;

import hflash.engine.AttentionConfig;
import hflash.engine.BatchReport;
import hflash.engine.BatchedDecode;
import hflash.engine.DecodeAttention;
import hflash.engine.ReferenceAttention;
import hflash.engine.Scheduler;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.memory.PagePool;
import hflash.io.UsageException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * {@code hflash bench --sequences B --shared-prefix P --suffix S}: one sequence of P positions in a
 * {@link PagePool}, forked B times, S private positions appended to each fork (seeded uniform keys
 * and values in [-1, 1)), then one exact decode step of all B sequences as one
 * {@link BatchedDecode} call (the cascade: the prefix pages read once for all B), timed in turn with
 * B separate {@link DecodeAttention} calls on the same sequences (same warm-up and iterations,
 * {@link Stopwatch#timePair}). Each sequence's batched output is checked against the float64
 * reference; the multiply-adds are set against the compute probe at the same thread count, the
 * bytes against the streaming-read probe.
 */
public final class SequencesBench {

  public record Config(int sequences, int sharedPrefix, int suffix, int heads, int kvHeads, int dim, DType dtype,
      int threads, int tileTokens, int pageTokens, long seed, int warmup, int iterations, Scheduler scheduler) {

    /** Split-K for the batched and the separate calls. */
    public Config(int sequences, int sharedPrefix, int suffix, int heads, int kvHeads, int dim, DType dtype,
        int threads, int tileTokens, int pageTokens, long seed, int warmup, int iterations) {
      this(sequences, sharedPrefix, suffix, heads, kvHeads, dim, dtype, threads, tileTokens, pageTokens, seed, warmup,
          iterations, Scheduler.SPLITK);
    }

    public Config {
      java.util.Objects.requireNonNull(scheduler, "scheduler");
      if (scheduler == Scheduler.PIPELINE && threads < 2) {
        throw new UsageException("--scheduler pipeline needs --threads >= 2: " + threads);
      }
      UsageException.positive("--sequences", sequences);
      if (sharedPrefix < 0 || suffix < 0) {
        throw new UsageException("--shared-prefix and --suffix must be >= 0: " + sharedPrefix + ", " + suffix);
      }
      UsageException.positive("--shared-prefix + --suffix", sharedPrefix + suffix);
      UsageException.positive("--heads", heads);
      UsageException.positive("--kv-heads", kvHeads);
      UsageException.positive("--dim", dim);
      if (heads % kvHeads != 0) {
        throw new UsageException("--heads must be a multiple of --kv-heads: " + heads + " % " + kvHeads + " != 0");
      }
      UsageException.positive("--threads", threads);
      UsageException.positive("--iterations", iterations);
      if ((long) sharedPrefix + suffix > Integer.MAX_VALUE / 2) {
        throw new UsageException("--shared-prefix + --suffix too large: " + sharedPrefix + " + " + suffix);
      }
    }

    int length() {
      return sharedPrefix + suffix;
    }
  }

  /** Everything measured; see {@link #toJson}. */
  public record Result(Config config, int pageTokens, Samples batched, Samples separate, long bytesRead,
      long separateBytesRead, long fmas, ComputeProbe.Result compute, double probeGBps, double relError,
      long poolBytes, long separateCacheBytes, int pagesShared, PagePool.Stats stats, List<long[]> perSequence,
      String kernels, double cpuMs, double separateCpuMs) {

    double ratioToCompute() {
      return fmas / (batched.medianMs() * 1e6) / compute.gfmas();
    }

    double speedupVsSeparate() {
      return separate.medianMs() / batched.medianMs();
    }
  }

  private SequencesBench() {}

  public static Result run(Config c, Consumer<String> progress) {
    int n = c.length();
    KvCacheLayout layout;
    int pageTokens;
    try {
      layout = new KvCacheLayout(1, c.kvHeads(), c.dim(), n, c.dtype(), c.tileTokens());
      pageTokens = c.pageTokens() > 0 ? c.pageTokens() : PagePool.defaultPageTokens(c.tileTokens());
    } catch (IllegalArgumentException e) {
      throw new UsageException("cache shape rejected: " + e.getMessage(), e);
    }
    int shared = c.sharedPrefix() / pageTokens; // full prefix pages every fork keeps sharing
    int perFork = (n + pageTokens - 1) / pageTokens - shared; // the partial prefix page is copied per fork
    int pages = shared + 1 + c.sequences() * perFork;
    int row = c.heads() * c.dim();
    float scale = (float) (1.0 / Math.sqrt(c.dim()));
    SplittableRandom random = new SplittableRandom(c.seed());
    float[] q = new float[Math.multiplyExact(c.sequences(), row)];
    for (int i = 0; i < q.length; i++) {
      q[i] = uniform(random);
    }
    float[] out = new float[q.length];
    float[] sepOut = new float[q.length];
    KvCache[] seqs = new KvCache[c.sequences()];
    List<DecodeAttention> separate = new ArrayList<>();
    PagePool pool;
    try {
      pool = PagePool.allocate(layout, pageTokens, pages);
    } catch (IllegalArgumentException e) {
      throw new UsageException("page pool rejected: " + e.getMessage(), e);
    }
    try (pool; BatchedDecode batch = BatchedDecode.create(pool, c.heads(), c.threads(), scale, c.scheduler())) {
      progress.accept("filling a " + c.sharedPrefix() + "-position prefix, " + c.sequences() + " forks of "
          + c.suffix() + " positions each (" + pages + " pages of " + pageTokens + " positions)");
      try (KvCache root = pool.newSequence()) {
        append(root, c.sharedPrefix(), layout, random);
        for (int b = 0; b < seqs.length; b++) {
          seqs[b] = root.fork();
          append(seqs[b], c.suffix(), layout, random);
        }
      } // the prefix lives on in the forks' shared pages
      for (KvCache s : seqs) {
        separate.add(DecodeAttention.create(s, c.heads(), c.threads(), scale, c.scheduler()));
      }
      Runnable batched = () -> batch.decode(0, seqs, q, out, AttentionConfig.exact());
      float[] qRow = new float[row], oRow = new float[row];
      long[] sepBytes = new long[1];
      Runnable apart = () -> {
        long bytes = 0;
        for (int b = 0; b < seqs.length; b++) {
          System.arraycopy(q, b * row, qRow, 0, row);
          separate.get(b).decode(0, qRow, oRow);
          System.arraycopy(oRow, 0, sepOut, b * row, row);
          bytes += separate.get(b).report().kvBytesRead();
        }
        sepBytes[0] = bytes;
      };
      progress.accept("timing the batched step and " + seqs.length + " separate decode calls in turn, "
          + c.iterations() + " iteration(s)");
      Stopwatch stopwatch = new Stopwatch(10_000_000L, 3, c.warmup(), c.iterations());
      Stopwatch.Result[] t = stopwatch.timePair(batched, apart);
      double[] cpu = cpuMsPerCall(batched, apart, c.iterations());
      batched.run();
      BatchReport rep = batch.report();
      List<long[]> perSequence = new ArrayList<>();
      for (int b = 0; b < seqs.length; b++) {
        var r = rep.perSequence(b);
        perSequence.add(new long[] {r.keysScored(), r.tilesRead(), r.kvBytesRead(), r.fmas()});
      }
      progress.accept("checking every sequence against the float64 reference");
      double err = 0;
      for (int b = 0; b < seqs.length; b++) {
        float[] qb = java.util.Arrays.copyOfRange(q, b * row, (b + 1) * row);
        double[] ref = ReferenceAttention.decode(seqs[b], 0, qb, c.heads(), n, scale);
        err = Math.max(err, relError(out, b * row, ref));
      }
      PagePool.Stats stats = pool.stats();
      long separateCache = flatCacheBytes(layout) * c.sequences();
      progress.accept("streaming-read probe and compute probe with " + c.threads() + " thread(s)");
      double probeGBps;
      long probeBytes = StreamProbe.probeBytes(2L * n * c.kvHeads() * c.dtype().rowBytes(c.dim()));
      try (StreamProbe probe = new StreamProbe(probeBytes, c.threads())) {
        probeGBps = probe.bestGBps(8, 300_000_000L);
      }
      ComputeProbe.Result compute = ComputeProbe.measure(c.threads());
      return new Result(c, pageTokens, t[0].samples(), t[1].samples(), rep.kvBytesRead(), sepBytes[0], rep.fmas(),
          compute, probeGBps, err, stats.bytesUsed(), separateCache, rep.pagesShared(), stats, perSequence,
          separate.get(0).kernels().name(), cpu[0], cpu[1]);
    } finally {
      for (DecodeAttention a : separate) {
        a.close();
      }
    }
  }

  /**
   * What {@code KvCache.allocate(layout)} reserves: K and V, the sample store, the tile and block
   * summaries of keys and of values.
   */
  public static long flatCacheBytes(KvCacheLayout l) {
    long heads = (long) l.layers() * l.kvHeads();
    long tiles = l.paddedCapacity() / l.tileTokens();
    long nodes = tiles + tiles / hflash.memory.TileSummaries.BLOCK_TILES;
    long samples = heads * KvCache.SAMPLE_PHASES * KvCache.samplePhaseBlocks(l) * 32 * l.rowBytes();
    return 2 * l.segmentBytes() + samples
        + heads * nodes * (hflash.memory.TileSummaries.recordBytes(l.headDim(), l.dtype())
            + hflash.memory.ValueSummaries.recordBytes(l.headDim()));
  }

  /**
   * Process CPU milliseconds per call of {@code a} and of {@code b}, in alternating rounds: on a
   * machine other sessions load, CPU time moves less than wall time (it still includes this JVM's
   * JIT, GC and spinning workers, which are part of the cost).
   */
  private static double[] cpuMsPerCall(Runnable a, Runnable b, int rounds) {
    var os = java.lang.management.ManagementFactory.getOperatingSystemMXBean();
    if (!(os instanceof com.sun.management.OperatingSystemMXBean sun)) {
      return new double[] {Double.NaN, Double.NaN};
    }
    long ca = 0, cb = 0;
    for (int i = 0; i < rounds; i++) {
      long t0 = sun.getProcessCpuTime();
      a.run();
      long t1 = sun.getProcessCpuTime();
      b.run();
      long t2 = sun.getProcessCpuTime();
      ca += t1 - t0;
      cb += t2 - t1;
    }
    return new double[] {ca / 1e6 / rounds, cb / 1e6 / rounds};
  }

  /** ||out - ref|| / ||ref|| over one sequence's heads. */
  private static double relError(float[] out, int off, double[] ref) {
    double e = 0, r = 0;
    for (int i = 0; i < ref.length; i++) {
      double x = out[off + i] - ref[i];
      e += x * x;
      r += ref[i] * ref[i];
    }
    return Math.sqrt(e / r);
  }

  private static void append(KvCache s, int count, KvCacheLayout l, SplittableRandom random) {
    int row = l.kvHeads() * l.headDim();
    int chunk = 1024;
    float[] k = new float[chunk * row], v = new float[chunk * row];
    for (int p = 0; p < count; p += chunk) {
      int m = Math.min(chunk, count - p);
      for (int i = 0; i < m * row; i++) {
        k[i] = uniform(random);
        v[i] = uniform(random);
      }
      s.append(0, m, m == chunk ? k : java.util.Arrays.copyOf(k, m * row), m == chunk ? v
          : java.util.Arrays.copyOf(v, m * row));
    }
  }

  private static float uniform(SplittableRandom random) {
    return (float) (2 * random.nextDouble() - 1);
  }

  /** The contract fields first (in the order), then the shape and the extras. */
  public static Map<String, Object> toJson(Result r) {
    Config c = r.config();
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("sequences", c.sequences());
    m.put("sharedPrefix", c.sharedPrefix());
    m.put("suffix", c.suffix());
    m.put("dtype", c.dtype().id());
    m.put("threads", c.threads());
    m.put("medianMs", r.batched().medianMs());
    m.put("separateMs", r.separate().medianMs());
    m.put("speedupVsSeparate", r.speedupVsSeparate());
    m.put("bytesRead", r.bytesRead());
    m.put("separateBytesRead", r.separateBytesRead());
    m.put("fmas", r.fmas());
    m.put("computeProbeGFmas", r.compute().gfmas());
    m.put("ratioToCompute", r.ratioToCompute());
    m.put("relError", r.relError());
    m.put("poolBytes", r.poolBytes());
    m.put("separateCacheBytes", r.separateCacheBytes());
    m.put("scheduler", c.scheduler().id());
    m.put("heads", c.heads());
    m.put("kvHeads", c.kvHeads());
    m.put("dim", c.dim());
    m.put("tileTokens", c.tileTokens());
    m.put("pageTokens", r.pageTokens());
    m.put("pagesShared", r.pagesShared());
    m.put("pagesUsed", r.stats().pagesUsed());
    m.put("pagesTotal", r.stats().pagesTotal());
    m.put("p10Ms", r.batched().p10Ms());
    m.put("p90Ms", r.batched().p90Ms());
    m.put("separateP10Ms", r.separate().p10Ms());
    m.put("separateP90Ms", r.separate().p90Ms());
    m.put("probeGBps", r.probeGBps());
    m.put("cpuMs", Format.finite(r.cpuMs()));
    m.put("separateCpuMs", Format.finite(r.separateCpuMs()));
    m.put("computeProbeShape", r.compute().shape());
    m.put("kernels", r.kernels());
    m.put("seed", c.seed());
    List<Map<String, Object>> per = new ArrayList<>();
    for (long[] s : r.perSequence()) {
      Map<String, Object> x = new LinkedHashMap<>();
      x.put("keysScored", s[0]);
      x.put("tilesRead", s[1]);
      x.put("kvBytesRead", s[2]);
      x.put("fmas", s[3]);
      per.add(x);
    }
    m.put("perSequence", per);
    return m;
  }

  public static String table(Result r) {
    Config c = r.config();
    Format.Table t = new Format.Table("path", "median ms", "p10", "p90", "bytes read", "GFMA/s", "vs compute");
    double gf = r.fmas() / (r.batched().medianMs() * 1e6);
    double gs = r.fmas() / (r.separate().medianMs() * 1e6);
    t.row("batched (cascade)", Format.fixed(r.batched().medianMs(), 3), Format.fixed(r.batched().p10Ms(), 3),
        Format.fixed(r.batched().p90Ms(), 3), Format.bytes(r.bytesRead()), Format.fixed(gf, 1),
        Format.fixed(gf / r.compute().gfmas(), 2));
    t.row(c.sequences() + " separate calls", Format.fixed(r.separate().medianMs(), 3),
        Format.fixed(r.separate().p10Ms(), 3), Format.fixed(r.separate().p90Ms(), 3),
        Format.bytes(r.separateBytesRead()), Format.fixed(gs, 1), Format.fixed(gs / r.compute().gfmas(), 2));
    return "batched decode of " + c.sequences() + " sequences: shared prefix " + c.sharedPrefix() + ", suffix "
        + c.suffix() + ", heads=" + c.heads() + " kvHeads=" + c.kvHeads() + " d=" + c.dim() + " " + c.dtype().id()
        + " threads=" + c.threads() + " pages of " + r.pageTokens() + " (" + r.pagesShared() + " shared)\n" + t
        + "speedup vs separate " + Format.fixed(r.speedupVsSeparate(), 2) + "x, compute probe "
        + Format.fixed(r.compute().gfmas(), 1) + " GFMA/s (" + r.compute().shape() + "), read probe "
        + Format.fixed(r.probeGBps(), 2) + " GB/s, relError " + Format.sci(r.relError()) + "\npool "
        + Format.bytes(r.poolBytes()) + " vs " + Format.bytes(r.separateCacheBytes()) + " for " + c.sequences()
        + " separate caches (" + Format.fixed((double) r.poolBytes() / r.separateCacheBytes(), 3) + ")\n";
  }
}
