package hflash.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.hazelcast.core.HazelcastInstance;
import hflash.engine.AttentionConfig;
import hflash.memory.DType;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Three members in this JVM and a client coordinator: the contract of the local API. */
class DistributedAttentionTest {

  static TestCluster cluster;
  static HazelcastInstance client;

  static final int LAYERS = 2, KV_HEADS = 2, HEAD_DIM = 24, HEADS = 6, TILE = 32;

  @BeforeAll
  static void start() {
    cluster = new TestCluster(3);
    client = cluster.client();
  }

  @AfterAll
  static void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  static final List<AttentionConfig> MODES = List.of(AttentionConfig.exact(),
      AttentionConfig.sampled(), AttentionConfig.certified(1e-3), AttentionConfig.budgetedTiles(5),
      AttentionConfig.budgetedShare(0.3), AttentionConfig.budgetedBytes(20_000));

  @Test
  void everyModeEqualsLocalSplitKOverTheSameRangesBitForBit() {
    long seed = 1301;
    SplittableRandom rnd = new SplittableRandom(seed);
    try (DistributedKvCache cache = DistributedKvCache.create(client, "bits", LAYERS, KV_HEADS,
        HEAD_DIM, 2000, DType.F16, TILE, new DistributedKvCache.Options(2, 3, 1));
         DistributedAttention att = DistributedAttention.create(cache, HEADS)) {
      ShardReference ref = new ShardReference(LAYERS, KV_HEADS, HEAD_DIM, DType.F16, TILE);
      ref.appendRandom(cache, rnd, 45, false); // single appends, crossing a block boundary
      ref.appendRandom(cache, rnd, 1000, true); // batched, over many blocks of every shard
      assertEquals(1045, cache.length(1));
      float[] out = new float[HEADS * HEAD_DIM];
      for (int keys : new int[] {1, 31, 33, 97, 96 * 3 + 5, 1045}) {
        for (AttentionConfig mode : MODES) {
          for (int layer = 0; layer < LAYERS; layer++) {
            float[] q = ShardReference.query(rnd, HEADS * HEAD_DIM);
            att.decode(layer, q, out, keys, mode);
            float[] want = ref.splitK(cache.striping(), layer, q, HEADS, keys, att.report()::shardConfig);
            String what = "seed=" + seed + " keys=" + keys + " mode=" + mode.mode() + " layer=" + layer;
            assertArrayEquals(want, out, 0f, what);
            if (mode.mode() == hflash.engine.AttentionMode.EXACT) {
              float[] local = ref.local(layer, q, HEADS, keys);
              assertTrue(relErr(out, local) < 2e-6, what + " err=" + relErr(out, local));
            }
            if (mode.mode() == hflash.engine.AttentionMode.CERTIFIED) {
              assertWithinBounds(out, ref.local(layer, q, HEADS, keys), att.report(), 1e-5, what);
            }
          }
        }
      }
      att.decode(0, ShardReference.query(rnd, HEADS * HEAD_DIM), out);
      ClusterReport r = att.report();
      assertEquals(3, r.membersAsked(), r.toString());
      assertEquals(1045L * KV_HEADS, r.keysScored(), r.toString());
      long positions = r.calls().stream().mapToLong(ClusterReport.MemberCall::positions).sum();
      assertEquals(1045, positions, r.toString());
      for (ClusterReport.MemberCall c : r.calls()) {
        // q (6*24 floats) and each member's part (its UUID, shards, keys, modes) out, serialised
        // once for all members; one packed state (6*26 floats) back per shard
        assertTrue(c.payloadSent() > HEADS * HEAD_DIM * 4
            && c.payloadSent() < HEADS * HEAD_DIM * 4 + 200 * r.membersAsked(), c.toString());
        assertTrue(c.payloadReceived() >= HEADS * (HEAD_DIM + 2) * 4L * c.shards().length, c.toString());
      }
    }
  }

