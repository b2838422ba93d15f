package hflash.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import hflash.engine.AttentionConfig;
import hflash.engine.AttentionMode;
import hflash.engine.DecodeAttention;
import hflash.engine.ReferenceAttention;
import hflash.engine.Scheduler;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReferenceArray;
import org.junit.jupiter.api.Test;

/**
 * Many threads appending, decoding in every mode, prefilling, truncating, cancelling and closing, across caches and
 * attention instances, inside the threading contract of {@link KvCache} and {@link DecodeAttention}: each worker
 * owns one layer of a shared cache (appends to different layers may run in parallel) and one attention instance;
 * cancel and close come from other threads at any moment.
 *
 * <p>Invariants: every call returns a result within its mode's promise against the float64 reference over the
 * values the cache stores, or throws the documented exception (IllegalStateException once the cache or instance is
 * closed or a layer is full, CancellationException after a cancel or timeout, IllegalArgumentException for a
 * non-finite row, which leaves the cache unchanged); every worker finishes before its deadline (no deadlock); no
 * JVM crash (closing a cache under running kernels must surface as an exception); and the off-heap memory of closed
 * caches is given back (resident set before and after).
 *
 * <p>Seeded: {@code -Dhflash.stress.seed=N} replays the operation sequences of a failing run (thread interleavings
 * are the OS's); every failure message names the seed.
 */
class ConcurrencyStressTest {

  private static final long SEED = Long.getLong("hflash.stress.seed", 0x22_2026L);
  private static final int ROUNDS = 4;
  private static final int CACHES = 2; // per round
  private static final int WORKERS = 3; // per cache: one layer each
  private static final int OPS = 30; // per worker per round
  private static final int KV_HEADS = 2;
  private static final int HEADS = 4;
  private static final int DIM = 64;
  private static final int TILE = 32;
  /** Large enough that each K and V segment (layers * kvHeads * capacity * dim * 4 bytes) is mapped on its own. */
  private static final int CAPACITY = 16384;
  /** Deadline of one round: the whole test stays far below a minute unless something blocks. */
  private static final long ROUND_DEADLINE_SECONDS = 40;

  /**
   * The attention modes a worker picks from, built in one place so that a change of the mode configuration API
   * touches only this method.
   */
  static AttentionConfig mode(int which) {
    return switch (which) {
      case 0 -> AttentionConfig.exact();
      case 1 -> AttentionConfig.sampled();
      case 2 -> AttentionConfig.certified(1e-3);
      case 3 -> AttentionConfig.certifiedMaxError(1e-2);
      case 4 -> AttentionConfig.budgetedTiles(2);
      case 5 -> AttentionConfig.estimated(1e-2);
      default -> AttentionConfig.streaming(4, 64);
    };
  }

  private static final int MODES = 7;

  @Test
  void manyThreadsKeepEveryPromiseAndReleaseMemory() throws Exception {
    List<StressFailure> failures = Collections.synchronizedList(new ArrayList<>());
    round(-1, failures); // warm-up: JIT, worker pools, heap; the memory baseline is taken after it
    System.gc();
    long before = residentBytes();
    long allocated = 0;
    for (int r = 0; r < ROUNDS; r++) {
      allocated += round(r, failures);
    }
    System.gc();
    long after = residentBytes();
    if (!failures.isEmpty()) {
      fail("seed " + SEED + " (-Dhflash.stress.seed=" + SEED + "): " + failures.size() + " failures, first "
          + failures.subList(0, Math.min(8, failures.size())));
    }
    if (before != -1 && after != -1) {
      // a leak of every closed cache would add `allocated`; heap and JIT noise stays well below a quarter of it
      assertTrue(after - before < allocated / 4, "seed " + SEED + ": resident set outside the heap grew by " + (after - before)
          + " bytes over " + ROUNDS + " rounds that allocated and closed " + allocated + " bytes of caches");
    }
  }

  private static KvCacheLayout layout(DType dtype) {
    return new KvCacheLayout(WORKERS, KV_HEADS, DIM, CAPACITY, dtype, TILE);
  }

