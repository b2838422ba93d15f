package hflash.tiles;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The vector score and p.V kernels allocate nothing in steady state, also when C2 refuses every
 * out-of-line inlining it can refuse. The kernels run in a child JVM with
 * {@code -XX:InlineSmallCode=300} (C2 then keeps out of line any callee that it has already
 * compiled on its own into more than 300 bytes, which is what happens by chance with the default
 * 2500 when a small helper gets hot before the loop that calls it) and without any
 * {@code CompileCommand}: a Vector value that crosses such a call is boxed on the heap, and the
 * child's per-call allocation shows it. {@code -Xbatch} makes the compile order the same every run.
 * Runs at the width of the surrounding test fork (the child inherits {@code hflash.*} properties);
 * skipped for the scalar fork and the default fork (its width is one of the explicit forks').
 */
class KernelAllocationTest {

  /** Tile geometry of the child: d = 128, two K groups / a 64-key tile, 4 heads and 1 head. */
  static final int D = 128, COUNT = 64, TOKENS = 64;
  static final int WARM_CALLS = 1_500, MEASURED_CALLS = 300;

  @Test
  void decodeKernelsAllocateNothingWhenC2KeepsHelpersOutOfLine() throws Exception {
    assumeTrue(TileKernelsProvider.get().bitSize() > 0, "vector kernels are off in this fork");
    // the default fork runs the CPU's preferred width, which an explicit width fork repeats: one child less
    assumeTrue(System.getProperty(TileKernelsProvider.BIT_SIZE_PROPERTY) != null, "covered by the width forks");
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add("--add-modules=jdk.incubator.vector,jdk.management");
    cmd.add("-XX:InlineSmallCode=300");
    cmd.add("-Xbatch");
    cmd.add("-XX:+UseParallelGC");
    for (String key : System.getProperties().stringPropertyNames()) {
      if (key.startsWith("hflash.")) {
        cmd.add("-D" + key + "=" + System.getProperty(key));
      }
    }
    cmd.add("-cp");
    cmd.add(location(TileKernels.class) + File.pathSeparator + location(KernelAllocationTest.class));
    cmd.add(Child.class.getName());
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(true, p.waitFor(5, TimeUnit.MINUTES), "child JVM did not finish");
    System.out.print(out);
    assertEquals(0, p.exitValue(), "child JVM reported allocating kernels:\n" + out);
  }

  private static String location(Class<?> c) throws URISyntaxException {
    return Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
  }

  /**
   * The child: warms every float and block dtype through the 4-head and 1-head shapes of the score
   * and p.V kernels, then prints the bytes each call allocates and exits 1 if any allocates.
   */
  public static final class Child {
    public static void main(String[] args) throws IOException {
      TileKernels kernels = TileKernelsProvider.get();
      com.sun.management.ThreadMXBean mx =
          (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
      long tid = Thread.currentThread().threadId();
      try (Arena arena = Arena.ofConfined()) {
        MemorySegment tile = arena.allocate(8L * COUNT * D + 4096, 64);
        tile.fill((byte) 0x11); // every f32, bf16, f16 and block scale is a small finite number
        int gMax = 5;
        float[] q = new float[gMax * D], s = new float[gMax * TOKENS], p = new float[gMax * TOKENS];
        float[] acc = new float[gMax * D];
        java.util.Arrays.fill(q, 0.01f);
        java.util.Arrays.fill(p, 0.01f);
        TileEncoding[] encs = TileEncoding.values();
        int[] groups = {4, 1};
        // warm up interleaved, as a real process that reads several dtypes would
        for (int i = 0; i < WARM_CALLS; i++) {
          for (TileEncoding e : encs) {
            for (int g : groups) {
              kernels.scores(q, 0, g, D, tile, 0, e, COUNT, s, TOKENS);
              kernels.accumulate(p, TOKENS, g, D, tile, 0, e, COUNT, TOKENS, acc, 0);
            }
          }
          if (i % 64 == 0) {
            java.util.Arrays.fill(acc, 0f);
          }
        }
        boolean bad = false;
        for (TileEncoding e : encs) {
          for (int g : groups) {
            long before = mx.getThreadAllocatedBytes(tid);
            for (int i = 0; i < MEASURED_CALLS; i++) {
              kernels.scores(q, 0, g, D, tile, 0, e, COUNT, s, TOKENS);
            }
            long mid = mx.getThreadAllocatedBytes(tid);
            for (int i = 0; i < MEASURED_CALLS; i++) {
              kernels.accumulate(p, TOKENS, g, D, tile, 0, e, COUNT, TOKENS, acc, 0);
            }
            long after = mx.getThreadAllocatedBytes(tid);
            double perScore = (mid - before) / (double) MEASURED_CALLS;
            double perValue = (after - mid) / (double) MEASURED_CALLS;
            // a boxed vector is at least 16 bytes; one stray allocation over the 300 calls is noise
            boolean fails = perScore >= 1 || perValue >= 1;
            bad |= fails;
            System.out.printf("%s %s g=%d: scores %.1f B/call, accumulate %.1f B/call%s%n", kernels.name(), e.id(),
                g, perScore, perValue, fails ? "  ALLOCATES" : "");
          }
        }
        System.exit(bad ? 1 : 0);
      }
    }
  }
}
