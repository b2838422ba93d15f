package hflash.tiles;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import hflash.memory.DType;
import hflash.memory.TileLayout;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The kernels of this JVM (vector at the width the run was started with, or scalar) against the
 * scalar reference, over odd head sizes, partial tiles and group sizes. The surefire executions
 * run this class at 512, 256 and 128 bits and with the scalar provider.
 */
class TileKernelsTest {

  private static final TileKernels UNDER_TEST = TileKernelsProvider.get();
  private static final TileKernels REF = TileKernelsProvider.scalar();

  static Stream<Arguments> shapes() {
    List<Arguments> out = new ArrayList<>();
    int[] dims = {1, 7, 8, 15, 16, 17, 33, 40, 64, 72, 80, 128, 256};
    int[] groups = {1, 2, 3, 4, 5, 8};
    int[] counts = {1, 7, 31, 32, 33, 63, 64};
    long seed = 1;
    for (DType dt : DType.values()) {
      if (dt.quantized()) {
        continue; // block dtypes: QuantTileKernelsTest
      }
      for (int d : dims) {
        for (int g : groups) {
          out.add(Arguments.of(dt, d, g, counts[(int) (seed++ % counts.length)], seed));
        }
      }
      for (int count : counts) {
        out.add(Arguments.of(dt, 128, 4, count, seed++));
      }
    }
    return out.stream();
  }

  /** A tile of T = 64 keys filled with rounded random values; returns (segment, K, V) pair. */
  private static MemorySegment randomTile(Arena arena, DType dt, int d, int tileTokens, Random r) {
    MemorySegment seg = arena.allocate((long) tileTokens * d * dt.bytes(), 64);
    for (long i = 0; i < (long) tileTokens * d; i++) {
      dt.write(seg, i * dt.bytes(), (float) r.nextGaussian());
    }
    return seg;
  }