  /**
   * One round: CACHES caches, WORKERS workers each, some caches closed under their workers.
   *
   * @return the K and V bytes the round's caches reserved
   */
  private static long round(int round, List<StressFailure> failures) throws Exception {
    long reserved = 0;
    Random plan = new Random(SEED * 31 + round);
    List<KvCache> caches = new ArrayList<>();
    AtomicReferenceArray<DecodeAttention> instances = new AtomicReferenceArray<>(CACHES * WORKERS);
    ExecutorService pool = Executors.newFixedThreadPool(CACHES * WORKERS);
    List<Future<?>> futures = new ArrayList<>();
    try {
      for (int c = 0; c < CACHES; c++) {
        DType dtype = plan.nextInt(3) == 0 ? DType.BF16 : DType.F32;
        KvCache cache = KvCache.allocate(layout(dtype));
        caches.add(cache);
        reserved += cache.bytesReserved();
        AtomicBoolean closing = new AtomicBoolean();
        // in about half the rounds one worker of the cache closes it part-way through, under the others
        int closer = plan.nextBoolean() ? plan.nextInt(WORKERS) : -1;
        int closeAt = OPS / 3 + plan.nextInt(OPS / 2);
        for (int w = 0; w < WORKERS; w++) {
          Worker worker = new Worker(round, c, w, cache, closing, instances, failures,
              new Random(SEED ^ (round * 1_000_003L + c * 101L + w)), w == closer ? closeAt : -1);
          futures.add(pool.submit(() -> {
            worker.run();
            return null;
          }));
        }
      }
      StressFailure.awaitRound(futures, round, ROUND_DEADLINE_SECONDS, failures);
    } finally {
      pool.shutdownNow();
      assertTrue(pool.awaitTermination(ROUND_DEADLINE_SECONDS, TimeUnit.SECONDS), "seed " + SEED
          + ": workers still running after the round");
      for (int i = 0; i < instances.length(); i++) {
        if (instances.get(i) != null) {
          instances.get(i).close();
        }
      }
      for (KvCache cache : caches) {
        cache.close();
        // use after close is the documented exception, not a crash
        assertThrows(IllegalStateException.class, () -> cache.length(0));
        assertThrows(IllegalStateException.class, () -> cache.keys().get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0));
      }
    }
    return reserved;
  }

  /** One thread's sequence of operations on its own layer of a shared cache. */
  private static final class Worker {
    private final String name;
    private final KvCache cache;
    private final AtomicBoolean closing; // set just before a worker closes the cache
    private final AtomicReferenceArray<DecodeAttention> instances; // every worker's instance, for cross-thread cancel
    private final int slot;
    private final int layer;
    private final List<StressFailure> failures;
    private final Random r;
    private final int closeAt;
    private DecodeAttention attention;
    private boolean instanceClosed;

    Worker(int round, int c, int w, KvCache cache, AtomicBoolean closing,
        AtomicReferenceArray<DecodeAttention> instances, List<StressFailure> failures, Random r, int closeAt) {
      this.name = "seed " + SEED + " round " + round + " cache " + c + " worker " + w;
      this.cache = cache;
      this.closing = closing;
      this.instances = instances;
      this.slot = c * WORKERS + w;
      this.layer = w;
      this.failures = failures;
      this.r = r;
      this.closeAt = closeAt;
    }

    void run() {
      try {
        newInstance();
      } catch (IllegalStateException e) {
        expectClosed("create", e);
        return;
      }
      for (int op = 0; op < OPS && !Thread.currentThread().isInterrupted(); op++) {
        if (op == closeAt) {
          closing.set(true);
          cache.close();
          continue;
        }
        int kind = r.nextInt(10);
        String what = "op " + op + " kind " + kind;
        try {
          switch (kind) {
            case 0, 1 -> append(1);
            case 2 -> append(1 + r.nextInt(3 * TILE));
            case 3 -> appendNonFinite(what);
            case 4 -> truncate();
            case 5, 6 -> decode(what, null);
            case 7 -> decode(what, Duration.ofNanos(1 + r.nextInt(200_000)));
            case 8 -> prefill(what);
            default -> cancelOrClose();
          }
        } catch (CancellationException e) {
          // the documented end of a cancelled or timed-out call (a subclass of IllegalStateException)
        } catch (IllegalStateException e) {
          expectClosedOrFull(what, e);
        } catch (RuntimeException | Error e) {
          failures.add(new StressFailure(name, what + " threw " + e));
        }
      }
    }

    private void newInstance() {
      int threads = 1 + r.nextInt(2);
      Scheduler scheduler = threads == 1 ? Scheduler.SERIAL : (r.nextBoolean() ? Scheduler.SPLITK : Scheduler.PIPELINE);
      attention = DecodeAttention.create(cache, HEADS, threads, (float) (1 / Math.sqrt(DIM)), scheduler);
      DecodeAttention old = instances.getAndSet(slot, attention);
      if (old != null) {
        old.close();
      }
      instanceClosed = false;
    }

    private float[] rows(int count, float scale) {
      float[] x = new float[count * KV_HEADS * DIM];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) r.nextGaussian() * scale;
      }
      return x;
    }

    private void append(int count) {
      int room = CAPACITY - cache.length(layer);
      if (room <= 0) {
        cache.truncate(layer, r.nextInt(CAPACITY / 2));
        return;
      }
      count = Math.min(count, room);
      cache.append(layer, count, rows(count, 1f), rows(count, 1f));
    }

    private void appendNonFinite(String what) {
      int before = cache.length(layer);
      if (before >= CAPACITY) {
        return;
      }
      float[] k = rows(1, 1f);
      k[r.nextInt(k.length)] = r.nextBoolean() ? Float.NaN : Float.POSITIVE_INFINITY;
      try {
        cache.append(layer, k, rows(1, 1f));
        failures.add(new StressFailure(name, what + ": a non-finite key was accepted"));
      } catch (IllegalArgumentException expected) {
        if (cache.length(layer) != before) {
          failures.add(new StressFailure(name, what + ": a rejected append changed the length"));
        }
      }
    }

    private void truncate() {
      cache.truncate(layer, r.nextInt(cache.length(layer) + 1));
    }

    private float[] query() {
      float[] q = new float[HEADS * DIM];
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) r.nextGaussian() * 2f;
      }
      return q;
    }

    private void decode(String what, Duration timeout) {
      int keys = cache.length(layer);
      int which = r.nextInt(MODES);
      AttentionConfig config = mode(which);
      float[] q = query();
      float[] out = new float[HEADS * DIM];
      if (timeout == null) {
        attention.decode(layer, q, out, keys, config);
      } else {
        attention.decode(layer, q, out, keys, config, timeout);
      }
      check(what + " decode " + config.mode() + (config.windowed() ? " windowed" : "") + " keys " + keys, q, out,
          keys, config, attention.report().maxErrorBound(), errorBounds());
    }

    private double[] errorBounds() {
      double[] b = new double[HEADS];
      for (int h = 0; h < HEADS; h++) {
        b[h] = attention.report().errorBound(h);
      }
      return b;
    }

    private void prefill(String what) {
      int length = cache.length(layer);
      if (length == 0) {
        return;
      }
      int count = 1 + r.nextInt(Math.min(length, 40));
      int first = length - count;
      AttentionConfig config = r.nextBoolean() ? mode(0) : mode(2);
      float[] q = new float[count * HEADS * DIM];
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) r.nextGaussian();
      }
      float[] out = new float[q.length];
      attention.prefill(layer, q, out, first, count, config);
      int row = HEADS * DIM;
      for (int i = 0; i < count; i += Math.max(1, count / 4)) {
        float[] qi = java.util.Arrays.copyOfRange(q, i * row, (i + 1) * row);
        float[] oi = java.util.Arrays.copyOfRange(out, i * row, (i + 1) * row);
        // the per-row bound of a certified prefill is the report's maximum over the rows
        double[] bounds = new double[HEADS];
        java.util.Arrays.fill(bounds, attention.report().maxErrorBound());
        check(what + " prefill " + config.mode() + " row " + i + " of " + count, qi, oi, first + i + 1, config,
            attention.report().maxErrorBound(), bounds);
      }
    }

    /** Cancels a random instance (maybe one running on another thread), or closes and replaces this one. */
    private void cancelOrClose() {
      if (r.nextInt(4) == 0) {
        attention.close();
        instanceClosed = true;
        try {
          attention.decode(layer, query(), new float[HEADS * DIM]);
          failures.add(new StressFailure(name, "a closed DecodeAttention decoded"));
        } catch (IllegalStateException expected) {
          // documented
        }
        newInstance();
        return;
      }
      DecodeAttention other = instances.get(r.nextInt(instances.length()));
      if (other != null) {
        other.cancel();
      }
    }

    /**
     * The mode's promise per head against float64 over the stored values: float32-exact modes within a float
     * tolerance, bounded modes within their reported bound plus that tolerance; every mode's output is a weighted
     * average of the values, so also inside their norm ball.
     */
    private void check(String what, float[] q, float[] out, int keys, AttentionConfig config, double maxBound,
        double[] bounds) {
      double[] ref;
      double maxValueNorm;
      try {
        ref = ReferenceAttention.decode(cache, layer, q, HEADS, keys, 1 / Math.sqrt(DIM));
        maxValueNorm = maxValueNorm(keys);
      } catch (IllegalStateException closedMeanwhile) {
        expectClosed(what + " reference", closedMeanwhile);
        return;
      }
      for (int h = 0; h < HEADS; h++) {
        double err = 0, norm = 0, outNorm = 0;
        for (int c = 0; c < DIM; c++) {
          double o = out[h * DIM + c];
          if (!Double.isFinite(o)) {
            failures.add(new StressFailure(name, what + " head " + h + ": non-finite output " + o));
            return;
          }
          double d = o - ref[h * DIM + c];
          err += d * d;
          norm += ref[h * DIM + c] * ref[h * DIM + c];
          outNorm += o * o;
        }
        err = Math.sqrt(err);
        double tol = 1e-4 * (Math.sqrt(norm) + maxValueNorm) + 1e-6;
        if (Math.sqrt(outNorm) > maxValueNorm * (1 + 1e-4) + 1e-6) {
          failures.add(new StressFailure(name, what + " head " + h + ": output norm " + Math.sqrt(outNorm)
              + " outside the values' ball " + maxValueNorm));
        }
        boolean promised = switch (config.mode()) {
          case EXACT -> !config.windowed(); // a window skips keys on purpose: only the ball applies
          case SAMPLED -> true;
          case CERTIFIED, BUDGETED -> true;
          default -> false; // estimated: the bound holds with probability C per call and head, not always
        };
        double limit = config.mode() == AttentionMode.EXACT || config.mode() == AttentionMode.SAMPLED
            ? tol : bounds[h] + 4 * tol;
        if (promised && err > limit) {
          failures.add(new StressFailure(name, what + " head " + h + ": error " + err + " > " + limit
              + " (bound " + bounds[h] + ", max bound " + maxBound + ")"));
        }
      }
    }

    private double maxValueNorm(int keys) {
      double max = 0;
      for (int g = 0; g < KV_HEADS; g++) {
        for (int j = 0; j < keys; j++) {
          double s = 0;
          for (int c = 0; c < DIM; c++) {
            double v = cache.value(layer, g, j, c);
            s += v * v;
          }
          max = Math.max(max, Math.sqrt(s));
        }
      }
      return max;
    }

    private void expectClosed(String what, IllegalStateException e) {
      if (!closing.get() && !instanceClosed) {
        failures.add(new StressFailure(name, what + " threw " + e + " while nothing was closed"));
      }
    }

    private void expectClosedOrFull(String what, IllegalStateException e) {
      String m = String.valueOf(e.getMessage());
      if (m.contains("capacity") || m.contains("full")) {
        return;
      }
      expectClosed(what, e);
    }
  }

  /**
   * Resident bytes of this process outside the Java heap (Linux; -1 elsewhere): the resident set minus the heap's
   * committed size, so that the heap growing with the test's garbage does not read as a leak of off-heap memory.
   */
  private static long residentBytes() {
    try {
      String[] statm = Files.readString(Path.of("/proc/self/statm")).trim().split("\\s+");
      return Long.parseLong(statm[1]) * 4096
          - ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getCommitted();
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }


  @Test
  void modeHelperCoversEveryMode() {
    java.util.Set<AttentionMode> seen = java.util.EnumSet.noneOf(AttentionMode.class);
    for (int i = 0; i < MODES; i++) {
      seen.add(mode(i).mode());
    }
    assertEquals(java.util.EnumSet.allOf(AttentionMode.class), seen, "the stress test must decode in every mode");
  }
}