  @Test
  void certifiedSkipsMembersWhoseWholeMassCannotMatterAndStatesTheGlobalBound() {
    long seed = 1304;
    SplittableRandom rnd = new SplittableRandom(seed);
    int block = 4; // tiles per block: shard s holds [128 s, 128 (s + 1)) of the first 384 positions
    try (DistributedKvCache cache = DistributedKvCache.create(client, "skip", 1, KV_HEADS,
        HEAD_DIM, 384, DType.F16, TILE, new DistributedKvCache.Options(2, 3, block));
         DistributedAttention att = DistributedAttention.create(cache, HEADS)) {
      float[] u = new float[HEAD_DIM];
      double norm = 0;
      for (int c = 0; c < HEAD_DIM; c++) {
        u[c] = (float) rnd.nextGaussian();
        norm += u[c] * u[c];
      }
      float[] q = new float[HEADS * HEAD_DIM];
      for (int h = 0; h < HEADS; h++) {
        for (int c = 0; c < HEAD_DIM; c++) {
          q[h * HEAD_DIM + c] = (float) (2 * Math.sqrt(HEAD_DIM) * u[c] / Math.sqrt(norm));
        }
      }
      // shard 0: keys along the query (scores about 12); shards 1 and 2: small keys (about 1)
      ShardReference ref = new ShardReference(1, KV_HEADS, HEAD_DIM, DType.F16, TILE);
      int row = KV_HEADS * HEAD_DIM;
      float[] k = new float[384 * row], v = new float[384 * row];
      for (int p = 0; p < 384; p++) {
        for (int i = 0; i < row; i++) {
          k[p * row + i] = DType.F16.round(p < 128
              ? (float) (6 * u[i % HEAD_DIM] / Math.sqrt(norm) + 0.01 * rnd.nextGaussian())
              : (float) (0.05 * rnd.nextGaussian()));
          v[p * row + i] = DType.F16.round((float) rnd.nextGaussian());
        }
        ref.k.getFirst().add(java.util.Arrays.copyOfRange(k, p * row, (p + 1) * row));
        ref.v.getFirst().add(java.util.Arrays.copyOfRange(v, p * row, (p + 1) * row));
      }
      cache.append(0, 384, k, v);
      float[] out = new float[HEADS * HEAD_DIM];
      att.decode(0, q, out, AttentionConfig.exact());
      assertEquals(3, att.report().membersAsked(), att.report().toString());
      float[] exact = out.clone();
      att.decode(0, q, out, AttentionConfig.certified(1e-3));
      ClusterReport r = att.report();
      assertEquals(2, r.shardsSkipped(), "seed=" + seed + " " + r);
      assertEquals(1, r.membersAsked(), "seed=" + seed + " " + r);
      assertTrue(r.asked(0) && !r.asked(1) && !r.asked(2), r.toString());
      assertArrayEquals(ref.splitK(cache.striping(), 0, q, HEADS, 384, r::shardConfig), out, 0f,
          "seed=" + seed);
      for (int h = 0; h < HEADS; h++) {
        assertTrue(r.errorBound(h) > 0 && r.rho(h) <= 1e-3, "seed=" + seed + " head " + h + " " + r);
      }
      assertWithinBounds(out, exact, r, 0, "seed=" + seed);
      float[] certified = out.clone();

      // budgeted: the whole budget goes to the shard whose bound matters, none to the others
      AttentionConfig budgeted = AttentionConfig.budgetedTiles(3);
      att.decode(0, q, out, budgeted);
      r = att.report();
      assertEquals(budgeted, r.shardConfig(0), r.toString());
      assertTrue(r.shardConfig(1) == null && r.shardConfig(2) == null, r.toString());
      assertEquals(1, r.membersAsked(), r.toString());
      assertEquals(2, r.shardsSkipped(), r.toString());
      assertEquals(3L * KV_HEADS, r.tilesRead(), r.toString());
      assertArrayEquals(ref.splitK(cache.striping(), 0, q, HEADS, 384, r::shardConfig), out, 0f,
          "seed=" + seed);
      assertWithinBounds(out, exact, r, 0, "seed=" + seed + " budgeted");
      float[] budget = out.clone();

      // a coordinator that attaches rebuilds the shards' summaries from the members: it asks the
      // same members and gives the same bits
      cache.detach();
      try (DistributedKvCache again = DistributedKvCache.attach(client, "skip");
           DistributedAttention att2 = DistributedAttention.create(again, HEADS)) {
        att2.decode(0, q, out, AttentionConfig.certified(1e-3));
        assertArrayEquals(certified, out, 0f, "seed=" + seed + " certified after attach");
        assertEquals(1, att2.report().membersAsked(), att2.report().toString());
        assertTrue(att2.report().asked(0) && att2.report().shardsSkipped() == 2, att2.report().toString());
        att2.decode(0, q, out, budgeted);
        assertArrayEquals(budget, out, 0f, "seed=" + seed + " budgeted after attach");
        assertEquals(budgeted, att2.report().shardConfig(0), att2.report().toString());
        assertEquals(2, att2.report().shardsSkipped(), att2.report().toString());
      }
    }
  }

