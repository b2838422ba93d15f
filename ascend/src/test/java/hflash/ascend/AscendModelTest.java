package hflash.ascend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.ascend.TaskGraph.Lane;
import hflash.ascend.TaskGraph.Op;
import hflash.engine.AttentionMode;
import hflash.memory.DType;
import org.junit.jupiter.api.Test;

/** Cases with known answers: the model must reproduce them. */
class AscendModelTest {

  private static final AscendParams P = AscendParams.ascend910b();

  @Test
  void purelyBandwidthBoundScheduleLandsWithinFivePercentOfTheRoofline() {
    // 24 cores each streaming 64 x 64 KiB from HBM, nothing else: bandwidth is the only limit
    TaskGraph g = new TaskGraph(P.cores());
    for (int c = 0; c < P.cores(); c++) {
      for (int i = 0; i < 64; i++) {
        g.transfer(c, Lane.DMA_IN, Op.LOAD_K, 65536, true, -1, null, null);
      }
    }
    Simulator.Run run = Simulator.run(g, P);
    double roofline = g.hbmBytes() / P.hbmBytesPerNs();
    double ratio = (run.makespanNs() - P.launchNs()) / roofline;
    assertTrue(ratio >= 1 && ratio <= 1.05, "stream/roofline = " + ratio);
  }

  @Test
  void exactModeAtLongContextIsHbmBoundAndItsGapToTheRooflineIsTheExposedLatency() {
    // exact, n = 262144: HBM-bound, but 2 buffers of L1-sized cube rounds leave part of each
    // load's latency exposed (docs/ascend.md); with the latency gone it is within 5 %
    Shape s = new Shape(262144, 32, 8, 128, DType.F16);
    TilePlan plan = TilePlan.choose(P, s, 2);
    Schedule.HeadWork w = Schedule.HeadWork.exact(s.context() / plan.tileTokens());
    AscendModel.Prediction pr = AscendModel.predict(P, s, AttentionMode.EXACT, w, plan,
        Schedule.Mapping.NOTE, Schedule.Path.CUBE);
    assertEquals("hbm", pr.bound());
    assertTrue(pr.predictedUs() / pr.rooflineUs() < 1.25, pr.toString());
    AscendParams fast = P.withAll("hbmLatencyNs=1,l2LatencyNs=1,syncNs=1");
    AscendModel.Prediction ideal = AscendModel.predict(fast, s, AttentionMode.EXACT, w, plan,
        Schedule.Mapping.NOTE, Schedule.Path.CUBE);
    assertTrue(ideal.predictedUs() / ideal.rooflineUs() <= 1.05, ideal.toString());
  }

  /** One core: load (b bytes) then compute (c ns) per tile; the load of tile j waits for buffer j - B. */
  private static TaskGraph loadCompute(int tiles, long bytes, double computeNs, int buffers) {
    TaskGraph g = new TaskGraph(1);
    int[] comp = new int[tiles];
    for (int j = 0; j < tiles; j++) {
      int free = j - buffers >= 0 ? comp[j - buffers] : -1;
      int in = g.transfer(0, Lane.DMA_IN, Op.LOAD_K, bytes, true, j % buffers, TaskGraph.ids(free), null);
      comp[j] = g.compute(0, Lane.VEC2, Op.ACCUMULATE, computeNs, j % buffers, TaskGraph.ids(in), null);
    }
    return g;
  }

  @Test
  void withoutDoubleBufferingDmaAndComputeSerialiseExactly() {
    int tiles = 50;
    long bytes = 32768;
    double c = 1000; // longer than a load plus its latency, so two buffers hide the loads
    double load = P.dmaIssueNs() + bytes / P.dmaCoreBytesPerNs() + P.hbmLatencyNs();
    Simulator.Run single = Simulator.run(loadCompute(tiles, bytes, c, 1), P);
    assertEquals(P.launchNs() + tiles * (load + c), single.makespanNs(), 1e-6);
    // ping-pong: after the first load, the compute lane never waits (c > issue + transfer)
    Simulator.Run pingPong = Simulator.run(loadCompute(tiles, bytes, c, 2), P);
    assertEquals(P.launchNs() + load + tiles * c, pingPong.makespanNs(), 1e-6);
  }

