package hflash.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import hflash.engine.AttentionConfig;
import hflash.engine.AttentionMode;
import hflash.engine.BatchedDecode;
import hflash.engine.DecodeAttention;
import hflash.engine.ReferenceAttention;
import hflash.engine.Scheduler;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.memory.PagePool;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Many threads forking, appending, truncating, decoding (single and batched, every mode and scheduler) and closing
 * sequences of one {@link PagePool}, inside the pool's threading contract (docs/MEMORY.md section 8): each worker
 * appends to, truncates and decodes only sequences it owns (its own new sequences and its forks of anyone's), forks
 * any open sequence (a fork only reads), and now and then closes another worker's sequence under it.
 *
 * <p>Invariants: every decode returns its mode's promise against the float64 reference computed <b>before</b> the
 * call (so a page freed and reused by another thread during the call would show as a wrong result, and a sequence
 * closed during the call must still give the reference's answer: it is pinned), or throws the documented exception
 * (IllegalStateException once a sequence is closed, or "page pool is full", which must leave the sequence exactly
 * as it was); every worker finishes before its deadline (no deadlock); no JVM crash; at the end of every round the
 * pool holds no page and no sequence, and after it closes the JVM's reserved off-heap bytes (the "direct" buffer
 * pool, which counts every arena allocation) are back to exactly what they were before the round.
 *
 * <p>Seeded: {@code -Dhflash.stress.seed=N} replays each worker's operation sequence (interleavings are the OS's);
 * every failure message names the seed.
 */
class PagePoolStressTest {

  private static final long SEED = Long.getLong("hflash.stress.seed", 0x23_2026L);
  private static final int ROUNDS = 3;
  private static final int WORKERS = 4;
  private static final int OPS = 40; // per worker per round
  private static final int LAYERS = 2;
  private static final int KV_HEADS = 2;
  private static final int HEADS = 4;
  private static final int DIM = 64;
  private static final int TILE = 32;
  private static final int PAGE = 512; // a whole sample span: the sampled mode runs on these sequences
  private static final int MAX_LENGTH = 2600;
  /** Small enough that the pool fills (its refusals are exercised) and stays below the huge-page threshold. */
  private static final int PAGES = 10;
  private static final long ROUND_DEADLINE_SECONDS = 40;
  private static final float SCALE = (float) (1 / Math.sqrt(DIM));

  /** What the workers did (checked calls, refusals), so the test fails when the operations stop happening. */
  private static final java.util.concurrent.ConcurrentHashMap<String, java.util.concurrent.atomic.LongAdder> DONE =
      new java.util.concurrent.ConcurrentHashMap<>();

  private static void done(String what) {
    DONE.computeIfAbsent(what, k -> new java.util.concurrent.atomic.LongAdder()).increment();
  }

  private static long count(String what) {
    var a = DONE.get(what);
    return a == null ? 0 : a.sum();
  }

  @Test
  void forksAppendsDecodesAndClosesKeepEveryPromise() throws Exception {
    List<StressFailure> failures = Collections.synchronizedList(new ArrayList<>());
    for (int r = 0; r < ROUNDS; r++) {
      long before = directBytes();
      round(r, failures);
      long after = directBytes();
      if (before != -1) {
        assertEquals(before, after, "seed " + SEED + " round " + r + ": reserved off-heap bytes before and after");
      }
    }
    System.out.println("PagePoolStressTest seed " + SEED + ": " + new java.util.TreeMap<>(DONE));
    for (String op : List.of("decode", "batched exact", "batched other", "fork", "append", "close other's")) {
      assertTrue(count(op) >= 3, "seed " + SEED + ": too few checked " + op + " calls: " + DONE);
    }
    if (!failures.isEmpty()) {
      fail("seed " + SEED + " (-Dhflash.stress.seed=" + SEED + "): " + failures.size() + " failures, first "
          + failures.subList(0, Math.min(8, failures.size())));
    }
  }

