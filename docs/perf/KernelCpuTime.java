import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.util.Arrays;

/**
 * KernelRowBench's score and p.V loops timed in thread CPU time rather than wall time, for A/B
 * runs on a loaded machine: time the thread spends preempted does not count. Runs in the benchmarks
 * jar of any build (it drives KernelRowBench by reflection, so the kernel API of the build does not
 * matter). Prints, per kernel and dtype, the minimum and the median over REPS repetitions of ns per
 * key row. Used by kernels-cpu-ab.sh:
 *
 * <pre>java --add-modules jdk.incubator.vector,jdk.management -Xbatch -cp benchmarks.jar docs/perf/KernelCpuTime.java</pre>
 */
public class KernelCpuTime {
  static final int WARM = 3000, REPS = 15, PER_REP = 200, ROWS_PER_INVOCATION = 64 * 64;

  public static void main(String[] args) throws Exception {
    ThreadMXBean mx = ManagementFactory.getThreadMXBean();
    Class<?> c = Class.forName("hflash.bench.KernelRowBench");
    for (String kernel : new String[] {"scoresVector", "accumulateVector"}) {
      for (String dtype : new String[] {"f32", "bf16", "f16", "q8_0", "q4_0"}) {
        Object bench = c.getDeclaredConstructor().newInstance();
        set(c, bench, "headDim", 128);
        set(c, bench, "tiles", 16);
        set(c, bench, "dtype", dtype);
        c.getMethod("setup").invoke(bench);
        Method m = c.getMethod(kernel);
        float sink = 0;
        for (int i = 0; i < WARM; i++) {
          sink += (float) m.invoke(bench);
        }
        double[] ns = new double[REPS];
        for (int r = 0; r < REPS; r++) {
          long t0 = mx.getCurrentThreadCpuTime();
          for (int i = 0; i < PER_REP; i++) {
            sink += (float) m.invoke(bench);
          }
          ns[r] = (mx.getCurrentThreadCpuTime() - t0) / (double) PER_REP / ROWS_PER_INVOCATION;
        }
        Arrays.sort(ns);
        System.out.printf("%s %s %.3f %.3f %s%n", kernel, dtype, ns[0], ns[REPS / 2], sink == 42f ? "!" : "");
        Method down = findTearDown(c);
        if (down != null) {
          down.invoke(bench);
        }
      }
    }
  }

  static void set(Class<?> c, Object o, String name, Object value) throws Exception {
    Field f = c.getDeclaredField(name);
    f.setAccessible(true);
    f.set(o, value);
  }

  static Method findTearDown(Class<?> c) {
    for (Method m : c.getMethods()) {
      if (m.isAnnotationPresent(org.openjdk.jmh.annotations.TearDown.class)) {
        return m;
      }
    }
    return null;
  }
}
