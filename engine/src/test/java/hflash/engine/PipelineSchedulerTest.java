package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.CancellationException;
import java.util.concurrent.Executors;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The pipeline scheduler returns the serial (one pipeline) or split-K (several) scheduler's bits
 * for every mode, under shaken interleavings; a failure in either unit ends the call with that
 * failure and leaves nothing running; cancellation and timeouts end a call promptly.
 */
class PipelineSchedulerTest {

  /**
   * The Java kernels: the pipeline always runs them (its units split a tile's scores and p.V, which
   * a whole-tile native call cannot), so its bits equal the serial and split-K bits of the Java
   * kernels; with the native kernel loaded, serial and split-K run it instead (NativeEngineTest).
   */
  private static final hflash.tiles.TileKernels JAVA = hflash.tiles.TileKernelsProvider.javaOnly();


  @AfterEach
  void clearHook() {
    Handoff.testDelay = null;
  }

  static Stream<Arguments> configs() {
    return Stream.of(Arguments.of(AttentionConfig.exact()), Arguments.of(AttentionConfig.sampled()),
        Arguments.of(AttentionConfig.certified(1e-3)), Arguments.of(AttentionConfig.budgetedShare(0.2)),
        Arguments.of(AttentionConfig.streaming(4, 300)));
  }

