package hflash.cli;

import hflash.engine.AttentionMode;
import hflash.engine.DecodeAttention;
import hflash.engine.ReferenceAttention;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * One decode step over a cache of seeded random keys and values, timed, checked against the float64
 * reference on a sample of heads, and set next to a streaming-read probe with the same thread count.
 * Shared by {@code bench} and the synthetic step of {@code demo}.
 */
final class BenchRunner {

  /** Positions appended per batched {@code append} call while filling the cache. */
  private static final int FILL_BATCH = 1024;
  /** Below this many multiply-adds per group the reference runs on every KV head group. */
  private static final long ALL_GROUPS_WORK = 1L << 26;

  record Config(
      AttentionMode mode,
      String workload,
      int context,
      int heads,
      int kvHeads,
      int dim,
      DType dtype,
      int threads,
      int tileTokens,
      long seed,
      int maxWarmup,
      int iterations) {

    Config {
      UsageException.positive("--context", context);
      UsageException.positive("--heads", heads);
      UsageException.positive("--kv-heads", kvHeads);
      UsageException.positive("--dim", dim);
      UsageException.positive("--threads", threads);
      UsageException.positive("--tile", tileTokens);
      UsageException.positive("--iterations", iterations);
      if (heads % kvHeads != 0) {
        throw new UsageException("--heads must be a multiple of --kv-heads: " + heads + " % " + kvHeads + " != 0");
      }
      if (!workload.equals("random")) {
        throw new UsageException("unknown workload: " + workload + " (expected random)");
      }
      if (mode != AttentionMode.EXACT) {
        throw new UsageException("mode not available in bench yet: " + mode.name().toLowerCase(java.util.Locale.ROOT));
      }
    }

    /** K plus V bytes of the filled cache. */
    long kvBytes() {
      return 2L * context * kvHeads * dim * dtype.bytes();
    }
  }

  record Result(
      Config config,
      Samples samples,
      int warmupIterations,
      long callsPerIteration,
      long bytesRead,
      long keysScored,
      long tilesRead,
      double relError,
      int relErrorHeads,
      long probeBytes,
      double probeGBps,
      double fillSeconds) {

    double effectiveGBps() {
      return bytesRead / (samples.medianMs() * 1e6);
    }

    double ratioToProbe() {
      return effectiveGBps() / probeGBps;
    }
  }

  private BenchRunner() {}

  /** Runs the benchmark; {@code progress} receives short status lines (may be a no-op). */
  static Result run(Config c, Consumer<String> progress) {
    KvCacheLayout layout;
    try {
      layout = new KvCacheLayout(1, c.kvHeads(), c.dim(), c.context(), c.dtype(), c.tileTokens());
    } catch (IllegalArgumentException e) {
      throw new UsageException("cache shape rejected: " + e.getMessage(), e);
    }
    float[] q = new float[c.heads() * c.dim()]; // (heads, dim)
    float[] out = new float[c.heads() * c.dim()]; // (heads, dim)
    SplittableRandom random = new SplittableRandom(c.seed());
    for (int i = 0; i < q.length; i++) {
      q[i] = uniform(random);
    }
    Samples samples;
    Stopwatch.Result timing;
    long bytesRead, keysScored, tilesRead;
    double relError;
    int relErrorHeads;
    double fillSeconds;
    try (KvCache cache = KvCache.allocate(layout)) {
      long t0 = System.nanoTime();
      fill(cache, c, random.split(), progress);
      fillSeconds = (System.nanoTime() - t0) / 1e9;
      try (DecodeAttention attention = DecodeAttention.create(cache, c.heads(), c.threads())) {
        progress.accept("timing decode (" + c.iterations() + " measured iterations after warm-up)");
        timing = new Stopwatch(10_000_000L, 3, c.maxWarmup(), c.iterations()).time(() -> attention.decode(0, q, out));
        samples = timing.samples();
        attention.decode(0, q, out);
        var report = attention.report();
        bytesRead = report.kvBytesRead();
        keysScored = report.keysScored();
        tilesRead = report.tilesRead();
      }
      progress.accept("checking against the float64 reference");
      double[] err = sampledRelError(cache, c, q, out);
      relError = err[0];
      relErrorHeads = (int) err[1];
    }
    long probeBytes = StreamProbe.probeBytes(c.kvBytes());
    progress.accept("streaming-read probe over " + Format.bytes(probeBytes) + " with " + c.threads() + " thread(s)");
    double probeGBps;
    try (StreamProbe probe = new StreamProbe(probeBytes, c.threads())) {
      probeGBps = probe.bestGBps(8, 300_000_000L);
    }
    return new Result(
        c, samples, timing.warmupIterations(), timing.callsPerIteration(), bytesRead, keysScored, tilesRead,
        relError, relErrorHeads, probeBytes, probeGBps, fillSeconds);
  }

