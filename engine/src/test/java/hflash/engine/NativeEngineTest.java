package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import hflash.memory.DType;
import hflash.memory.HadamardRotation;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.memory.PagePool;
import hflash.tiles.NativeKernels;
import hflash.tiles.TileKernels;
import hflash.tiles.TileKernelsProvider;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The engine with a native decode kernel against the same engine on the Java kernels and float64,
 * in every mode (exact on 1 thread and split-K over 2, windowed exact, sampled, certified,
 * budgeted, estimated), for every dtype, on plain and rotated caches (the engine rotates q before
 * the kernel sees it) and on a paged sequence. Tolerances are float32 rounding: exact within twice
 * the Java engine's error against float64 plus 4 ulps of the output's magnitude; windowed exact and
 * estimated (whose opened tiles the native kernel reads) within {@code 1e-5} of the output's
 * magnitude of the Java engine; certified and budgeted within their own stated bounds; sampled
 * (which runs the Java kernels in both engines) bit-equal.
 */
class NativeEngineTest {

  static Stream<Arguments> cases() {
    List<Arguments> out = new ArrayList<>();
    long seed = 11;
    for (DType dt : DType.values()) {
      for (boolean rotated : new boolean[] {false, true}) {
        out.add(Arguments.of(dt, rotated, seed++));
      }
    }
    return out.stream();
  }

  private static TileKernels nativeKernels() {
    assumeTrue(NativeKernels.variant().isPresent(), "no native variant: " + NativeKernels.status());
    return TileKernelsProvider.withNative(TileKernelsProvider.javaOnly(), NativeKernels.variant().get());
  }

  private static void assertClose(float[] want, float[] got, double rel, String where) {
    double max = 0;
    for (float x : want) {
      max = Math.max(max, Math.abs(x));
    }
    for (int i = 0; i < want.length; i++) {
      assertTrue(Math.abs(want[i] - got[i]) <= rel * max, where + " [" + i + "]: " + want[i] + " vs " + got[i]);
    }
  }

  @ParameterizedTest(name = "{0} rotated={1}")
  @MethodSource("cases")
  void everyModeAgreesWithTheJavaEngineAndFloat64(DType dt, boolean rotated, long seed) {
    TileKernels nat = nativeKernels();
    TileKernels java = TileKernelsProvider.javaOnly();
    Random r = new Random(seed);
    int d = 64, n = 1001, kvHeads = 2, heads = 8;
    KvCacheLayout layout = new KvCacheLayout(1, kvHeads, d, n, dt, 64);
    try (KvCache cache = rotated ? KvCache.allocate(layout, HadamardRotation.of(d, 5)) : KvCache.allocate(layout)) {
      TestData.fill(cache, 0, n, r);
      float[] q = TestData.queryWithScoreMagnitude(heads, d, 8f, r);
      double[] ref = ReferenceAttention.decode(cache, 0, q, heads, n, 1 / Math.sqrt(d));
      float scale = (float) (1 / Math.sqrt(d));
      AttentionConfig[] configs = {AttentionConfig.exact(), AttentionConfig.streaming(4, 300),
          AttentionConfig.certified(1e-3), AttentionConfig.budgetedTiles(6), AttentionConfig.sampled(),
          AttentionConfig.estimated(1e-2)};
      for (int threads = 1; threads <= 2; threads++) {
        try (DecodeAttention a = DecodeAttention.create(cache, heads, threads, scale, nat);
            DecodeAttention j = DecodeAttention.create(cache, heads, threads, scale, java)) {
          for (AttentionConfig cfg : configs) {
            String where = dt + " rotated=" + rotated + " threads=" + threads + " " + cfg;
            float[] outN = new float[heads * d], outJ = new float[heads * d];
            a.decode(0, q, outN, n, cfg);
            AttentionReport rep = a.report();
            j.decode(0, q, outJ, n, cfg);
            switch (cfg.mode()) {
              case EXACT -> {
                if (cfg.windowed()) {
                  assertClose(outJ, outN, 1e-5, where);
                } else {
                  double eJ = TestData.maxAbsError(outJ, ref), eN = TestData.maxAbsError(outN, ref);
                  double tol = 2 * eJ + 4 * 0x1p-24 * TestData.maxAbs(ref);
                  assertTrue(eN <= tol, where + ": native " + eN + " > " + tol + " (java " + eJ + ")");
                }
                assertEquals(j.report().keysScored, rep.keysScored, where);
                assertEquals(j.report().kvBytesRead, rep.kvBytesRead, where);
                assertEquals(j.report().fmas, rep.fmas, where);
                assertEquals(j.report().tilesRead, rep.tilesRead, where);
                float[] again = new float[heads * d];
                a.decode(0, q, again, n, cfg);
                assertArrayEquals(outN, again, where + ": same input, same bits");
              }
              case CERTIFIED, BUDGETED -> {
                for (int h = 0; h < heads; h++) {
                  double err = 0, norm = 0;
                  for (int c = h * d; c < (h + 1) * d; c++) {
                    err += (outN[c] - ref[c]) * (outN[c] - ref[c]);
                    norm += ref[c] * ref[c];
                  }
                  assertTrue(Math.sqrt(err) <= rep.errorBound(h) + 1e-5 * Math.sqrt(norm) + 1e-7,
                      where + " head " + h + ": " + Math.sqrt(err) + " > " + rep.errorBound(h));
                }
              }
              case ESTIMATED -> assertClose(outJ, outN, 1e-5, where);
              default -> assertArrayEquals(outJ, outN, where); // sampled: the Java kernels in both engines
            }
          }
        }
      }
    }
  }