  @Test
  void aMemberSideErrorReachesTheCallerUnchangedAndIsNotRetried() {
    long seed = 1305;
    try (DistributedKvCache cache = DistributedKvCache.create(client, "rejected", 1, KV_HEADS,
        HEAD_DIM, 200, DType.F16, TILE, new DistributedKvCache.Options(2, 3, 1));
         DistributedAttention att = DistributedAttention.create(cache, HEADS)) {
      SplittableRandom rnd = new SplittableRandom(seed);
      new ShardReference(1, KV_HEADS, HEAD_DIM, DType.F16, TILE).appendRandom(cache, rnd, 100, true);
      Placement before = cache.placement();
      // the primary's copy of shard 0 is replaced by one of another head size (a bug on that
      // member): it rejects the request as a local call would, with an IllegalArgumentException
      ShardStore store = cluster.member(before.owners().get(0).getFirst()).store();
      store.drop("rejected", 0);
      store.create("rejected", 0, new hflash.memory.KvCacheLayout(1, KV_HEADS, HEAD_DIM / 2, 100,
          DType.F16, TILE));
      float[] out = new float[HEADS * HEAD_DIM];
      var e = assertThrows(IllegalArgumentException.class,
          () -> att.decode(0, ShardReference.query(rnd, HEADS * HEAD_DIM), out));
      assertEquals("q length differs from numHeads*headDim: " + HEADS * HEAD_DIM + "!="
          + HEADS * HEAD_DIM / 2, e.getMessage());
      assertEquals(0, cache.failovers(), "not retried on the other copy");
      assertEquals(before, cache.placement(), "the member is not dropped");
    }
  }

  /** Per head, ||out_h - exact_h|| <= the report's errorBound(h) + slack. */
  static void assertWithinBounds(float[] out, float[] exact, ClusterReport r, double slack, String what) {
    for (int h = 0; h < HEADS; h++) {
      double e = 0;
      for (int c = h * HEAD_DIM; c < (h + 1) * HEAD_DIM; c++) {
        e += (double) (out[c] - exact[c]) * (out[c] - exact[c]);
      }
      assertTrue(Math.sqrt(e) <= r.errorBound(h) + slack, what + " head " + h + " error "
          + Math.sqrt(e) + " > bound " + r.errorBound(h));
    }
  }

  static double relErr(float[] a, float[] b) {
    double num = 0, den = 0;
    for (int i = 0; i < a.length; i++) {
      num += (double) (a[i] - b[i]) * (a[i] - b[i]);
      den += (double) b[i] * b[i];
    }
    return Math.sqrt(num / den);
  }