  @ParameterizedTest(name = "{0} d={1} g={2} count={3}")
  @MethodSource("shapes")
  void scoresAndAccumulateMatchScalar(DType dt, int d, int g, int count, long seed) {
    Random r = new Random(seed);
    int tileTokens = 64;
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment k = randomTile(arena, dt, d, tileTokens, r);
      MemorySegment v = randomTile(arena, dt, d, tileTokens, r);
      float[] q = new float[g * d + 3];
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) r.nextGaussian();
      }
      float[] sRef = new float[g * tileTokens];
      float[] sVec = new float[g * tileTokens];
      REF.scores(q, 3, g, d, k, 0, enc(dt), count, sRef, tileTokens);
      UNDER_TEST.scores(q, 3, g, d, k, 0, enc(dt), count, sVec, tileTokens);
      for (int h = 0; h < g; h++) {
        for (int j = 0; j < count; j++) {
          double tol = 1e-5 * d + 1e-6;
          assertEquals(sRef[h * tileTokens + j], sVec[h * tileTokens + j], tol,
              "score h=" + h + " j=" + j + " seed=" + seed);
        }
      }
      float[] p = new float[g * tileTokens];
      for (int i = 0; i < p.length; i++) {
        p[i] = r.nextFloat();
      }
      float[] aRef = new float[g * d + 5];
      float[] aVec = new float[g * d + 5];
      for (int i = 0; i < aRef.length; i++) {
        aRef[i] = aVec[i] = (float) r.nextGaussian();
      }
      REF.accumulate(p, tileTokens, g, d, v, 0, enc(dt), count, tileTokens, aRef, 5);
      UNDER_TEST.accumulate(p, tileTokens, g, d, v, 0, enc(dt), count, tileTokens, aVec, 5);
      for (int i = 0; i < aRef.length; i++) {
        assertEquals(aRef[i], aVec[i], 1e-5 * count + 1e-6, "acc[" + i + "] seed=" + seed);
      }
    }
  }

  /**
   * Both kernels add the same products in the same order (per key over channels, per channel over
   * keys), so they agree to the bit; this also pins the f16 path that folds the widening's 2^112
   * into q and p, including its fallback when that fold would overflow (|q| or p of 2^16 and more:
   * sampled mode's guard lets weights reach e^20) and subnormal halves.
   */
  @ParameterizedTest(name = "{0}")
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"}) // blocks: QuantTileKernelsTest
  void scoresAndAccumulateGiveTheScalarBits(DType dt) {
    Random r = new Random(7);
    int tileTokens = 64;
    float[] qScales = {1f, 1e-30f, 7e4f};
    float[] pScales = {1f, 1e-20f, 5e8f};
    try (Arena arena = Arena.ofConfined()) {
      for (int d : new int[] {8, 40, 128}) {
        for (int g : new int[] {1, 4, 5}) {
          MemorySegment k = randomTile(arena, dt, d, tileTokens, r);
          MemorySegment v = randomTile(arena, dt, d, tileTokens, r);
          for (int i = 0; i < tileTokens * d; i += 5) { // tiny values: subnormal halves
            dt.write(k, (long) i * dt.bytes(), (float) r.nextGaussian() * 3e-6f);
            dt.write(v, (long) i * dt.bytes(), (float) r.nextGaussian() * 3e-6f);
          }
          for (int variant = 0; variant < qScales.length; variant++) {
            int count = 1 + r.nextInt(tileTokens);
            float[] q = new float[g * d];
            for (int i = 0; i < q.length; i++) {
              q[i] = (float) r.nextGaussian() * qScales[variant];
            }
            float[] sRef = new float[g * tileTokens];
            float[] sVec = new float[g * tileTokens];
            REF.scores(q, 0, g, d, k, 0, enc(dt), count, sRef, tileTokens);
            UNDER_TEST.scores(q, 0, g, d, k, 0, enc(dt), count, sVec, tileTokens);
            for (int h = 0; h < g; h++) {
              for (int j = 0; j < count; j++) {
                int i = h * tileTokens + j;
                assertEquals(Float.floatToIntBits(sRef[i]), Float.floatToIntBits(sVec[i]),
                    dt + " d=" + d + " g=" + g + " q x" + qScales[variant] + ": score " + i);
              }
            }
            float[] p = new float[g * tileTokens];
            for (int i = 0; i < p.length; i++) {
              p[i] = r.nextFloat() * pScales[variant];
            }
            float[] aRef = new float[g * d];
            float[] aVec = new float[g * d];
            REF.accumulate(p, tileTokens, g, d, v, 0, enc(dt), count, tileTokens, aRef, 0);
            UNDER_TEST.accumulate(p, tileTokens, g, d, v, 0, enc(dt), count, tileTokens, aVec, 0);
            for (int i = 0; i < aRef.length; i++) {
              assertEquals(Float.floatToIntBits(aRef[i]), Float.floatToIntBits(aVec[i]),
                  dt + " d=" + d + " g=" + g + " p x" + pScales[variant] + ": acc " + i);
            }
          }
        }
      }
    }
  }

  @Test
  void everyFiniteHalfWidensExactly() {
    int d = 16, tileTokens = 64;
    try (Arena arena = Arena.ofConfined()) {
      for (DType dt : new DType[] {DType.F16, DType.BF16}) {
        MemorySegment k = arena.allocate((long) tileTokens * d * 2, 64);
        float[] s = new float[tileTokens];
        for (int first = 0; first < 65536; first += tileTokens * d) {
          for (int j = 0; j < tileTokens; j++) {
            for (int c = 0; c < d; c++) {
              short bits = (short) (first + j * d + c);
              float x = dt == DType.F16 ? Float.float16ToFloat(bits) : Float.intBitsToFloat(bits << 16);
              if (!Float.isFinite(x)) {
                bits = 0; // the cache never holds Inf/NaN
              }
              k.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED,
                  2L * TileLayout.keyIndex(j, c, d, dt), bits);
            }
          }
          for (int c = 0; c < d; c++) {
            float[] q = new float[d];
            q[c] = 1f; // one-hot: the score is the stored value itself
            UNDER_TEST.scores(q, 0, 1, d, k, 0, enc(dt), tileTokens, s, tileTokens);
            for (int j = 0; j < tileTokens; j++) {
              float want = dt.read(k, 2L * TileLayout.keyIndex(j, c, d, dt));
              assertEquals(Float.floatToIntBits(want == 0f ? 0f : want),
                  Float.floatToIntBits(s[j] == 0f ? 0f : s[j]), dt + " bits " + (first + j * d + c));
            }
          }
        }
      }
    }
  }

  @Test
  void layoutPutsEveryElementOfATileInItsOwnPlace() {
    for (int d : new int[] {1, 7, 33, 80, 128}) {
     for (DType dt : DType.values()) {
       if (dt.quantized()) {
         continue; // block dtypes: QuantTileKernelsTest
       }
      int tileTokens = 64;
      boolean[] k = new boolean[tileTokens * d];
      boolean[] v = new boolean[tileTokens * d];
      for (int j = 0; j < tileTokens; j++) {
        for (int c = 0; c < d; c++) {
          int ki = TileLayout.keyIndex(j, c, d, dt);
          int vi = TileLayout.valueIndex(j, c, d, tileTokens, dt);
          assertEquals(false, k[ki], "K index used twice: j=" + j + " c=" + c + " d=" + d + " " + dt);
          assertEquals(false, v[vi], "V index used twice: j=" + j + " c=" + c + " d=" + d + " " + dt);
          k[ki] = v[vi] = true;
        }
      }
     }
    }
  }

  @Test
  void softmaxPartsMatchScalar() {
    Random r = new Random(7);
    for (int n : new int[] {0, 1, 3, 15, 16, 17, 64, 100, 1021}) {
      float[] a = new float[n + 2];
      for (int i = 0; i < a.length; i++) {
        a[i] = (float) (r.nextGaussian() * 20);
      }
      float[] b = a.clone();
      assertEquals(REF.max(a, 2, n), UNDER_TEST.max(b, 2, n), "max n=" + n);
      float m = n == 0 ? 0f : REF.max(a, 2, n);
      float sa = REF.expSum(a, 2, n, m);
      float sb = UNDER_TEST.expSum(b, 2, n, m);
      assertEquals(sa, sb, 1e-5 * Math.max(1, sa), "expSum n=" + n);
      for (int i = 0; i < a.length; i++) {
        assertEquals(a[i], b[i], 2e-6 * Math.max(1, Math.abs(a[i])), "exp[" + i + "] n=" + n);
      }
      REF.scale(a, 1, n, 0.37f);
      UNDER_TEST.scale(b, 1, n, 0.37f);
      for (int i = 0; i < a.length; i++) {
        assertEquals(a[i], b[i], 2e-6 * Math.max(1, Math.abs(a[i])), "scale n=" + n);
      }
    }
  }

  @Test
  void boundKernelsMatchScalar() {
    Random r = new Random(21);
    try (Arena arena = Arena.ofConfined()) {
      for (int d : new int[] {1, 7, 8, 15, 16, 17, 64, 80, 128}) {
        float[] q = new float[d + 1];
        for (int i = 0; i < q.length; i++) {
          q[i] = (float) r.nextGaussian();
        }
        for (DType dt : DType.values()) { // lo, hi in the cache dtype, then the f32 centroid
          if (dt.quantized()) {
            continue; // block dtypes: QuantTileKernelsTest
          }
          MemorySegment rec = arena.allocate(4 + 2L * d * dt.bytes() + 4L * d + 12, 64);
          for (int i = 0; i < 2 * d; i++) {
            dt.write(rec, 4 + (long) i * dt.bytes(), (float) r.nextGaussian());
          }
          for (int i = 0; i < d + 3; i++) {
            DType.F32.write(rec, 4 + 2L * d * dt.bytes() + 4L * i, (float) r.nextGaussian());
          }
          float[] a = new float[4], b = new float[4];
          long ball = 4 + 2L * d * dt.bytes(); // box then ball, as one node's records could lie
          REF.nodeBounds(q, 1, d, rec, 4, ball, enc(dt), a, 1);
          UNDER_TEST.nodeBounds(q, 1, d, rec, 4, ball, enc(dt), b, 1);
          for (int i = 1; i < 4; i++) {
            assertEquals(a[i], b[i], 1e-5 * d, dt + " nodeBounds[" + i + "] d=" + d);
          }
          float box = 0f; // the scalar twin against its definition
          for (int c = 0; c < d; c++) {
            float lo = dt.read(rec, 4 + (long) c * dt.bytes()), hi = dt.read(rec, 4 + (long) (d + c) * dt.bytes());
            box += Math.max(q[1 + c] * lo, q[1 + c] * hi);
          }
          assertEquals(box, a[1], 1e-6 * d, dt + " box d=" + d);
        }
        int g = 3, rows = 5;
        MemorySegment seg = arena.allocate(4L * d * rows * 2, 64);
        for (int i = 0; i < d * rows * 2; i++) {
          DType.F32.write(seg, 4L * i, (float) r.nextGaussian());
        }
        float[] qg = new float[g * d];
        for (int i = 0; i < qg.length; i++) {
          qg[i] = (float) r.nextGaussian();
        }
        float[] sa = new float[g * 8], sb = new float[g * 8];
        REF.rowScores(qg, 0, g, d, seg, 0, 8L * d, rows, sa, 8);
        UNDER_TEST.rowScores(qg, 0, g, d, seg, 0, 8L * d, rows, sb, 8);
        for (int i = 0; i < sa.length; i++) {
          assertEquals(sa[i], sb[i], 1e-5 * d, "rowScores[" + i + "] d=" + d);
        }
      }
    }
  }

  @Test
  void expIsAccurateAndFlushesOnlyBelowTheNormalRange() {
    float[] x = new float[4096];
    for (int i = 0; i < x.length; i++) {
      x[i] = -87f + 107f * i / (x.length - 1); // [-87, 20]: every weight the engine computes
    }
    float[] y = x.clone();
    UNDER_TEST.expSum(y, 0, y.length, 0f);
    for (int i = 0; i < x.length; i++) {
      double want = Math.exp(x[i]);
      assertEquals(want, y[i], 3e-7 * want, "exp(" + x[i] + ")");
    }
    float[] tiny = {-88f, -100f, Float.NEGATIVE_INFINITY, -87.5f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f};
    UNDER_TEST.expSum(tiny, 0, tiny.length, 0f);
    for (int i = 0; i < 4; i++) {
      assertTrue(tiny[i] >= 0f && tiny[i] < 1.2e-38f, "underflow " + i + ": " + tiny[i]);
    }
  }

  @Test
  void expSumGivesTheSameBitsColdAndWarm() {
    Random r = new Random(13);
    float[] x = new float[203];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) (r.nextGaussian() * 10);
    }
    float[] first = x.clone();
    float firstSum = UNDER_TEST.expSum(first, 0, first.length, 3f); // likely interpreted or C1
    for (int rep = 0; rep < 30_000; rep++) { // long enough for C2 to compile the kernel
      float[] y = x.clone();
      float sum = UNDER_TEST.expSum(y, 0, y.length, 3f);
      if (rep % 5000 == 4999) {
        assertEquals(Float.floatToIntBits(firstSum), Float.floatToIntBits(sum), "sum, rep " + rep);
        for (int i = 0; i < y.length; i++) {
          assertEquals(Float.floatToIntBits(first[i]), Float.floatToIntBits(y[i]), "lane " + i + ", rep " + rep);
        }
      }
    }
  }

  @Test
  void providerIsTheOneThisRunAskedFor() {
    String expected = System.getProperty("hflash.testProvider");
    assumeTrue(expected != null, "run outside surefire: no provider expectation");
    assertEquals(expected, UNDER_TEST.bitSize() > 0 ? "vector" : "scalar", UNDER_TEST.name());
    String bits = System.getProperty(TileKernelsProvider.BIT_SIZE_PROPERTY);
    if (expected.equals("vector") && bits != null) {
      assertEquals(Integer.parseInt(bits), UNDER_TEST.bitSize());
    }
  }

  @Test
  void badWidthIsRejectedWithTheFlagName() {
    String old = System.getProperty(TileKernelsProvider.BIT_SIZE_PROPERTY);
    try {
      System.setProperty(TileKernelsProvider.BIT_SIZE_PROPERTY, "96");
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> TileKernelsProvider.requestedBitSize(256));
      assertEquals("hflash.vectorBitSize must be 0, 128, 256 or 512: 96", e.getMessage());
    } finally {
      if (old == null) {
        System.clearProperty(TileKernelsProvider.BIT_SIZE_PROPERTY);
      } else {
        System.setProperty(TileKernelsProvider.BIT_SIZE_PROPERTY, old);
      }
    }
  }

  /** The kernels' encoding of a cache dtype (same ids). */
  private static TileEncoding enc(DType dt) {
    return TileEncoding.of(dt.id());
  }
}
