// Same-window A/B timing: the native decode kernel against the Java (Vector API) kernels, for one or more cache
// dtypes and modes, alternating every iteration (native f16 exact, java f16 exact, native q8_0 exact, ... then
// again), so machine load hits every variant alike. W1 shape: 32 query heads, 8 KV heads, d = 128, tile 128,
// Gaussian K, V and q (the same data for every dtype). Modes are --mode names (exact, certified, budgeted,
// estimated, sampled; default parameters) or "prefill" (64 rows of exact prefill at the end of the context).
// Run after ./hflash has built the CLI jar (docs/perf/native-targets.sh does all of this):
//   java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx8g \
//        -cp dist/target/hflash-cli.jar docs/perf/NativeAb.java N THREADS DTYPES [ITERATIONS] [MODES]
//   ... docs/perf/NativeAb.java overhead      (the cost of one downcall that does no work)
// Prints one line per (dtype, mode, kernels): median and min ms, and the Java median over the native median.
// Not a test: it times things.
import hflash.engine.AttentionConfig;
import hflash.engine.DecodeAttention;
import hflash.engine.ModeConfig;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.tiles.NativeKernels;
import hflash.tiles.TileKernels;
import hflash.tiles.TileKernelsProvider;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

public class NativeAb {
  public static void main(String[] a) throws Throwable {
    if (a[0].equals("overhead")) {
      var v = NativeKernels.variant().orElseThrow(() -> new IllegalStateException(NativeKernels.status()));
      var mh = v.decodeTiles();
      var z = MemorySegment.ofArray(new float[4096]);
      var offs = MemorySegment.ofArray(new long[4]);
      var counts = MemorySegment.ofArray(new int[4]);
      var kv = Arena.ofShared().allocate(4096);
      int calls = 2_000_000;
      double best = Double.MAX_VALUE;
      for (int rep = 0; rep < 7; rep++) {
        long t0 = System.nanoTime();
        for (int i = 0; i < calls; i++) {
          int x = (int) mh.invokeExact(2, 128, 4, 128, z, 0, kv, kv, offs, counts, 0, z, z, 0, z, 0, z, 0L, 0L);
        }
        best = Math.min(best, (System.nanoTime() - t0) / (double) calls);
      }
      System.out.printf("overhead variant=%s ns_per_call=%.1f%n", v.name(), best);
      return;
    }
    int n = Integer.parseInt(a[0]), threads = Integer.parseInt(a[1]);
    String[] dts = a[2].split(",");
    int iters = a.length > 3 ? Integer.parseInt(a[3]) : 15;
    String[] modes = (a.length > 4 ? a[4] : "exact").split(",");
    int heads = 32, kvHeads = 8, d = 128, tile = 128, prefillRows = 64;
    float scale = (float) (1 / Math.sqrt(d));
    Random r = new Random(42);
    float[] q = new float[prefillRows * heads * d];
    for (int i = 0; i < q.length; i++) q[i] = (float) r.nextGaussian();
    TileKernels nat = TileKernelsProvider.get(), java = TileKernelsProvider.javaOnly();
    if (nat.nativeVariant() == null) {
      System.out.println("no native kernel: " + NativeKernels.status());
    }
    List<KvCache> caches = new ArrayList<>();
    List<DecodeAttention> atts = new ArrayList<>();
    List<Runnable> ops = new ArrayList<>();
    List<String> names = new ArrayList<>();
    float[] out = new float[q.length];
    float[] q1 = Arrays.copyOf(q, heads * d), out1 = new float[heads * d]; // one decode row
    for (String dt : dts) {
      KvCache c = KvCache.allocate(new KvCacheLayout(1, kvHeads, d, n, DType.parse(dt), tile));
      int batch = 1024;
      Random fr = new Random(7);
      for (int p = 0; p < n; p += batch) {
        int cnt = Math.min(batch, n - p);
        float[] k = new float[cnt * kvHeads * d], v = new float[cnt * kvHeads * d];
        for (int i = 0; i < k.length; i++) { k[i] = (float) fr.nextGaussian(); v[i] = (float) fr.nextGaussian(); }
        c.append(0, cnt, k, v);
      }
      caches.add(c);
      for (TileKernels kern : new TileKernels[] {nat, java}) {
        DecodeAttention att = DecodeAttention.create(c, heads, threads, scale, kern);
        atts.add(att);
        for (String mode : modes) {
          String kname = kern.nativeVariant() != null ? "native-" + kern.nativeVariant() : "java-" + kern.name();
          names.add("dtype=" + dt + " mode=" + mode + " kernels=" + kname);
          if (mode.equals("prefill")) {
            ops.add(() -> att.prefill(0, q, out, n - prefillRows, prefillRows, AttentionConfig.exact()));
          } else {
            AttentionConfig cfg = AttentionConfig.parse(mode, ModeConfig.Parameters.defaults());
            ops.add(() -> att.decode(0, q1, out1, n, cfg));
          }
        }
      }
    }
    double[][] ms = new double[ops.size()][iters];
    for (int w = 0; w < 3; w++) for (Runnable op : ops) op.run();
    for (int it = 0; it < iters; it++) {
      for (int i = 0; i < ops.size(); i++) {
        long t0 = System.nanoTime();
        ops.get(i).run();
        ms[i][it] = (System.nanoTime() - t0) / 1e6;
      }
    }
    double[] med = new double[ops.size()];
    for (int i = 0; i < ops.size(); i++) {
      double[] s = ms[i].clone();
      Arrays.sort(s);
      med[i] = s[s.length / 2];
    }
    int perKernels = modes.length;
    for (int i = 0; i < ops.size(); i++) {
      double[] s = ms[i].clone();
      Arrays.sort(s);
      int dtIndex = i / (2 * perKernels), within = i % (2 * perKernels), mode = within % perKernels;
      int nativeIdx = dtIndex * 2 * perKernels + mode, javaIdx = nativeIdx + perKernels;
      System.out.printf("n=%d threads=%d %s median_ms=%.3f min_ms=%.3f java_over_native=%.3f%n", n, threads,
          names.get(i), med[i], s[0], med[javaIdx] / med[nativeIdx]);
    }
    for (DecodeAttention x : atts) x.close();
    for (KvCache c : caches) c.close();
  }
}