  @Test
  void truncateRewindsEveryShardAndRefillsTheSameWay() {
    long seed = 1302;
    SplittableRandom rnd = new SplittableRandom(seed);
    try (DistributedKvCache cache = DistributedKvCache.create(client, "trunc", LAYERS, KV_HEADS,
        HEAD_DIM, 600, DType.BF16, TILE, new DistributedKvCache.Options(2, 0, 2));
         DistributedAttention att = DistributedAttention.create(cache, HEADS)) {
      ShardReference ref = new ShardReference(LAYERS, KV_HEADS, HEAD_DIM, DType.BF16, TILE);
      ref.appendRandom(cache, rnd, 300, true);
      cache.truncate(130);
      ref.truncate(130);
      assertEquals(130, cache.length(0));
      ref.appendRandom(cache, rnd, 70, true);
      float[] q = ShardReference.query(rnd, HEADS * HEAD_DIM);
      float[] out = new float[HEADS * HEAD_DIM];
      att.decode(1, q, out);
      assertArrayEquals(ref.splitK(cache.striping(), 1, q, HEADS, 200, AttentionConfig.exact()), out, 0f,
          "seed=" + seed);
    }
  }

  @Test
  void badRequestsFailWithTheLocalMessagesOnTheCoordinatorAndOnTheMember() throws Exception {
    try (DistributedKvCache cache = DistributedKvCache.create(client, "bad", 1, KV_HEADS, HEAD_DIM,
        100, DType.F16, TILE);
         DistributedAttention att = DistributedAttention.create(cache, HEADS)) {
      float[] row = new float[KV_HEADS * HEAD_DIM];
      cache.append(0, row, row);
      float[] q = new float[HEADS * HEAD_DIM];
      float[] out = new float[HEADS * HEAD_DIM];
      q[3] = Float.NaN;
      var e = assertThrows(IllegalArgumentException.class, () -> att.decode(0, q, out));
      assertEquals("non-finite value at q[3]=NaN", e.getMessage());
      // the same request sent straight to a member is rejected there with the local message
      String owner = cache.placement().owners().get(0).getFirst();
      var direct = new ShardTasks.Decode("bad", 0, HEADS, 0.2f, new int[] {0}, new int[] {1},
          new AttentionConfig[] {AttentionConfig.exact()}, q);
      var ee = assertThrows(ExecutionException.class, () -> cache.submit(owner, direct).get());
      assertEquals("non-finite value at q[3]=NaN", ee.getCause().getMessage());
      var tooMany = new ShardTasks.Decode("bad", 0, HEADS, 0.2f, new int[] {0}, new int[] {2},
          new AttentionConfig[] {AttentionConfig.exact()}, new float[HEADS * HEAD_DIM]);
      ee = assertThrows(ExecutionException.class, () -> cache.submit(owner, tooMany).get());
      assertEquals("keys out of range [0, 1]: 2 (layer=0)", ee.getCause().getMessage());
      q[3] = 0;
      var ioobe = assertThrows(IndexOutOfBoundsException.class, () -> att.decode(0, q, out, 2,
          AttentionConfig.exact()));
      assertEquals("keys out of range [0, 1]: 2 (layer=0)", ioobe.getMessage());
      var shape = assertThrows(IllegalArgumentException.class, () -> att.decode(0, new float[5], out));
      assertEquals("q length differs from numHeads*headDim: 5!=144", shape.getMessage());
      float[] big = new float[KV_HEADS * HEAD_DIM];
      big[7] = 1e6f;
      var range = assertThrows(IllegalArgumentException.class, () -> cache.append(0, big, row));
      assertEquals("non-finite or out-of-range f16 value at k[7]=1000000.0", range.getMessage());
      assertEquals(1, cache.length(0));
      assertThrows(UnsupportedOperationException.class,
          () -> att.decode(0, q, out, AttentionConfig.streaming(4, 16)));
      var full = assertThrows(IllegalStateException.class,
          () -> cache.append(0, 100, new float[100 * row.length], new float[100 * row.length]));
      assertEquals("cache full: 1 + 100 > capacity 100 (layer=0)", full.getMessage());
    }
  }

