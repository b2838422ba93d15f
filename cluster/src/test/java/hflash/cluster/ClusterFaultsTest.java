package hflash.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.hazelcast.cluster.Member;
import com.hazelcast.core.HazelcastInstance;
import hflash.engine.AttentionConfig;
import hflash.memory.DType;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Faults that are not a clean death: a member that stops answering past the failure detector's timeout and then
 * continues (SIGSTOP, SIGCONT on a member in a JVM of its own), and a coordinator that dies in the middle of an append
 * loop and is replaced by one that attaches. In both, every decode output equals the no-fault output bit for bit
 * (the split-K reference over the same shard ranges, which the no-fault run gives: {@code DistributedAttentionTest}),
 * no appended position is lost, and the stopped member's copies are replaced.
 */
class ClusterFaultsTest {

  static final int KV_HEADS = 2, HEAD_DIM = 16, HEADS = 4, TILE = 32;

  @TempDir Path tmp;

  /** Rows of one layer: appended to the reference before the cluster, so an append cut short is still known. */
  private static void append(ShardReference ref, DistributedKvCache cache, SplittableRandom rnd, int count) {
    int row = KV_HEADS * HEAD_DIM;
    float[] ks = new float[count * row], vs = new float[count * row];
    for (int i = 0; i < ks.length; i++) {
      ks[i] = ref.dtype.round((float) rnd.nextGaussian());
      vs[i] = ref.dtype.round((float) rnd.nextGaussian());
    }
    for (int i = 0; i < count; i++) {
      ref.k.getFirst().add(java.util.Arrays.copyOfRange(ks, i * row, (i + 1) * row));
      ref.v.getFirst().add(java.util.Arrays.copyOfRange(vs, i * row, (i + 1) * row));
    }
    cache.append(0, count, ks, vs);
  }

  @Test
  void aCoordinatorRestartedMidAppendLoopLosesNothingAndGivesTheNoFaultBits() throws Exception {
    // membership and recovery, not kernels: once per suite, in the vector run
    assumeTrue("vector".equals(System.getProperty("hflash.testProvider")),
        "the coordinator-restart test runs in the vector execution only");
    long seed = 2207;
    SplittableRandom rnd = new SplittableRandom(seed);
    try (TestCluster cluster = new TestCluster(3)) {
      HazelcastInstance first = cluster.client();
      ShardReference ref = new ShardReference(1, KV_HEADS, HEAD_DIM, DType.BF16, TILE);
      DistributedKvCache cache = DistributedKvCache.create(first, "restart", 1, KV_HEADS, HEAD_DIM, 4000,
          DType.BF16, TILE, new DistributedKvCache.Options(2, 3, 1));
      AtomicInteger returned = new AtomicInteger(); // positions of the appends that returned
      CountDownLatch running = new CountDownLatch(1);
      AtomicReference<Throwable> died = new AtomicReference<>();
      Thread loop = new Thread(() -> {
        try {
          for (int b = 0; b < 400; b++) {
            append(ref, cache, rnd, 1 + b % 17);
            returned.addAndGet(1 + b % 17);
            if (b == 8) {
              running.countDown();
            }
          }
        } catch (Throwable t) {
          died.set(t); // the coordinator died under this append
        }
        running.countDown();
      });
      loop.start();
      assertTrue(running.await(120, TimeUnit.SECONDS));
      first.getLifecycleService().terminate(); // no goodbye: the coordinator process dies mid-loop
      loop.join(120_000);
      assertTrue(died.get() != null, "the append loop outlived its coordinator (seed=" + seed + ")");
      int appendedOrInFlight = ref.k.getFirst().size();

      // a new coordinator: the placement from the map, the longest prefix every shard agrees on
      HazelcastInstance second = cluster.client();
      try (DistributedKvCache again = DistributedKvCache.attach(second, "restart");
           DistributedAttention att = DistributedAttention.create(again, HEADS)) {
        int n = again.length(0);
        assertTrue(n >= returned.get() && n <= appendedOrInFlight, "seed=" + seed + ": attached length " + n
            + " outside [" + returned.get() + ", " + appendedOrInFlight + "]: an append that returned was lost");
        ref.truncate(n); // the cut-short append's rows past n are gone everywhere; the loop appends from n
        for (int b = 0; b < 20; b++) {
          append(ref, again, rnd, 1 + b % 17);
        }
        n = ref.k.getFirst().size();
        assertEquals(n, again.length(0));
        again.awaitRepairs();
        float[] out = new float[HEADS * HEAD_DIM];
        for (int i = 0; i < 4; i++) {
          float[] q = ShardReference.query(rnd, HEADS * HEAD_DIM);
          att.decode(0, q, out);
          assertArrayEquals(ref.splitK(again.striping(), 0, q, HEADS, n, AttentionConfig.exact()), out, 0f,
              "seed=" + seed + " query " + i);
        }
        assertEquals(0, again.lostPositions());
      }
    }
  }