  private static void round(int round, List<StressFailure> failures) throws Exception {
    DType dtype = new DType[] {DType.F16, DType.F32, DType.BF16}[round % 3];
    KvCacheLayout layout = new KvCacheLayout(LAYERS, KV_HEADS, DIM, MAX_LENGTH, dtype, TILE);
    PagePool pool = PagePool.allocate(layout, PAGE, PAGES);
    List<KvCache> published = new CopyOnWriteArrayList<>(); // every open sequence: anyone may fork or close it
    List<Worker> workers = new ArrayList<>();
    ExecutorService exec = Executors.newFixedThreadPool(WORKERS);
    try {
      List<Future<?>> futures = new ArrayList<>();
      for (int w = 0; w < WORKERS; w++) {
        Worker worker = new Worker("seed " + SEED + " round " + round + " worker " + w, pool, published, failures,
            new Random(SEED ^ (round * 1_000_003L + w * 7919L)));
        workers.add(worker);
        futures.add(exec.submit(() -> {
          worker.run();
          return null;
        }));
      }
      StressFailure.awaitRound(futures, round, ROUND_DEADLINE_SECONDS, failures);
    } finally {
      exec.shutdownNow();
      assertTrue(exec.awaitTermination(ROUND_DEADLINE_SECONDS, TimeUnit.SECONDS), "seed " + SEED
          + ": workers still running after the round");
      for (Worker w : workers) {
        w.closeAll();
      }
      PagePool.Stats s = pool.stats();
      assertEquals(0, s.sequences(), "seed " + SEED + " round " + round + ": sequences left open " + s);
      assertEquals(0, s.pagesUsed(), "seed " + SEED + " round " + round + ": pages still held " + s);
      assertEquals(PAGES, s.pagesFree(), "seed " + SEED + " round " + round + ": " + s);
      pool.close();
      KvCache late = published.isEmpty() ? null : published.get(0);
      if (late != null) { // use after close is the documented exception
        assertThrows(IllegalStateException.class, () -> late.length(0));
      }
      assertThrows(IllegalStateException.class, pool::newSequence);
    }
  }

  /** One thread: its own sequences, one batched-decode instance, and forks and closes of anyone's. */
  private static final class Worker {
    private final String name;
    private final PagePool pool;
    private final List<KvCache> published;
    private final List<StressFailure> failures;
    private final Random r;
    private final List<KvCache> mine = new ArrayList<>(); // sequences only this worker appends to and decodes
    private BatchedDecode batch;

    Worker(String name, PagePool pool, List<KvCache> published, List<StressFailure> failures, Random r) {
      this.name = name;
      this.pool = pool;
      this.published = published;
      this.failures = failures;
      this.r = r;
    }

    void run() {
      int threads = 1 + r.nextInt(2);
      Scheduler sch = threads == 1 ? Scheduler.SERIAL : Scheduler.values()[r.nextInt(3)];
      batch = BatchedDecode.create(pool, HEADS, threads, SCALE, sch);
      for (int op = 0; op < OPS && !Thread.currentThread().isInterrupted(); op++) {
        mine.removeIf(KvCache::isClosed); // another worker may have closed one
        int kind = r.nextInt(12);
        String what = "op " + op + " kind " + kind;
        KvCache seq = mine.isEmpty() ? null : mine.get(r.nextInt(mine.size()));
        try {
          switch (kind) {
            case 0 -> newSequence();
            case 1, 2 -> fork();
            case 3, 4 -> append(what, seq);
            case 5 -> truncate(seq);
            case 6, 7 -> decode(what, seq);
            case 8, 9 -> batched(what);
            case 10 -> closeMine(seq);
            default -> closeAnyones();
          }
        } catch (CancellationException e) {
          failures.add(new StressFailure(name, what + " was cancelled, though nobody cancels here: " + e));
        } catch (IllegalStateException e) {
          if (!closedOrFull(e)) {
            failures.add(new StressFailure(name, what + " threw " + e + " while nothing it used was closed"));
          }
        } catch (RuntimeException | Error e) {
          failures.add(new StressFailure(name, what + " threw " + e));
        }
      }
    }

    /** An IllegalStateException is documented when a sequence it touched is closed, or the pool is full. */
    private boolean closedOrFull(IllegalStateException e) {
      String m = String.valueOf(e.getMessage());
      if (m.contains("page pool is full")) {
        return true;
      }
      if (m.contains("closed")) {
        return true; // which sequence was closed is checked where it matters (decode results)
      }
      return false;
    }

    private void own(KvCache s) {
      mine.add(s);
      published.add(s);
    }

    private void newSequence() {
      if (mine.size() >= 4) {
        return;
      }
      KvCache s = pool.newSequence();
      own(s);
      append("new", s);
    }