  @Test
  void aCoordinatorThatDetachesIsReplacedByOneThatAttaches() {
    long seed = 1303;
    SplittableRandom rnd = new SplittableRandom(seed);
    ShardReference ref = new ShardReference(LAYERS, KV_HEADS, HEAD_DIM, DType.F32, TILE);
    DistributedKvCache first = DistributedKvCache.create(client, "attach", LAYERS, KV_HEADS,
        HEAD_DIM, 400, DType.F32, TILE);
    ref.appendRandom(first, rnd, 250, true);
    Striping st = first.striping();
    first.detach(); // the coordinator goes away; shards and placement stay
    assertThrows(IllegalStateException.class, () -> first.length(0));
    HazelcastInstance second = cluster.client();
    try (DistributedKvCache again = DistributedKvCache.attach(second, "attach");
         DistributedAttention att = DistributedAttention.create(again, HEADS)) {
      assertEquals(250, again.length(0));
      assertEquals(st, again.striping());
      float[] q = ShardReference.query(rnd, HEADS * HEAD_DIM);
      float[] out = new float[HEADS * HEAD_DIM];
      att.decode(0, q, out);
      assertArrayEquals(ref.splitK(st, 0, q, HEADS, 250, AttentionConfig.exact()), out, 0f, "seed=" + seed);
    }
    var e = assertThrows(IllegalArgumentException.class, () -> DistributedKvCache.attach(second, "attach"));
    assertEquals("no distributed cache named attach", e.getMessage());
    for (ClusterMember m : cluster.members) {
      assertEquals(0, m.store().replicasOf("attach").size(), "close drops every copy");
    }
  }

  @Test
  void onlyMemberFailuresAreRetriedOnAnotherCopy() {
    assertTrue(Calls.isMemberFailure(new com.hazelcast.core.MemberLeftException("gone")));
    assertTrue(Calls.isMemberFailure(new com.hazelcast.spi.exception.TargetNotMemberException("not a member")));
    assertTrue(Calls.isMemberFailure(new com.hazelcast.core.OperationTimeoutException("timed out")));
    assertTrue(Calls.isMemberFailure(new IllegalStateException(new java.io.IOException(
        Calls.CLIENT_NO_CONNECTION + " 7f3e")))); // how the client reports a target it lost
    assertTrue(Calls.isMemberFailure(new ShardUnavailableException("member holds no shard 1 of c")));
    // errors of the request or bugs: every copy would give them, the caller gets them unchanged
    assertFalse(Calls.isMemberFailure(new IllegalArgumentException("q length differs")));
    assertFalse(Calls.isMemberFailure(new IllegalStateException(new java.io.IOException("disk full"))));
    assertFalse(Calls.isMemberFailure(new IndexOutOfBoundsException("keys out of range")));
  }

  @Test
  void nonLoopbackAddressesAreRefusedWithoutTheFlag() {
    var e = assertThrows(IllegalArgumentException.class,
        () -> ClusterSetup.MemberOptions.loopback("c", 5701, List.of("10.1.2.3:5701")));
    assertEquals("refusing a non-loopback address without --allow-remote (the open-source engine"
        + " has no authentication or TLS): 10.1.2.3", e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new ClusterSetup.MemberOptions("c",
        "192.168.7.7", 5701, List.of(), 1, false, 1));
    new ClusterSetup.MemberOptions("c", "192.168.7.7", 5701, List.of(), 1, true, 1); // explicit flag
  }

