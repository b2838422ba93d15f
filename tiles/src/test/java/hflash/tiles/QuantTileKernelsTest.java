package hflash.tiles;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * q8_0/q4_0 score and p.V kernels of this JVM (vector at the run's width, or scalar) against the
 * scalar spec, to the bit, and the spec against float64 over the dequantized values. Tiles are
 * filled through {@link KvCache#append}, so they are in the cache's real placement.
 */
class QuantTileKernelsTest {

  private static final TileKernels UNDER_TEST = TileKernelsProvider.get();
  private static final TileKernels REF = TileKernelsProvider.scalar();

  static Stream<Arguments> shapes() {
    List<Arguments> out = new ArrayList<>();
    long seed = 31;
    for (DType dt : new DType[] {DType.Q8_0, DType.Q4_0}) {
      for (int d : new int[] {1, 7, 8, 40, 64, 128}) {
        for (int g : new int[] {1, 4, 5}) {
          out.add(Arguments.of(dt, d, g, 1 + (int) (seed * 7919 % 64), 64, seed++));
        }
      }
      // the 4 x 4 shapes: an odd count of K groups and of 32-channel block columns (a pair, then
      // one), two head quads and a remainder head
      out.add(Arguments.of(dt, 96, 9, 97, 128, seed++));
      out.add(Arguments.of(dt, 160, 8, 128, 128, seed++));
    }
    return out.stream();
  }

  @ParameterizedTest(name = "{0} d={1} g={2} count={3} T={4}")
  @MethodSource("shapes")
  void scoresAndAccumulateGiveTheScalarBitsAndFloat64OverTheDequantizedValues(DType dt, int d, int g,
      int count, int T, long seed) {
    Random r = new Random(seed);
    try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, 1, d, T, dt, T))) {
      float[] k = new float[count * d], v = new float[count * d];
      for (int i = 0; i < k.length; i++) {
        k[i] = (float) (r.nextGaussian() * (i % 5 == 0 ? 1e-6 : 1)); // some tiny blocks too
        v[i] = (float) r.nextGaussian();
      }
      cache.append(0, count, k, v);
      float[] q = new float[g * d + 3];
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) r.nextGaussian();
      }
      float[] sRef = new float[g * T], sVec = new float[g * T];
      REF.scores(q, 3, g, d, cache.keyTile(0, 0, 0), 0, enc(dt), count, sRef, T);
      UNDER_TEST.scores(q, 3, g, d, cache.keyTile(0, 0, 0), 0, enc(dt), count, sVec, T);
      for (int h = 0; h < g; h++) {
        for (int j = 0; j < count; j++) {
          String where = dt + " d=" + d + " g=" + g + " seed=" + seed + " h=" + h + " j=" + j;
          assertEquals(Float.floatToIntBits(sRef[h * T + j]), Float.floatToIntBits(sVec[h * T + j]), where);
          double exact = 0, mag = 0;
          for (int c = 0; c < d; c++) {
            exact += (double) q[3 + h * d + c] * cache.key(0, 0, j, c);
            mag += Math.abs((double) q[3 + h * d + c] * cache.key(0, 0, j, c));
          }
          assertTrue(Math.abs(sRef[h * T + j] - exact) <= 2e-7 * (d + 2) * mag + 1e-30, where + ": " + sRef[h * T + j]
              + " vs " + exact);
        }
      }
      float[] p = new float[g * T];
      for (int i = 0; i < p.length; i++) {
        p[i] = r.nextFloat();
      }
      float[] aRef = new float[g * d + 5], aVec = new float[g * d + 5], a0 = new float[g * d + 5];
      for (int i = 0; i < aRef.length; i++) {
        aRef[i] = aVec[i] = a0[i] = (float) r.nextGaussian();
      }
      REF.accumulate(p, T, g, d, cache.valueTile(0, 0, 0), 0, enc(dt), count, T, aRef, 5);
      UNDER_TEST.accumulate(p, T, g, d, cache.valueTile(0, 0, 0), 0, enc(dt), count, T, aVec, 5);
      for (int i = 0; i < aRef.length; i++) {
        assertEquals(Float.floatToIntBits(aRef[i]), Float.floatToIntBits(aVec[i]),
            dt + " d=" + d + " g=" + g + " seed=" + seed + " acc[" + i + "]");
      }
      for (int h = 0; h < g; h++) {
        for (int c = 0; c < d; c++) {
          double exact = a0[5 + h * d + c], mag = Math.abs(exact);
          for (int j = 0; j < count; j++) {
            exact += (double) p[h * T + j] * cache.value(0, 0, j, c);
            mag += Math.abs((double) p[h * T + j] * cache.value(0, 0, j, c));
          }
          assertTrue(Math.abs(aRef[5 + h * d + c] - exact) <= 2e-7 * (count + 2) * mag,
              dt + " d=" + d + " seed=" + seed + " h=" + h + " c=" + c);
        }
      }
    }
  }

  /** The kernels' encoding of a cache dtype (same ids). */
  private static TileEncoding enc(DType dt) {
    return TileEncoding.of(dt.id());
  }
}