    private void fork() {
      if (mine.size() >= 4 || published.isEmpty()) {
        return;
      }
      KvCache src = published.get(r.nextInt(published.size()));
      own(src.fork()); // src may be appended by its owner meanwhile: the fork sees a whole append or none
      done("fork");
    }

    private float[] rows(int count) {
      float[] x = new float[count * KV_HEADS * DIM];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) r.nextGaussian();
      }
      return x;
    }

    /** Appends the same count to every layer; a full pool must leave the sequence as it was. */
    private void append(String what, KvCache s) {
      if (s == null) {
        return;
      }
      int n = 1 + (r.nextBoolean() ? r.nextInt(8) : r.nextInt(700));
      for (int layer = 0; layer < LAYERS; layer++) {
        int before = s.length(layer);
        int count = Math.min(n, MAX_LENGTH - before);
        if (count <= 0) {
          s.truncate(layer, r.nextInt(before + 1));
          continue;
        }
        try {
          s.append(layer, count, rows(count), rows(count));
          done("append");
        } catch (IllegalStateException e) {
          if (String.valueOf(e.getMessage()).contains("page pool is full")) {
            done("pool full");
          }
          if (String.valueOf(e.getMessage()).contains("page pool is full") && s.length(layer) != before) {
            failures.add(new StressFailure(name, what + ": a refused append changed the length " + before + " -> "
                + s.length(layer)));
          }
          throw e;
        }
      }
    }

    private void truncate(KvCache s) {
      if (s == null) {
        return;
      }
      if (r.nextBoolean()) {
        s.truncate(r.nextInt(s.length(0) + 1));
      } else {
        int layer = r.nextInt(LAYERS);
        s.truncate(layer, r.nextInt(s.length(layer) + 1));
      }
    }

    private static AttentionConfig mode(int which) {
      return switch (which) {
        case 0, 1 -> AttentionConfig.exact();
        case 2 -> AttentionConfig.sampled();
        case 3 -> AttentionConfig.certified(1e-3);
        case 4 -> AttentionConfig.budgetedTiles(3);
        case 5 -> AttentionConfig.estimated(1e-2);
        default -> AttentionConfig.streaming(4, 200);
      };
    }

    private float[] query() {
      float[] q = new float[HEADS * DIM];
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) r.nextGaussian() * 2f;
      }
      return q;
    }

    /** One decode on its own instance (1 or 2 threads, any scheduler), checked against a reference taken first. */
    private void decode(String what, KvCache s) {
      if (s == null || s.length(0) == 0) {
        return;
      }
      int layer = r.nextInt(LAYERS);
      int keys = s.length(layer);
      if (keys == 0) {
        return;
      }
      AttentionConfig config = mode(r.nextInt(7));
      float[] q = query();
      Expected ref = expected(s, layer, q, keys);
      int threads = 1 + r.nextInt(2);
      Scheduler sch = threads == 1 ? Scheduler.SERIAL : Scheduler.values()[r.nextInt(3)];
      try (DecodeAttention a = DecodeAttention.create(s, HEADS, threads, SCALE, sch)) {
        float[] out = new float[HEADS * DIM];
        a.decode(layer, q, out, keys, config);
        double[] bounds = new double[HEADS];
        for (int h = 0; h < HEADS; h++) {
          bounds[h] = a.report().errorBound(h);
        }
        check(what + " decode " + config.mode() + " " + sch.id() + " t=" + threads + " keys " + keys, ref, out, 0,
            config, bounds);
        done("decode");
      }
    }

    /** A batched decode of 1-5 of its own sequences (one may repeat), checked row by row. */
    private void batched(String what) {
      if (mine.isEmpty()) {
        return;
      }
      int layer = r.nextInt(LAYERS);
      int b = 1 + r.nextInt(Math.min(5, mine.size() + 1));
      KvCache[] seqs = new KvCache[b];
      for (int i = 0; i < b; i++) {
        seqs[i] = mine.get(r.nextInt(mine.size()));
      }
      AttentionConfig config = mode(r.nextInt(7));
      float[] q = new float[b * HEADS * DIM];
      Expected[] refs = new Expected[b];
      for (int i = 0; i < b; i++) {
        float[] qi = query();
        System.arraycopy(qi, 0, q, i * HEADS * DIM, qi.length);
        refs[i] = expected(seqs[i], layer, qi, seqs[i].length(layer));
      }
      float[] out = new float[q.length];
      batch.decode(layer, seqs, q, out, config);
      for (int i = 0; i < b; i++) {
        double[] bounds = new double[HEADS];
        for (int h = 0; h < HEADS; h++) {
          bounds[h] = batch.report().perSequence(i).errorBound(h);
        }
        check(what + " batched " + config.mode() + " " + batch.scheduler().id() + " row " + i + " of " + b, refs[i],
            out, i * HEADS * DIM, config, bounds);
      }
      done(config.mode() == AttentionMode.EXACT && !config.windowed() ? "batched exact" : "batched other");
    }

    private void closeMine(KvCache s) {
      if (s == null) {
        return;
      }
      mine.remove(s);
      published.remove(s);
      s.close();
    }

    /** Closes someone's sequence (maybe under its owner's decode: it is pinned, so it must still be right). */
    private void closeAnyones() {
      if (r.nextInt(3) != 0 || published.isEmpty()) {
        return;
      }
      KvCache s = published.get(r.nextInt(published.size()));
      published.remove(s);
      s.close();
      done(mine.remove(s) ? "close mine" : "close other's");
    }

    void closeAll() {
      if (batch != null) {
        batch.close();
      }
      for (KvCache s : mine) {
        s.close();
      }
      mine.clear();
    }

    /** The float64 answer and the values' largest norm, taken before the call. */
    private record Expected(double[] out, double maxValueNorm, int keys) {}

    private static Expected expected(KvCache s, int layer, float[] q, int keys) {
      if (keys == 0) {
        return new Expected(new double[HEADS * DIM], 0, 0);
      }
      double[] ref = ReferenceAttention.decode(s, layer, q, HEADS, keys, 1 / Math.sqrt(DIM));
      double max = 0;
      for (int g = 0; g < KV_HEADS; g++) {
        for (int j = 0; j < keys; j++) {
          double sum = 0;
          for (int c = 0; c < DIM; c++) {
            double v = s.value(layer, g, j, c);
            sum += v * v;
          }
          max = Math.max(max, Math.sqrt(sum));
        }
      }
      return new Expected(ref, max, keys);
    }

    /**
     * The mode's promise per head: float32-exact modes (exact, the cascade, sampled) within a float tolerance of
     * float64, the bounded modes within their reported bound plus that tolerance, every mode inside the values'
     * norm ball (estimated holds its bound with probability C only, a window skips keys on purpose).
     */
    private void check(String what, Expected ref, float[] out, int off, AttentionConfig config, double[] bounds) {
      for (int h = 0; h < HEADS; h++) {
        double err = 0, norm = 0, outNorm = 0;
        for (int c = 0; c < DIM; c++) {
          double o = out[off + h * DIM + c];
          if (!Double.isFinite(o)) {
            failures.add(new StressFailure(name, what + " head " + h + ": non-finite output " + o));
            return;
          }
          double d = o - ref.out()[h * DIM + c];
          err += d * d;
          norm += ref.out()[h * DIM + c] * ref.out()[h * DIM + c];
          outNorm += o * o;
        }
        err = Math.sqrt(err);
        double tol = 1e-4 * (Math.sqrt(norm) + ref.maxValueNorm()) + 1e-6;
        if (Math.sqrt(outNorm) > ref.maxValueNorm() * (1 + 1e-4) + 1e-6) {
          failures.add(new StressFailure(name, what + " head " + h + ": output norm " + Math.sqrt(outNorm)
              + " outside the values' ball " + ref.maxValueNorm()));
        }
        boolean promised = switch (config.mode()) {
          case EXACT -> !config.windowed();
          case SAMPLED, CERTIFIED, BUDGETED -> true;
          default -> false;
        };
        double limit = config.mode() == AttentionMode.EXACT || config.mode() == AttentionMode.SAMPLED
            ? tol : bounds[h] + 4 * tol;
        if (promised && err > limit) {
          failures.add(new StressFailure(name, what + " head " + h + ": error " + err + " > " + limit + " (bound "
              + bounds[h] + ")"));
        }
      }
    }
  }

  /** Bytes the JVM reserved outside the heap for buffers and arenas ("direct" pool; -1 when absent). */
  private static long directBytes() {
    for (BufferPoolMXBean b : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)) {
      if (b.getName().equals("direct")) {
        return b.getMemoryUsed();
      }
    }
    return -1;
  }
}
