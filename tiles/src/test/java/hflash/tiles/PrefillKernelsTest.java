package hflash.tiles;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.memory.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The prefill kernels of this JVM (vector at the run's width and register budget, or scalar)
 * against their scalar twin and against the decode kernels, bit for bit: widened tiles, scores
 * and the per-tile p.V partial over row counts around the register block and its tails (1-7, 9,
 * 10, 12, 13, 16, and 64: the cascade's 16 sequences x 4 heads), the row maxima the score kernel
 * takes and the weights of one {@code expRows} call (each row the decode kernels' max and expSum),
 * partial tiles (counts around 32 and 64), tiles of 64, 96 and 128 keys, head dims that are not
 * lane multiples, subnormal halves and queries whose f16 fold would overflow (|q| of 7e4: the
 * decode kernels fall back to the scalar reference there, the prefill kernels never fold).
 */
class PrefillKernelsTest {

  private static final TileKernels DECODE = TileKernelsProvider.get();
  private static final TileKernels REF = TileKernelsProvider.scalar();
  private static final PrefillKernels UNDER_TEST = PrefillKernels.of(DECODE);
  private static final PrefillKernels SCALAR = new ScalarPrefillKernels();

  static Stream<Arguments> shapes() {
    List<Arguments> out = new ArrayList<>();
    int[][] cases = { // d, rows, count, tileTokens
        {8, 1, 1, 64}, {40, 5, 31, 64}, {80, 6, 33, 96}, {128, 7, 64, 64}, {17, 13, 65, 96},
        {128, 12, 128, 128}, {64, 6, 96, 128}, {1, 3, 32, 32}, {72, 9, 96, 96}, {32, 2, 17, 32},
        {48, 4, 64, 64}, {128, 16, 100, 128}, {128, 64, 128, 128}, {64, 10, 47, 64}};
    long seed = 11;
    for (DType dt : new DType[] {DType.F32, DType.BF16, DType.F16}) {
      for (int[] c : cases) {
        out.add(Arguments.of(dt, c[0], c[1], c[2], c[3], seed++));
      }
    }
    return out.stream();
  }

  private static MemorySegment randomTile(Arena arena, DType dt, int d, int tileTokens, Random r) {
    MemorySegment seg = arena.allocate((long) tileTokens * d * dt.bytes(), 64);
    for (long i = 0; i < (long) tileTokens * d; i++) {
      float x = (float) r.nextGaussian();
      dt.write(seg, i * dt.bytes(), i % 7 == 3 ? x * 3e-6f : x); // every 7th tiny: subnormal halves
    }
    return seg;
  }

  @ParameterizedTest(name = "{0} d={1} rows={2} count={3} T={4}")
  @MethodSource("shapes")
  void scoresAndPartialsHaveTheDecodeBits(DType dt, int d, int rows, int count, int tileTokens, long seed) {
    Random r = new Random(seed);
    String what = dt + " d=" + d + " rows=" + rows + " count=" + count + " T=" + tileTokens + " seed=" + seed;
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment k = randomTile(arena, dt, d, tileTokens, r);
      MemorySegment v = randomTile(arena, dt, d, tileTokens, r);
      float[] q = new float[rows * d + 2];
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) r.nextGaussian() * (i % 11 == 5 ? 7e4f : 0.3f);
      }
      int sStride = PrefillKernels.roundUp(tileTokens) + 3;
      float[] kf = new float[PrefillKernels.keyScratch(tileTokens, d)];
      float[] vf = new float[PrefillKernels.valueScratch(tileTokens, d)];
      float[] kfRef = new float[kf.length];
      float[] vfRef = new float[vf.length];
      Arrays.fill(kf, Float.NaN); // stale scratch: whatever the kernels read must be rewritten
      Arrays.fill(vf, Float.NaN);
      UNDER_TEST.widenKeys(k, 0, enc(dt), d, count, kf);
      UNDER_TEST.widenValues(v, 0, enc(dt), d, count, tileTokens, vf);
      SCALAR.widenKeys(k, 0, enc(dt), d, count, kfRef);
      SCALAR.widenValues(v, 0, enc(dt), d, count, tileTokens, vfRef);

      float[] s = new float[rows * sStride];
      float[] sRef = new float[rows * sStride];
      float[] sDecode = new float[rows * sStride];
      UNDER_TEST.scores(q, 2, rows, d, kf, count, s, sStride);
      SCALAR.scores(q, 2, rows, d, kfRef, count, sRef, sStride);
      REF.scores(q, 2, rows, d, k, 0, enc(dt), count, sDecode, sStride);
      for (int row = 0; row < rows; row++) {
        for (int j = 0; j < count; j++) {
          int i = row * sStride + j;
          assertEquals(Float.floatToIntBits(sDecode[i]), Float.floatToIntBits(sRef[i]), what + " scalar score " + i);
          assertEquals(Float.floatToIntBits(sRef[i]), Float.floatToIntBits(s[i]), what + " score " + i);
        }
        for (int j = count; j < PrefillKernels.roundUp(count); j++) {
          assertTrue(Float.isFinite(s[row * sStride + j]), what + " padding score " + j);
        }
      }

      float[] rowMax = new float[rows + 1];
      float[] rowMaxRef = new float[rows + 1];
      Arrays.fill(rowMax, Float.NaN); // stale: every row must be rewritten
      Arrays.fill(rowMaxRef, Float.NaN);
      float[] s2 = new float[rows * sStride];
      float[] s2Ref = new float[rows * sStride];
      UNDER_TEST.scores(q, 2, rows, d, kf, count, s2, sStride, rowMax);
      SCALAR.scores(q, 2, rows, d, kfRef, count, s2Ref, sStride, rowMaxRef);
      float[] m = new float[rows + 1];
      for (int row = 0; row < rows; row++) {
        for (int j = 0; j < count; j++) {
          int i = row * sStride + j;
          assertEquals(Float.floatToIntBits(s[i]), Float.floatToIntBits(s2[i]), what + " score with max " + i);
          assertEquals(Float.floatToIntBits(sRef[i]), Float.floatToIntBits(s2Ref[i]), what + " scalar score with max " + i);
        }
        float max = DECODE.max(s, row * sStride, count);
        assertEquals(Float.floatToIntBits(REF.max(sRef, row * sStride, count)), Float.floatToIntBits(rowMaxRef[row]),
            what + " scalar row max " + row);
        assertEquals(Float.floatToIntBits(max), Float.floatToIntBits(rowMax[row]), what + " row max " + row);
        m[row + 1] = row % 3 == 1 ? max + 0.75f : max; // some rows behind an earlier, larger max
      }
      float[] sums = new float[rows];
      float[] sumsRef = new float[rows];
      UNDER_TEST.expRows(s2, sStride, rows, count, m, 1, sums);
      SCALAR.expRows(s2Ref, sStride, rows, count, m, 1, sumsRef);
      for (int row = 0; row < rows; row++) {
        float[] one = Arrays.copyOfRange(s, row * sStride, row * sStride + count);
        float[] oneRef = one.clone();
        float sum = DECODE.expSum(one, 0, count, m[row + 1]);
        float sumRef = REF.expSum(oneRef, 0, count, m[row + 1]);
        assertEquals(Float.floatToIntBits(sumRef), Float.floatToIntBits(sumsRef[row]), what + " scalar exp sum " + row);
        assertEquals(Float.floatToIntBits(sum), Float.floatToIntBits(sums[row]), what + " exp sum " + row);
        assertEquals(sumRef, sums[row], 1e-5f * Math.max(1f, sumRef), what + " exp sum against the scalar twin " + row);
        for (int j = 0; j < count; j++) {
          int i = row * sStride + j;
          assertEquals(Float.floatToIntBits(oneRef[j]), Float.floatToIntBits(s2Ref[i]), what + " scalar weight " + i);
          assertEquals(Float.floatToIntBits(one[j]), Float.floatToIntBits(s2[i]), what + " weight " + i);
          assertEquals(s2Ref[i], s2[i], 1e-6f, what + " weight against the scalar twin " + i);
        }
      }

      float[] p = new float[rows * sStride];
      for (int i = 0; i < p.length; i++) {
        p[i] = r.nextFloat();
      }
      float[] acc = new float[rows * d + 1];
      for (int i = 0; i < acc.length; i++) {
        acc[i] = (float) r.nextGaussian();
      }
      float[] accRef = acc.clone();
      float[] accDecode = acc.clone();
      UNDER_TEST.accumulate(p, sStride, rows, d, vf, tileTokens, count, acc, 1);
      SCALAR.accumulate(p, sStride, rows, d, vfRef, tileTokens, count, accRef, 1);
      float[] partial = new float[rows * d]; // the decode path: a zeroed partial, then added
      REF.accumulate(p, sStride, rows, d, v, 0, enc(dt), count, tileTokens, partial, 0);
      for (int i = 0; i < partial.length; i++) {
        accDecode[1 + i] += partial[i];
      }
      for (int i = 0; i < acc.length; i++) {
        assertEquals(Float.floatToIntBits(accDecode[i]), Float.floatToIntBits(accRef[i]), what + " scalar acc " + i);
        assertEquals(Float.floatToIntBits(accRef[i]), Float.floatToIntBits(acc[i]), what + " acc " + i);
      }
    }
  }

  /** The kernels' encoding of a cache dtype (same ids). */
  private static TileEncoding enc(DType dt) {
    return TileEncoding.of(dt.id());
  }
}