  @Test
  void stripingIsAPrefixOfEveryShard() {
    Striping one = new Striping(3, 64);
    assertEquals(List.of(new Striping.Segment(0, 4)), one.widen(0).segments(), "nothing stored yet: widened in place");
    Striping joined = one.widen(600).widen(1600); // members joined at lengths 600 and 1600
    assertEquals(List.of(new Striping.Segment(0, 3), new Striping.Segment(640, 4),
        new Striping.Segment(1600, 5)), joined.segments());
    for (Striping st : List.of(one, joined)) {
      int[] seen = new int[st.shards()];
      for (int p = 0; p < 5000; p++) {
        int s = st.shardOf(p);
        assertEquals(seen[s], st.local(p), "p=" + p + " " + st);
        assertEquals(p, st.global(s, seen[s]), st.toString());
        seen[s]++;
        for (int t = 0; t < st.shards(); t++) {
          assertEquals(seen[t], st.shardLength(p + 1, t), "p=" + p + " shard=" + t + " " + st);
        }
      }
    }
    assertEquals(0, joined.shardOf(639)); // block 9 of the first segment
    assertEquals(3, joined.shardOf(640 + 3 * 64));
    // capacity: a shard added later never raises an older shard's count
    for (int t = 0; t < 3; t++) {
      assertTrue(joined.shardLength(100_000, t) <= one.shardLength(100_000, t), "shard " + t);
    }
  }

  @Test
  void theBudgetSplitFollowsTheBoundsAndAddsUpToTheBudget() {
    // weights: per shard, its largest mass bound relative to the heaviest shard of each head
    double[] w = BudgetSplit.weights(new double[][] {{0, 5}, {0, -40}, {Double.NEGATIVE_INFINITY,
        Double.NEGATIVE_INFINITY}, {-1, 5}});
    assertArrayEquals(new double[] {1, 1, 0, 1}, w, 1e-12); // shard 1 matters for head 0
    w = BudgetSplit.weights(new double[][] {{3}, {-30}, {3 + Math.log(0.5)}});
    assertArrayEquals(new double[] {1, Math.exp(-33), 0.5}, w, 1e-15);
    long[] caps = {100, 100, 100};
    assertArrayEquals(new long[] {7, 0, 3}, BudgetSplit.apportion(10, w, caps)); // negligible: none
    assertArrayEquals(new long[] {67, 0, 33}, BudgetSplit.apportion(100, w, caps));
    // a capped shard passes the rest on; the sum stays the budget while there is room
    assertArrayEquals(new long[] {4, 0, 6}, BudgetSplit.apportion(10, w, new long[] {4, 100, 100}));
    assertArrayEquals(new long[] {4, 2, 5}, BudgetSplit.apportion(20, w, new long[] {4, 2, 5}));
    // equal weights, ties to the lower shard; deterministic
    long[] even = BudgetSplit.apportion(7, new double[] {1, 1, 1}, caps);
    assertArrayEquals(new long[] {3, 2, 2}, even);
    assertArrayEquals(even, BudgetSplit.apportion(7, new double[] {1, 1, 1}, caps));
    SplittableRandom rnd = new SplittableRandom(1306);
    for (int i = 0; i < 200; i++) {
      int n = 1 + rnd.nextInt(6);
      double[] ws = new double[n];
      long[] cs = new long[n];
      long room = 0;
      for (int s = 0; s < n; s++) {
        ws[s] = rnd.nextInt(4) == 0 ? 0 : Math.exp(-20 * rnd.nextDouble());
        cs[s] = rnd.nextInt(50);
        room += ws[s] > 0 ? cs[s] : 0;
      }
      long total = 1 + rnd.nextInt(120);
      long[] got = BudgetSplit.apportion(total, ws, cs);
      long sum = 0;
      for (int s = 0; s < n; s++) {
        assertTrue(got[s] >= 0 && got[s] <= cs[s] && (ws[s] > 0 || got[s] == 0), "seed=1306 case " + i);
        sum += got[s];
      }
      assertEquals(Math.min(total, room), sum, "seed=1306 case " + i);
    }
  }
}
