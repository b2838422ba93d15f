import hflash.tiles.PrefillKernels;
import hflash.tiles.TileEncoding;
import hflash.tiles.TileKernels;
import hflash.tiles.TileKernelsProvider;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.lang.reflect.Method;
import java.util.Arrays;
import java.util.Random;

/**
 * One shared-page unit of the cascade (BatchedDecode / CascadeLane) timed in thread CPU time, for
 * A/B runs on a loaded machine: 16 members x g = 4 = 64 query rows against 128-key f16 tiles of
 * d = 128 (W1), the prefill micro-kernels of the build on the class path, 16 tiles cycled (1 MiB of K
 * and V, cache-resident; the first argument changes it: 1024 tiles stream 64 MiB from DRAM). Variants,
 * alternated round by round in one JVM:
 *
 * <pre>
 * wk, wv   widen K, widen V alone                             (old API: comparable across builds)
 * scores   widen K + scores                                   (old API)
 * pv       widen V + P.V                                      (old API)
 * copy     copy one tile's real scores into s (32 KiB)
 * exp      copy + one expRows call over them (their row maxima)
 * old      the whole tile as CascadeLane did it: scores, then per row max + expSum, then widen V + P.V
 * new      the whole tile with the row max from the score kernel and one expRows call (builds that have them)
 * </pre>
 *
 * Prints per variant the median and minimum over rounds of microseconds per tile and the rate in
 * GFMA/s of the counted multiply-adds (rows x keys x (2d + 8), as the bench counts them). Run it
 * against any build's tiles classes or CLI jar, alternating builds:
 *
 * <pre>java --add-modules jdk.incubator.vector,jdk.management -cp dist/target/hflash-cli.jar docs/perf/CascadeTileCpuTime.java</pre>
 */
public class CascadeTileCpuTime {
  static final int ROWS = 64, T = 128, D = 128, WARM = 4, ROUNDS = 15;
  static int TILES = 16, PER_ROUND = 200;