  @Test
  void computeBoundCaseFollowsTheVectorThroughput() {
    // one core, one KV head with 16 query heads, all exact work on unit 2: the vector unit bounds
    AscendParams p = P.with("cores", 1);
    Shape s = new Shape(16384, 16, 1, 128, DType.F16);
    TilePlan plan = TilePlan.choose(p, s, 2);
    int tiles = s.context() / plan.tileTokens();
    Schedule.Spec spec = new Schedule.Spec(s, AttentionMode.EXACT, Schedule.HeadWork.exact(tiles),
        plan, Schedule.Mapping.NOTE, Schedule.Path.VECTOR);
    AscendModel.Prediction pr = AscendModel.predict(p, s, AttentionMode.EXACT, spec.work(), plan,
        Schedule.Mapping.NOTE, Schedule.Path.VECTOR);
    assertEquals("vector", pr.bound());
    double perTile = costs(p, spec);
    double expected = tiles * perTile;
    double ratio = (pr.predictedUs() * 1000 - p.launchNs()) / expected;
    assertTrue(ratio >= 1 && ratio <= 1.03, "predicted/vector-throughput = " + ratio);
  }

  /** Unit 2's busy time per tile, from the schedule's own cost functions. */
  private static double costs(AscendParams p, Schedule.Spec spec) {
    TaskGraph g = Schedule.build(p, spec);
    double vec = 0;
    int n = 0;
    for (int t = 0; t < g.size(); t++) {
      if (g.lane(t) == Lane.VEC2) {
        vec += g.duration(t);
        if (g.op(t) == Op.ACCUMULATE) {
          n++;
        }
      }
    }
    return vec / n;
  }

  @Test
  void unifiedBufferCheckRejectsOversizeTiles() {
    Shape s = new Shape(4096, 32, 8, 128, DType.F16);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> TilePlan.of(P, s, 256, 2));
    assertEquals("K and V tiles of 256 keys x 2 buffers need 291072 bytes of unified buffer,"
        + " more than 196608", e.getMessage());
    assertEquals(128, TilePlan.choose(P, s, 2).tileTokens());
    assertEquals(155904, TilePlan.unit2Bytes(s, 128, 2)); // docs/ascend.md shows this sum
  }

  @Test
  void parametersCarrySourcesAndOverridesAreChecked() {
    for (AscendParams.Param q : P.all()) {
      assertTrue(!q.source().isBlank() && !q.unit().isBlank(), q.name());
    }
    assertEquals(1200, P.withAll("hbmGBps=1200").param("hbmGBps").value());
    assertThrows(IllegalArgumentException.class, () -> P.with("nope", 1));
    assertThrows(IllegalArgumentException.class, () -> P.with("syncNs", -1));
  }

  @Test
  void sameInputsGiveTheSamePrediction() {
    Shape s = new Shape(8192, 32, 8, 128, DType.F16);
    TilePlan plan = TilePlan.choose(P, s, 2);
    Schedule.HeadWork w = new Schedule.HeadWork(64, 10, 0, 0, 64);
    AscendModel.Prediction a = AscendModel.predict(P, s, AttentionMode.CERTIFIED, w, plan, Schedule.Mapping.NOTE, null);
    AscendModel.Prediction b = AscendModel.predict(P, s, AttentionMode.CERTIFIED, w, plan, Schedule.Mapping.NOTE, null);
    assertEquals(a.predictedUs(), b.predictedUs());
    assertTrue(a.hbmBytes() < s.kvBytes(), "a certified call opening 10 of 64 tiles reads less than exact");
  }
}