  /** Uniform in [-1, 1): scores stay moderate, every dtype represents every value. */
  private static float uniform(SplittableRandom random) {
    return (float) (random.nextDouble() * 2 - 1);
  }

  private static void fill(KvCache cache, Config c, SplittableRandom random, Consumer<String> progress) {
    int row = c.kvHeads() * c.dim();
    int batch = Math.min(FILL_BATCH, c.context());
    float[] k = new float[batch * row]; // (batch, kvHeads, dim)
    float[] v = new float[batch * row]; // (batch, kvHeads, dim)
    int reported = 0;
    for (int pos = 0; pos < c.context(); pos += batch) {
      int count = Math.min(batch, c.context() - pos);
      if (count != batch) {
        k = new float[count * row];
        v = new float[count * row];
      }
      for (int i = 0; i < k.length; i++) {
        k[i] = uniform(random);
        v[i] = uniform(random);
      }
      cache.append(0, count, k, v);
      int percent = (int) (100L * (pos + count) / c.context());
      if (percent >= reported + 25) {
        reported = percent / 25 * 25;
        progress.accept("filled " + (pos + count) + "/" + c.context() + " positions (" + reported + "%)");
      }
    }
  }

  /**
   * Relative L2 error of {@code out} against the float64 reference over the stored (rounded) keys and
   * values, on the query heads of every KV head group when cheap, else of the first and the last group.
   * Returns {max relative error over the sampled groups, number of query heads checked}.
   */
  private static double[] sampledRelError(KvCache cache, Config c, float[] q, float[] out) {
    int g = c.heads() / c.kvHeads();
    long work = (long) g * c.context() * c.dim();
    int[] groups =
        work * c.kvHeads() <= ALL_GROUPS_WORK
            ? java.util.stream.IntStream.range(0, c.kvHeads()).toArray()
            : (c.kvHeads() == 1 ? new int[] {0} : new int[] {0, c.kvHeads() - 1});
    double worst = 0;
    int n = c.context(), d = c.dim();
    float[] k = new float[n * d]; // (1, n, d): the stored keys of one KV head
    float[] v = new float[n * d]; // (1, n, d)
    float[] qg = new float[g * d]; // (g, d): the query heads of that group
    float[] og = new float[g * d]; // (g, d)
    for (int kvHead : groups) {
      for (int pos = 0; pos < n; pos++) {
        for (int ch = 0; ch < d; ch++) {
          k[pos * d + ch] = cache.key(0, kvHead, pos, ch);
          v[pos * d + ch] = cache.value(0, kvHead, pos, ch);
        }
      }
      System.arraycopy(q, kvHead * g * d, qg, 0, g * d);
      System.arraycopy(out, kvHead * g * d, og, 0, g * d);
      double[] ref = ReferenceAttention.decode(qg, k, v, g, 1, d, n, 1.0 / Math.sqrt(d));
      double e = ReferenceAttention.relError(og, ref);
      worst = Double.isNaN(e) ? Double.NaN : Math.max(worst, e);
    }
    return new double[] {worst, groups.length * g};
  }
}