  private static float[] run(KvCache cache, float[] q, int n, int threads, Scheduler scheduler,
      AttentionConfig cfg, long[] counters) {
    try (DecodeAttention att = DecodeAttention.create(cache, 4, threads, 0.125f, JAVA, scheduler)) {
      float[] out = new float[4 * 64];
      att.decode(0, q, out, n, cfg);
      AttentionReport r = att.report();
      counters[0] = r.keysScored();
      counters[1] = r.kvBytesRead();
      counters[2] = r.tilesRead();
      return out;
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("configs")
  void pipelineGivesTheSerialAndSplitKBits(AttentionConfig cfg) {
    for (HierarchicalModesTest.Kind kind : new HierarchicalModesTest.Kind[] {
        HierarchicalModesTest.Kind.RANDOM, HierarchicalModesTest.Kind.CLUSTERED,
        HierarchicalModesTest.Kind.FAR_MAXIMA}) {
      Random r = new Random(kind.ordinal() + 31);
      int n = 3000;
      try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, 64, n, DType.F16, 64))) {
        float[] q = HierarchicalModesTest.fill(cache, kind, n, r);
        long[] a = new long[3], b = new long[3], c = new long[3], e = new long[3];
        float[] serial = run(cache, q, n, 1, Scheduler.SERIAL, cfg, a);
        float[] onePipeline = run(cache, q, n, 2, Scheduler.PIPELINE, cfg, b);
        assertArrayEquals(serial, onePipeline, kind + " " + cfg);
        assertArrayEquals(a, b, kind + " counters " + cfg);
        float[] splitk = run(cache, q, n, 2, Scheduler.SPLITK, cfg, c);
        float[] twoPipelines = run(cache, q, n, 4, Scheduler.PIPELINE, cfg, e);
        assertArrayEquals(splitk, twoPipelines, kind + " two pipelines " + cfg);
        assertArrayEquals(c, e, kind + " counters, two pipelines " + cfg);
      }
    }
  }

  @Test
  void shakenInterleavingsKeepTheBits() {
    Random r = new Random(5);
    int n = 2000;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, 64, n, DType.F32, 64));
        DecodeAttention serial = DecodeAttention.create(cache, 4, 1, 0.125f, JAVA, Scheduler.SERIAL);
        DecodeAttention pipe = DecodeAttention.create(cache, 4, 2, 0.125f, JAVA, Scheduler.PIPELINE)) {
      float[] q = HierarchicalModesTest.fill(cache, HierarchicalModesTest.Kind.CLUSTERED, n, r);
      float[] want = new float[256], got = new float[256];
      Random jitter = new Random(99);
      Handoff.testDelay = () -> {
        int x;
        synchronized (jitter) {
          x = jitter.nextInt(8);
        }
        if (x == 0) {
          Thread.yield();
        } else if (x == 1) {
          java.util.concurrent.locks.LockSupport.parkNanos(20_000);
        }
      };
      for (AttentionConfig cfg : new AttentionConfig[] {AttentionConfig.exact(),
          AttentionConfig.certified(1e-2), AttentionConfig.sampled()}) {
        serial.decode(0, q, want, n, cfg);
        for (int rep = 0; rep < 15; rep++) {
          pipe.decode(0, q, got, n, cfg);
          assertArrayEquals(want, got, cfg + " rep " + rep);
        }
      }
    }
  }

  @Test
  void aFailureInEitherUnitEndsTheCallWithThatFailure() throws Exception {
    Random r = new Random(6);
    int n = 3000;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, 64, n, DType.F32, 64));
        DecodeAttention pipe = DecodeAttention.create(cache, 4, 2, 0.125f, JAVA, Scheduler.PIPELINE)) {
      float[] q = HierarchicalModesTest.fill(cache, HierarchicalModesTest.Kind.RANDOM, n, r);
      float[] want = new float[256], got = new float[256];
      pipe.decode(0, q, want, n, AttentionConfig.exact());
      for (int failAt : new int[] {1, 2, 7, 20}) {
        AtomicInteger calls = new AtomicInteger();
        Handoff.testDelay = () -> {
          if (calls.incrementAndGet() == failAt) {
            throw new IllegalStateException("injected failure " + failAt);
          }
        };
        var e = assertThrows(IllegalStateException.class, () -> pipe.decode(0, q, got, n, AttentionConfig.exact()));
        assertEquals("injected failure " + failAt, e.getMessage());
        Handoff.testDelay = null;
        pipe.decode(0, q, got, n, AttentionConfig.exact()); // nothing left running or blocked
        assertArrayEquals(want, got, "after failure at " + failAt);
        assertEquals(n, cache.length(0), "cache untouched");
      }
    }
  }

  @Test
  void cancelAndTimeoutEndTheCall() throws Exception {
    Random r = new Random(7);
    int n = 4000;
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, 64, n, DType.F32, 64));
        DecodeAttention pipe = DecodeAttention.create(cache, 4, 2, 0.125f, JAVA, Scheduler.PIPELINE)) {
      float[] q = HierarchicalModesTest.fill(cache, HierarchicalModesTest.Kind.RANDOM, n, r);
      float[] want = new float[256], got = new float[256];
      pipe.decode(0, q, want, n, AttentionConfig.exact());
      Handoff.testDelay = () -> java.util.concurrent.locks.LockSupport.parkNanos(2_000_000);
      var timeout = assertThrows(CancellationException.class,
          () -> pipe.decode(0, q, got, n, AttentionConfig.exact(), Duration.ofMillis(20)));
      assertTrue(timeout.getMessage().contains("timed out"), timeout.getMessage());
      ExecutorService other = Executors.newSingleThreadExecutor();
      try {
        Future<?> f = other.submit(() -> pipe.decode(0, q, got, n, AttentionConfig.exact()));
        Thread.sleep(30);
        pipe.cancel();
        var ex = assertThrows(java.util.concurrent.ExecutionException.class, f::get);
        assertTrue(ex.getCause() instanceof CancellationException, ex.getCause().toString());
      } finally {
        other.shutdown();
      }
      Handoff.testDelay = null;
      pipe.decode(0, q, got, n, AttentionConfig.exact());
      assertArrayEquals(want, got, "usable after cancel and timeout");
    }
  }

  @Test
  void pipelineNeedsTwoThreads() {
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 2, 64, 64, DType.F32, 64))) {
      assertEquals("the pipeline scheduler needs at least 2 threads: 1",
          assertThrows(IllegalArgumentException.class,
              () -> DecodeAttention.create(cache, 4, 1, 0.125f, Scheduler.PIPELINE)).getMessage());
      assertThrows(IllegalArgumentException.class, () -> Scheduler.parse("async"));
    }
  }
}