  public static void main(String[] args) throws Exception {
    if (args.length > 0) { // tiles cycled: 16 (1 MiB of K and V, cache-resident) or e.g. 1024 (64 MiB, from DRAM)
      TILES = Integer.parseInt(args[0]);
      PER_ROUND = Math.max(1, 200 * 16 / TILES);
    }
    ThreadMXBean mx = ManagementFactory.getThreadMXBean();
    TileKernels kernels = TileKernelsProvider.get();
    PrefillKernels pk = PrefillKernels.of(kernels);
    Method scoresMax = find("scores", float[].class, int.class, int.class, int.class, float[].class, int.class,
        float[].class, int.class, float[].class);
    Method expRows = find("expRows", float[].class, int.class, int.class, int.class, float[].class, int.class,
        float[].class);
    System.out.printf("# %s, %s, fused API %s, %d tiles cycled%n", kernels.name(), pk.name(), scoresMax != null && expRows != null, TILES);
    Random r = new Random(42);
    Arena arena = Arena.ofConfined();
    long tileBytes = (long) T * D * 2;
    MemorySegment k = arena.allocate(tileBytes * TILES, 64);
    MemorySegment v = arena.allocate(tileBytes * TILES, 64);
    for (long i = 0; i < (long) T * D * TILES; i++) {
      k.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2 * i, Float.floatToFloat16((float) r.nextGaussian()));
      v.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2 * i, Float.floatToFloat16((float) r.nextGaussian()));
    }
    float[] q = new float[ROWS * D];
    for (int i = 0; i < q.length; i++) {
      q[i] = (float) (r.nextGaussian() / Math.sqrt(D));
    }
    int sStride = PrefillKernels.roundUp(T);
    float[] s = new float[ROWS * sStride];
    float[] kf = new float[PrefillKernels.keyScratch(T, D)];
    float[] vf = new float[PrefillKernels.valueScratch(T, D)];
    float[] acc = new float[ROWS * D];
    float[] m = new float[ROWS];
    float[] l = new float[ROWS];
    float[] sums = new float[ROWS];
    float[] s0 = new float[ROWS * sStride]; // one tile's real scores, and their row maxima
    float[] m0 = new float[ROWS];
    pk.widenKeys(k, 0, TileEncoding.F16, D, T, kf);
    pk.scores(q, 0, ROWS, D, kf, T, s0, sStride);
    for (int h = 0; h < ROWS; h++) {
      m0[h] = kernels.max(s0, h * sStride, T);
    }
    String[] variants = scoresMax != null && expRows != null ? new String[] {"wk", "wv", "scores", "pv", "copy", "exp", "old", "new"}
        : new String[] {"wk", "wv", "scores", "pv", "old"};
    double[][] us = new double[variants.length][ROUNDS];
    float sink = 0;
    for (int round = -WARM; round < ROUNDS; round++) {
      for (int x = 0; x < variants.length; x++) {
        int vi = (x + Math.max(round, 0)) % variants.length; // rotate the order round by round
        String var = variants[vi];
        long t0 = mx.getCurrentThreadCpuTime();
        for (int it = 0; it < PER_ROUND; it++) {
          for (int t = 0; t < TILES; t++) {
            long off = t * tileBytes;
            Arrays.fill(m, -1e30f); // a finite max below every score: every row absorbs, none rescales
            switch (var) {
              case "wk" -> pk.widenKeys(k, off, TileEncoding.F16, D, T, kf);
              case "copy" -> System.arraycopy(s0, 0, s, 0, s.length);
              case "exp" -> { // the weights of real scores: copy them in, then one expRows call
                System.arraycopy(s0, 0, s, 0, s.length);
                expRows.invoke(pk, s, sStride, ROWS, T, m0, 0, sums);
              }
              case "wv" -> pk.widenValues(v, off, TileEncoding.F16, D, T, T, vf);
              case "scores" -> {
                pk.widenKeys(k, off, TileEncoding.F16, D, T, kf);
                pk.scores(q, 0, ROWS, D, kf, T, s, sStride);
              }
              case "pv" -> {
                pk.widenValues(v, off, TileEncoding.F16, D, T, T, vf);
                pk.accumulate(s, sStride, ROWS, D, vf, T, T, acc, 0);
              }
              case "old" -> {
                pk.widenKeys(k, off, TileEncoding.F16, D, T, kf);
                pk.scores(q, 0, ROWS, D, kf, T, s, sStride);
                for (int h = 0; h < ROWS; h++) { // AttentionState.absorbScores
                  float tileMax = kernels.max(s, h * sStride, T);
                  m[h] = Math.max(m[h], tileMax);
                  l[h] += kernels.expSum(s, h * sStride, T, m[h]);
                }
                pk.widenValues(v, off, TileEncoding.F16, D, T, T, vf);
                pk.accumulate(s, sStride, ROWS, D, vf, T, T, acc, 0);
              }
              default -> {
                pk.widenKeys(k, off, TileEncoding.F16, D, T, kf);
                scoresMax.invoke(pk, q, 0, ROWS, D, kf, T, s, sStride, sums);
                for (int h = 0; h < ROWS; h++) { // AttentionState.absorbRows
                  m[h] = Math.max(m[h], sums[h]);
                }
                expRows.invoke(pk, s, sStride, ROWS, T, m, 0, sums);
                for (int h = 0; h < ROWS; h++) {
                  l[h] += sums[h];
                }
                pk.widenValues(v, off, TileEncoding.F16, D, T, T, vf);
                pk.accumulate(s, sStride, ROWS, D, vf, T, T, acc, 0);
              }
            }
          }
          Arrays.fill(acc, 0f); // keep the accumulators bounded
          sink += l[3];
          Arrays.fill(l, 0f);
        }
        if (round >= 0) {
          us[vi][round] = (mx.getCurrentThreadCpuTime() - t0) / 1e3 / PER_ROUND / TILES;
        }
      }
    }
    double fmas = (double) ROWS * T * (2 * D + 8);
    for (int x = 0; x < variants.length; x++) {
      double[] u = us[x].clone();
      Arrays.sort(u);
      double med = u[ROUNDS / 2];
      System.out.printf("%-7s median %7.2f us/tile  min %7.2f  (%5.1f GFMA/s of the tile's counted FMAs at the median)%n",
          variants[x], med, u[0], fmas / med / 1e3);
    }
    System.out.println(sink == 42f ? "!" : "");
  }

  static Method find(String name, Class<?>... types) {
    try {
      return PrefillKernels.class.getMethod(name, types);
    } catch (NoSuchMethodException e) {
      return null;
    }
  }
}
