package hflash.tiles;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link TileKernels#decodeTiles}: every native variant this CPU runs against the Java composition
 * of the scalar kernels (the twin) and a float64 reference over the stored values, for every dtype,
 * head dim 8..256, group sizes 1, 4, 8, odd lengths (a partial last tile and a partial last
 * 32-key block), tile sizes 32..512, tile lists in any order, and split-K halves merged.
 *
 * <p>Tolerance (float32 rounding): the native output's largest error against float64 must stay
 * within twice the twin's largest error plus 4 float32 ulps of the output's magnitude
 * ({@code 2 * errTwin + 4 * 2^-24 * max|out|}); the two paths round differently (FMA order, the
 * exp polynomial) but by the same amount. The same input gives the same bits on every call.
 *
 * <p>Without the library (no compiler at build time, {@code -Dhflash.native=false}, another CPU) the
 * variant tests are skipped with that reason and the fallback tests still run.
 */
class NativeDecodeTilesTest {

  static TileEncoding enc(DType dt) {
    return TileEncoding.of(dt.id());
  }

  private static final TileKernels TWIN = TileKernelsProvider.scalar();
  private static final DType[] DTYPES = {DType.F32, DType.BF16, DType.F16, DType.Q8_0, DType.Q4_0};

  static Stream<Arguments> shapes() {
    List<Arguments> out = new ArrayList<>();
    int[] tileSizes = {32, 64, 96, 128, 256};
    long seed = 7;
    for (DType dt : DTYPES) {
      for (int d : new int[] {8, 32, 64, 128, 256}) {
        for (int g : new int[] {1, 4, 8}) {
          int T = tileSizes[(int) (seed % tileSizes.length)];
          int n = 3 * T + 1 + (int) (seed * 37 % (T - 1)); // odd-ish, a partial last tile
          out.add(Arguments.of(dt, d, g, T, n | 1, seed++));
        }
      }
    }
    for (int T : new int[] {32, 64, 96, 128, 160, 256, 512}) { // every tile size on one shape
      out.add(Arguments.of(DType.F16, 128, 4, T, 5 * T - 3, seed++));
    }
    return out.stream();
  }

