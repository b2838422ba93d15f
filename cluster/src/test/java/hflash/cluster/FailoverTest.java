package hflash.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.hazelcast.core.HazelcastInstance;
import hflash.engine.AttentionConfig;
import hflash.memory.DType;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * Members that die (terminate: no goodbye) or join while a coordinator appends and decodes: the
 * outputs stay bit-identical, lost copies are re-created, and with no copy left decode throws.
 * One cluster for the whole story (members start in seconds each): 3 members; one dies while
 * appends run; a second dies in a decode loop; a fourth joins mid-loop, gets a shard for the
 * positions appended after it joined and takes copies of the others (copied in the background
 * while decode and append go on); the last original dies and the new member alone serves every
 * position.
 */
class FailoverTest {

  static final int KV_HEADS = 2, HEAD_DIM = 16, HEADS = 4, TILE = 32;

  @Test
  void membersDieAndJoinWhileAppendingAndDecodingAndNothingIsLost() throws Exception {
    long seed = 1311;
    SplittableRandom rnd = new SplittableRandom(seed);
    try (TestCluster cluster = new TestCluster(3)) {
      HazelcastInstance client = cluster.client();
      ShardReference ref = new ShardReference(1, KV_HEADS, HEAD_DIM, DType.BF16, TILE);
      ShardReference soloRef = new ShardReference(1, KV_HEADS, HEAD_DIM, DType.BF16, TILE);
      try (DistributedKvCache cache = DistributedKvCache.create(client, "race", 1, KV_HEADS,
          HEAD_DIM, 2000, DType.BF16, TILE, new DistributedKvCache.Options(2, 3, 1));
           DistributedKvCache solo = DistributedKvCache.create(client, "solo", 1, KV_HEADS,
               HEAD_DIM, 400, DType.BF16, TILE, new DistributedKvCache.Options(1, 3, 1));
           DistributedAttention att = DistributedAttention.create(cache, HEADS);
           DistributedAttention soloAtt = DistributedAttention.create(solo, HEADS)) {
        soloRef.appendRandom(solo, new SplittableRandom(seed + 1), 200, true);

        // 1. a member dies while another thread appends: every append returns, nothing is lost
        String victim = cache.placement().owners().get(1).getFirst();
        assertEquals(victim, solo.placement().owners().get(1).getFirst());
        CountDownLatch started = new CountDownLatch(1);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread appender = new Thread(() -> {
          try {
            for (int b = 0; b < 60; b++) {
              ref.appendRandom(cache, rnd, 1 + b % 13, b % 2 == 0);
              if (b == 10) {
                started.countDown();
              }
            }
          } catch (Throwable t) {
            failure.set(t);
            started.countDown();
          }
        });
        appender.start();
        started.await();
        cluster.member(victim).terminate();
        appender.join();
        if (failure.get() != null) {
          throw new AssertionError("an append failed while a member died, seed=" + seed, failure.get());
        }
        int n = ref.k.getFirst().size();
        assertEquals(n, cache.length(0));
        cache.awaitRepairs();
        for (int s = 0; s < 3; s++) {
          assertEquals(2, cache.placement.liveOwners(s).size(), "shard " + s + " back to 2 copies: " + cache.placement());
        }
        float[][] qs = new float[3][];
        float[][] want = new float[3][];
        for (int i = 0; i < 3; i++) {
          qs[i] = ShardReference.query(rnd, HEADS * HEAD_DIM);
          want[i] = ref.splitK(cache.striping(), 0, qs[i], HEADS, n, AttentionConfig.exact());
        }
        float[] out = new float[HEADS * HEAD_DIM];

        // 2. the unreplicated cache lost shard 1 with its member: never a partial result
        var e = assertThrows(ShardLostException.class, () -> soloAtt.decode(0, qs[0], out));
        assertEquals("positions lost (every copy's member failed) in layers [0, 1): shard 1: "
            + "[32, 64), [128, 160) (64 positions)", e.getMessage());
        assertEquals(64, e.lostPositions());
        assertEquals(64, solo.lostPositions());
        soloAtt.decode(0, qs[0], out, 32, AttentionConfig.exact()); // shard 0 alone still serves
        assertArrayEquals(soloRef.splitK(solo.striping(), 0, qs[0], HEADS, 32, AttentionConfig.exact()),
            out, 0f, "seed=" + seed);

        // 3. a decode loop: a second member dies (the next call may still be routed to it); a
        // new member joins: it gets a shard of its own for the positions appended after the join
        // and copies of the shards short of replicas, copied while decode and append go on; the
        // last original member dies and the new one alone serves every position
        String second = cache.placement().owners().get(0).getFirst();
        CountDownLatch copying = new CountDownLatch(1), resume = new CountDownLatch(1);
        String joined = null;
        for (int it = 0; it < 12; it++) {
          if (it == 3) {
            cluster.member(second).terminate();
          }
          if (it == 6) {
            cache.repair.afterBulkCopy = () -> {
              copying.countDown();
              try {
                resume.await();
              } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
              }
            };
            joined = cluster.addMember().hazelcast().getCluster().getLocalMember().getUuid().toString();
            assertTrue(copying.await(120, TimeUnit.SECONDS), "no copy to the new member started: " + cache.placement());
            assertFalse(cache.lock.isLocked(), "the bulk of a copy runs without the cache's lock");
            att.decode(0, qs[0], out); // on the surviving copies, while the copy waits
            assertArrayEquals(want[0], out, 0f, "seed=" + seed + " during the copy");
            ref.appendRandom(cache, rnd, 150, true); // partly past the join: onto the new shard
            n = ref.k.getFirst().size();
            cache.repair.afterBulkCopy = () -> {};
            resume.countDown();
            cache.awaitRepairs();
            Placement p = cache.placement();
            assertEquals(4, p.shards(), p.toString());
            assertEquals(joined, p.owners().get(3).getFirst(), p.toString());
            assertTrue(p.striping().segments().getLast().start() >= n - 150, p.toString());
            assertEquals(p, client.getMap(ClusterSetup.PLACEMENTS).get("race"), "the map holds the truth");
            for (int i = 0; i < 3; i++) {
              want[i] = ref.splitK(cache.striping(), 0, qs[i], HEADS, n, AttentionConfig.exact());
            }
          }
          if (it == 9) {
            cache.awaitRepairs();
            assertEquals(0, cache.lostPositions());
            for (int s = 0; s < 4; s++) {
              assertEquals(2, cache.placement.liveOwners(s).size(), "shard " + s + ": " + cache.placement());
            }
            String last = null;
            for (ClusterMember m : cluster.members) {
              if (m.hazelcast().getLifecycleService().isRunning() && m != cluster.members.getLast()) {
                last = m.hazelcast().getCluster().getLocalMember().getUuid().toString();
              }
            }
            cluster.member(last).terminate();
          }
          att.decode(0, qs[it % 3], out);
          assertArrayEquals(want[it % 3], out, 0f, "seed=" + seed + " iteration " + it);
          if (it == 7) { // the new member serves the positions appended after it joined
            String j = joined;
            assertTrue(att.report().calls().stream().anyMatch(c -> c.member().equals(j)
                && java.util.Arrays.stream(c.shards()).anyMatch(s -> s == 3) && c.positions() > 0),
                att.report().toString());
          }
        }
        assertTrue(cache.copiesMade() >= 3, "copies re-created: " + cache.copiesMade());
        assertEquals(0, cache.lostPositions());
      }
    }
  }
}