  /** A member JVM of its own: the only way to SIGSTOP one member. */
  private static final class MemberJvm {
    final Process process;
    final Path log;
    final String address;

    MemberJvm(Path dir, String cluster, int port, List<String> others) throws IOException {
      String java = ProcessHandle.current().info().command().orElse("java");
      List<String> cmd = new ArrayList<>(List.of(java, "-Xmx256m", "-XX:+UseSerialGC",
          "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
          "--add-opens", "java.base/java.lang=ALL-UNNAMED", "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
          "--sun-misc-unsafe-memory-access=allow"));
      String bits = System.getProperty("hflash.vectorBitSize");
      if (bits != null) {
        cmd.add("-Dhflash.vectorBitSize=" + bits); // the same kernels as the reference computed here
      }
      cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), MemberProcessMain.class.getName(),
          cluster, String.valueOf(port)));
      cmd.addAll(others);
      address = "127.0.0.1:" + port;
      log = dir.resolve("member-" + port + ".log");
      process = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile())
          .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
    }

    void awaitUp() throws Exception {
      for (int i = 0; i < 1200; i++) { // a deadline of 120 s, polled
        if (!process.isAlive()) {
          throw new IllegalStateException("member exited: " + Files.readString(log));
        }
        if (Files.exists(log) && Files.readString(log).contains("member up")) {
          return;
        }
        Thread.sleep(100);
      }
      throw new IllegalStateException("member did not start: " + Files.readString(log));
    }

    void signal(String sig) throws Exception {
      Process p = new ProcessBuilder("kill", "-" + sig, String.valueOf(process.pid())).inheritIO().start();
      assertEquals(0, p.waitFor(), "kill -" + sig);
    }
  }

  private static boolean isMember(HazelcastInstance client, String uuid) {
    return client.getCluster().getMembers().stream().anyMatch(m -> m.getUuid().toString().equals(uuid));
  }

  @Test
  void aMemberStoppedPastTheTimeoutThenContinuedLosesNothingAndIsReplaced() throws Exception {
    // processes and signals, not kernels: once, in the vector run, and only where kill(1) exists
    assumeTrue("vector".equals(System.getProperty("hflash.testProvider")),
        "the member-JVM fault test runs in the vector execution only");
    assumeTrue(new File("/bin/kill").canExecute() || new File("/usr/bin/kill").canExecute(), "no kill(1)");
    long seed = 2208;
    SplittableRandom rnd = new SplittableRandom(seed);
    String name = "hflash-stop-" + ProcessHandle.current().pid() + "-" + System.nanoTime();
    List<MemberJvm> jvms = new ArrayList<>();
    HazelcastInstance client = null;
    try {
      List<String> addresses = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        int port = TestCluster.freePort();
        MemberJvm m = new MemberJvm(tmp, name, port, List.copyOf(addresses));
        jvms.add(m);
        addresses.add(m.address);
      }
      for (MemberJvm m : jvms) {
        m.awaitUp();
      }
      client = ClusterSetup.client(name, addresses);
      ShardReference ref = new ShardReference(1, KV_HEADS, HEAD_DIM, DType.BF16, TILE);
      try (DistributedKvCache cache = DistributedKvCache.create(client, "stopped", 1, KV_HEADS, HEAD_DIM, 2000,
          DType.BF16, TILE, new DistributedKvCache.Options(2, 3, 1));
           DistributedAttention att = DistributedAttention.create(cache, HEADS)) {
        append(ref, cache, rnd, 300);
        float[][] qs = new float[3][];
        float[][] want = new float[3][];
        for (int i = 0; i < 3; i++) {
          qs[i] = ShardReference.query(rnd, HEADS * HEAD_DIM);
        }
        float[] out = new float[HEADS * HEAD_DIM];
        int n = ref.k.getFirst().size();
        for (int i = 0; i < 3; i++) {
          want[i] = ref.splitK(cache.striping(), 0, qs[i], HEADS, n, AttentionConfig.exact());
          att.decode(0, qs[i], out);
          assertArrayEquals(want[i], out, 0f, "seed=" + seed + " before the stop");
        }

        // stop the first owner of shard 1 past the failure detector's 6 s; decode and append meanwhile
        String victim = cache.placement().owners().get(1).getFirst();
        MemberJvm stopped = null;
        for (Member m : client.getCluster().getMembers()) {
          if (m.getUuid().toString().equals(victim)) {
            String a = "127.0.0.1:" + m.getAddress().getPort();
            stopped = jvms.stream().filter(j -> j.address.equals(a)).findFirst().orElseThrow();
          }
        }
        stopped.signal("STOP");
        try {
          for (int it = 0; it < 6; it++) {
            att.decode(0, qs[it % 3], out); // the first calls wait for the timeout, then fail over
            assertArrayEquals(want[it % 3], out, 0f, "seed=" + seed + " while stopped, call " + it);
          }
          append(ref, cache, rnd, 70); // onto the surviving copies
          n = ref.k.getFirst().size();
          for (int i = 0; i < 3; i++) {
            want[i] = ref.splitK(cache.striping(), 0, qs[i], HEADS, n, AttentionConfig.exact());
          }
          for (int i = 0; i < 600 && isMember(client, victim); i++) {
            Thread.sleep(100); // until the cluster has dropped it (the heartbeat timeout is 6 s)
          }
          assertTrue(!isMember(client, victim), "the stopped member was not dropped: "
              + client.getCluster().getMembers());
        } finally {
          stopped.signal("CONT");
        }
        // the member continues and merges back as a new member (or stays out); its copies are replaced
        // on the members there are, and nothing is lost
        for (int i = 0; i < 150 && client.getCluster().getMembers().size() < 3; i++) {
          Thread.sleep(100); // a chance to merge back first (the merge runs 5 s after the split at the earliest)
        }
        cache.awaitRepairs();
        int members = client.getCluster().getMembers().size();
        for (int s = 0; s < 3; s++) {
          assertEquals(Math.min(2, members), cache.placement.liveOwners(s).size(), "shard " + s
              + " back to " + Math.min(2, members) + " live copies on " + members + " members: " + cache.placement());
        }
        for (int it = 0; it < 6; it++) {
          att.decode(0, qs[it % 3], out);
          assertArrayEquals(want[it % 3], out, 0f, "seed=" + seed + " after the continue, call " + it);
        }
        append(ref, cache, rnd, 40);
        n = ref.k.getFirst().size();
        assertEquals(n, cache.length(0));
        float[] q = ShardReference.query(rnd, HEADS * HEAD_DIM);
        att.decode(0, q, out);
        assertArrayEquals(ref.splitK(cache.striping(), 0, q, HEADS, n, AttentionConfig.exact()), out, 0f,
            "seed=" + seed + " after an append past the continue");
        assertEquals(0, cache.lostPositions());
        assertTrue(att.report().toString().length() > 0);
      }
    } finally {
      if (client != null) {
        client.shutdown();
      }
      for (MemberJvm m : jvms) {
        m.process.destroyForcibly();
        m.process.waitFor(30, TimeUnit.SECONDS);
      }
    }
  }
}