  /** One head's data: the cache, q (g, d) scaled like the engine's, and the float64 reference. */
  record Case(KvCache cache, DType dt, int d, int g, int T, int n, float[] q) implements AutoCloseable {
    static Case of(DType dt, int d, int g, int T, int n, long seed) {
      Random r = new Random(seed);
      KvCache cache = KvCache.allocate(new KvCacheLayout(1, 1, d, n, dt, T));
      float[] k = new float[n * d], v = new float[n * d];
      for (int i = 0; i < k.length; i++) {
        k[i] = (float) r.nextGaussian() * (i / d % 97 == 5 ? 4f : 1f); // a few strong keys: rescales happen
        v[i] = (float) r.nextGaussian();
      }
      cache.append(0, n, k, v);
      float[] q = new float[g * d];
      float scale = (float) (1 / Math.sqrt(d)) * 2f;
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) r.nextGaussian() * scale;
      }
      return new Case(cache, dt, d, g, T, n, q);
    }

    int tiles() {
      return (n + T - 1) / T;
    }

    /** float64 attention over the keys of the listed tiles, from the stored (rounded) values. */
    double[] reference(int[] tileList) {
      double[] out = new double[g * d];
      for (int h = 0; h < g; h++) {
        List<Integer> keys = new ArrayList<>();
        for (int t : tileList) {
          for (int j = t * T; j < Math.min(n, t * T + T); j++) {
            keys.add(j);
          }
        }
        double[] s = new double[keys.size()];
        double m = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < s.length; i++) {
          double dot = 0;
          for (int c = 0; c < d; c++) {
            dot += (double) q[h * d + c] * cache.key(0, 0, keys.get(i), c);
          }
          s[i] = dot;
          m = Math.max(m, dot);
        }
        double l = 0;
        for (int i = 0; i < s.length; i++) {
          double p = Math.exp(s[i] - m);
          l += p;
          for (int c = 0; c < d; c++) {
            out[h * d + c] += p * cache.value(0, 0, keys.get(i), c);
          }
        }
        for (int c = 0; c < d; c++) {
          out[h * d + c] /= l;
        }
      }
      return out;
    }

    /** Runs kernels' decodeTiles over tiles [first, first + count) from an empty state; returns (m, l, acc). */
    State run(TileKernels kernels, int first, int count) {
      int[] list = new int[count];
      Arrays.setAll(list, i -> first + i);
      return run(kernels, list);
    }

    /** Runs kernels' decodeTiles over the listed tiles (any order) from an empty state. */
    State run(TileKernels kernels, int[] list) {
      State st = new State(g, d);
      float[] scratch = new float[g * T + g * d + 7];
      long[] offsets = new long[list.length + 3]; // longer than the list: only the first n count
      int[] counts = new int[list.length + 3];
      for (int i = 0; i < list.length; i++) {
        offsets[i] = cache.layout().tileOffset(0, 0, list[i]); // a flat cache: tiles at the layout's offsets
        counts[i] = Math.min(T, n - list[i] * T);
      }
      kernels.decodeTiles(q, 0, g, d, cache.keys(), cache.values(), enc(dt), T, offsets, counts, list.length, st.m,
          st.l, 0, st.acc, 0, scratch);
      return st;
    }

    @Override
    public void close() {
      cache.close();
    }
  }

  /** An online-softmax state (m, l, acc) of g heads. */
  record State(float[] m, float[] l, float[] acc, int d) {
    State(int g, int d) {
      this(filled(g, Float.NEGATIVE_INFINITY), new float[g], new float[g * d], d);
    }

    static float[] filled(int n, float x) {
      float[] a = new float[n];
      Arrays.fill(a, x);
      return a;
    }

    /** FlashDecoding merge of two states over disjoint keys. */
    State merge(State o) {
      State r = new State(m.length, d);
      for (int h = 0; h < m.length; h++) {
        float mm = Math.max(m[h], o.m[h]);
        float a = l[h] == 0 ? 0 : (float) Math.exp(m[h] - mm), b = o.l[h] == 0 ? 0 : (float) Math.exp(o.m[h] - mm);
        r.m[h] = mm;
        r.l[h] = l[h] * a + o.l[h] * b;
        for (int c = 0; c < d; c++) {
          r.acc[h * d + c] = acc[h * d + c] * a + o.acc[h * d + c] * b;
        }
      }
      return r;
    }

    float[] out() {
      float[] o = new float[acc.length];
      for (int i = 0; i < o.length; i++) {
        o[i] = acc[i] / l[i / d];
      }
      return o;
    }
  }

  static double maxErr(float[] out, double[] ref) {
    double e = 0;
    for (int i = 0; i < out.length; i++) {
      e = Math.max(e, Math.abs(out[i] - ref[i]));
    }
    return e;
  }

  static double maxAbs(double[] ref) {
    double e = 0;
    for (double x : ref) {
      e = Math.max(e, Math.abs(x));
    }
    return e;
  }

  static void assertWithinTwin(float[] nat, float[] twin, double[] ref, String where) {
    double eTwin = maxErr(twin, ref), eNat = maxErr(nat, ref);
    double tol = 2 * eTwin + 4 * 0x1p-24 * maxAbs(ref);
    assertTrue(eNat <= tol, where + ": native error " + eNat + " > " + tol + " (twin " + eTwin + ")");
  }

  static List<TileKernels> variants() {
    List<TileKernels> out = new ArrayList<>();
    for (NativeKernels.Variant v : NativeKernels.runnable()) {
      out.add(TileKernelsProvider.withNative(TWIN, v));
    }
    if (Boolean.getBoolean("hflash.native.requireLoaded")) { // the sanitizer run must not skip
      assertTrue(!out.isEmpty(), "no native variant: " + NativeKernels.status());
    }
    assumeTrue(!out.isEmpty(), "no native variant: " + NativeKernels.status());
    return out;
  }

  @ParameterizedTest(name = "{0} d={1} g={2} T={3} n={4}")
  @MethodSource("shapes")
  void everyVariantMatchesTheTwinAndFloat64(DType dt, int d, int g, int T, int n, long seed) {
    String bits = System.getProperty(TileKernelsProvider.BIT_SIZE_PROPERTY);
    assumeTrue(bits == null || bits.equals("0"),
        "the native kernels and the scalar twin do not depend on the lane width: checked in the default and scalar runs");
    try (Case c = Case.of(dt, d, g, T, n, seed)) {
      int tiles = c.tiles();
      int[] all = new int[tiles];
      Arrays.setAll(all, i -> i);
      double[] ref = c.reference(all);
      State twin = c.run(TWIN, 0, tiles);
      for (TileKernels nat : variants()) {
        String where = nat.nativeVariant() + " " + dt + " d=" + d + " g=" + g + " T=" + T + " n=" + n;
        State a = c.run(nat, 0, tiles);
        assertWithinTwin(a.out(), twin.out(), ref, where);
        State again = c.run(nat, 0, tiles);
        assertArrayEquals(a.acc(), again.acc(), where + ": same input, same bits");
        assertArrayEquals(a.l(), again.l(), where);
        // split-K: two ranges merged give the whole
        int half = tiles / 2;
        State merged = c.run(nat, 0, half).merge(c.run(nat, half, tiles - half));
        State twinMerged = c.run(TWIN, 0, half).merge(c.run(TWIN, half, tiles - half));
        assertWithinTwin(merged.out(), twinMerged.out(), ref, where + " split-K");
        // a tile list out of order with gaps (as the bounded modes open tiles); the last tile included
        int[] list = tiles == 1 ? new int[] {0} : new int[] {tiles - 1, 0, tiles / 2};
        list = Arrays.stream(list).distinct().toArray();
        double[] refList = c.reference(list);
        assertWithinTwin(c.run(nat, list).out(), c.run(TWIN, list).out(), refList, where + " tile list");
      }
    }
  }

  @Test
  void theJavaCompositionIsWhatTheEnginesPerTileLoopComputes() {
    // the default method composes the tile kernels: the twin's own (scalar) scores, max, expSum, scale and
    // accumulate in the engine's order; here against float64 directly, for the fallback's sake
    try (Case c = Case.of(DType.F16, 64, 4, 64, 301, 3)) {
      int[] all = {0, 1, 2, 3, 4};
      double[] ref = c.reference(all);
      float[] twin = c.run(TWIN, 0, 5).out();
      assertTrue(maxErr(twin, ref) <= 1e-5 * maxAbs(ref), "twin vs float64: " + maxErr(twin, ref));
      float[] chosen = c.run(TileKernelsProvider.get(), 0, 5).out();
      assertWithinTwin(chosen, twin, ref, "provider kernels (" + TileKernelsProvider.get().nativeVariant() + ")");
    }
  }

  @Test
  void badArgumentsAreExceptionsBeforeTheCall() {
    for (TileKernels nat : variants()) {
      try (Case c = Case.of(DType.F32, 32, 4, 32, 70, 5)) {
        State st = new State(4, 32);
        float[] scratch = new float[4 * 32 + 4 * 32];
        var k = c.cache().keys();
        var v = c.cache().values();
        TileEncoding f32 = TileEncoding.F32;
        long past = Math.min(k.byteSize(), v.byteSize()) - 32 * 128 + 1; // a tile ending one byte past
        assertThrows(IndexOutOfBoundsException.class, () -> nat.decodeTiles(c.q(), 0, 4, 32, k, v, f32, 32,
            new long[] {0, past}, new int[] {32, 32}, 2, st.m(), st.l(), 0, st.acc(), 0, scratch));
        assertThrows(IndexOutOfBoundsException.class, () -> nat.decodeTiles(c.q(), 0, 4, 32, k, v, f32, 32,
            new long[] {-4096}, new int[] {32}, 1, st.m(), st.l(), 0, st.acc(), 0, scratch));
        assertThrows(IllegalArgumentException.class, () -> nat.decodeTiles(c.q(), 0, 4, 32, k, v, f32, 32,
            new long[] {0}, new int[] {33}, 1, st.m(), st.l(), 0, st.acc(), 0, scratch));
        assertThrows(IllegalArgumentException.class, () -> nat.decodeTiles(c.q(), 0, 4, 32, k, v, f32, 32,
            new long[] {0}, new int[] {0}, 1, st.m(), st.l(), 0, st.acc(), 0, scratch));
        assertThrows(IndexOutOfBoundsException.class, () -> nat.decodeTiles(c.q(), 0, 4, 32, k, v, f32, 32,
            new long[] {0}, new int[] {32}, 2, st.m(), st.l(), 0, st.acc(), 0, scratch));
        assertThrows(IllegalArgumentException.class, () -> nat.decodeTiles(c.q(), 0, 4, 32, k, v, f32, 32,
            new long[] {0}, new int[] {32}, 1, st.m(), st.l(), 0, st.acc(), 0, new float[10]));
        assertThrows(IndexOutOfBoundsException.class, () -> nat.decodeTiles(c.q(), 1, 4, 32, k, v, f32, 32,
            new long[] {0}, new int[] {32}, 1, st.m(), st.l(), 0, st.acc(), 0, scratch));
        c.cache().close();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> nat.decodeTiles(c.q(), 0, 4, 32,
            k, v, f32, 32, new long[] {0}, new int[] {32}, 1, st.m(), st.l(), 0, st.acc(), 0, scratch));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
        assertArrayEquals(new State(4, 32).acc(), st.acc(), "no call happened");
      }
    }
  }

  @Test
  void theStatusSaysWhichVariantOrWhy() {
    String status = NativeKernels.status();
    assertNotNull(status);
    if (System.getProperty(NativeKernels.PROPERTY, "true").equals("false")) {
      assertEquals("none: hflash.native=false", status);
      assertEquals(null, TileKernelsProvider.get().nativeVariant(), "the switch turns the native path off");
    } else if (NativeKernels.variant().isPresent()) {
      assertEquals(NativeKernels.variant().get().name(), TileKernelsProvider.get().nativeVariant());
      assertTrue(status.startsWith(NativeKernels.variant().get().name() + " ("), status);
    } else {
      assertTrue(status.startsWith("none: "), status);
    }
  }
}