  @Test
  void aPagedSequenceGivesItsFlatCopysBitsAndFloat64() {
    TileKernels nat = nativeKernels();
    int d = 64, kvHeads = 2, heads = 8;
    KvCacheLayout layout = new KvCacheLayout(1, kvHeads, d, 4096, DType.F16, 64);
    Random r = new Random(21);
    try (PagePool pool = PagePool.allocate(layout, 256, 24)) {
      KvCache parent = pool.newSequence();
      TestData.fill(parent, 0, 900, r);
      KvCache seq = parent.fork(); // shares the parent's pages until it writes
      TestData.fill(seq, 0, 611, r);
      TestData.fill(parent, 0, 300, r); // interleaved growth: the two sequences' pages alternate in the pool
      TestData.fill(seq, 0, 290, r);
      parent.close();
      int n = seq.length(0);
      float[] k = new float[n * kvHeads * d], v = new float[k.length];
      for (int p = 0; p < n; p++) {
        for (int h = 0; h < kvHeads; h++) {
          for (int c = 0; c < d; c++) {
            k[(p * kvHeads + h) * d + c] = seq.key(0, h, p, c);
            v[(p * kvHeads + h) * d + c] = seq.value(0, h, p, c);
          }
        }
      }
      float[] q = TestData.queryWithScoreMagnitude(heads, d, 8f, r);
      float scale = (float) (1 / Math.sqrt(d));
      double[] ref = ReferenceAttention.decode(seq, 0, q, heads, n, 1 / Math.sqrt(d));
      try (KvCache flat = KvCache.allocate(new KvCacheLayout(1, kvHeads, d, n, DType.F16, 64))) {
        flat.append(0, n, k, v);
        for (int threads = 1; threads <= 2; threads++) {
          try (DecodeAttention onSeq = DecodeAttention.create(seq, heads, threads, scale, nat);
              DecodeAttention onFlat = DecodeAttention.create(flat, heads, threads, scale, nat);
              DecodeAttention java = DecodeAttention.create(seq, heads, threads, scale,
                  TileKernelsProvider.javaOnly())) {
            float[] a = new float[heads * d], b = new float[heads * d], c = new float[heads * d];
            onSeq.decode(0, q, a, n, AttentionConfig.exact());
            onFlat.decode(0, q, b, n, AttentionConfig.exact());
            java.decode(0, q, c, n, AttentionConfig.exact());
            assertArrayEquals(b, a, "paged vs flat, threads=" + threads);
            double eJ = TestData.maxAbsError(c, ref), eN = TestData.maxAbsError(a, ref);
            assertTrue(eN <= 2 * eJ + 4 * 0x1p-24 * TestData.maxAbs(ref), "native " + eN + " java " + eJ);
          }
        }
      }
      seq.close();
    }
  }

  @Test
  void aClosedCacheFailsWithTheDocumentedExceptionBeforeAnyNativeCall() {
    TileKernels nat = nativeKernels();
    KvCache cache = KvCache.allocate(new KvCacheLayout(1, 1, 32, 100, DType.F16, 32));
    TestData.fill(cache, 0, 100, new Random(1));
    try (DecodeAttention a = DecodeAttention.create(cache, 4, 1, 0.2f, nat)) {
      cache.close();
      IllegalStateException e = assertThrows(IllegalStateException.class,
          () -> a.decode(0, new float[4 * 32], new float[4 * 32], 100, AttentionConfig.exact()));
      assertTrue(e.getMessage().startsWith("KvCache is closed"), e.getMessage());
    }
  }
}
