package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

/**
 * {@code member} and {@code cluster-bench}: the integration test with separate member JVMs on
 * loopback (real processes started from this JVM's class path, killed with SIGKILL mid-loop), and
 * the argument checks that never start a member.
 */
class ClusterCommandsTest {

  @Test
  void clusterBenchWithTwoMemberJvmsSurvivesAKilledMemberBitForBit() throws Exception {
    // processes, sockets and failover, not kernels: once, in the vector run
    assumeTrue("vector".equals(System.getProperty("hflash.testProvider")),
        "the member-JVM integration test runs in the vector execution only");
    CliRun r = CliRun.of("cluster-bench", "--members", "2", "--replicas", "2", "--context", "3000",
        "--heads", "4", "--kv-heads", "2", "--dim", "32", "--dtype", "f16", "--tile", "32",
        "--warmup", "2", "--iterations", "4", "--kill-member-after", "0.2", "--json");
    assertEquals(0, r.code(), r::toString);
    JsonNode o = new ObjectMapper().readTree(r.out());
    assertEquals(2, o.get("members").asInt(), r.out());
    assertEquals(2, o.get("replicas").asInt(), r.out());
    assertEquals("exact", o.get("mode").asText(), r.out());
    assertEquals(0, o.get("mismatches").asInt(), "outputs after the kill differ from the no-fault run: " + r.out());
    assertEquals(0, o.get("lostPositions").asLong(), r.out());
    assertTrue(o.get("relErrVsLocal").asDouble() < 1e-5, r.out());
    assertTrue(o.get("failovers").asInt() + o.get("membersAsked").asInt() >= 1, r.out());
    // per member per layer: q out (4*32 floats), a packed state back (4*34 floats) per shard it
    // serves (both once the other member is dead), plus the fields
    long payload = o.get("payloadBytesPerLayer").asLong();
    assertTrue(payload > (4 * 32 + 4 * 34) * 4 && payload < (4 * 32 + 2 * 4 * 34) * 4 + 400, r.out());
    assertEquals(3000L * 2 * 32 * 2 * 2, o.get("bytesRead").asLong(), "K and V of every position: " + r.out());
    for (String f : new String[] {"medianMs", "localMedianMs", "overheadMs", "rpcMedianUs", "failovers"}) {
      assertTrue(o.has(f), f + " missing: " + r.out());
    }
  }

  @Test
  void memberRefusesANonLoopbackAddressWithoutTheFlag() {
    CliRun.of("member", "--cluster", "c", "--members", "10.9.8.7:5701")
        .assertUsageError("hflash member: ", "refusing a non-loopback address without --allow-remote");
    CliRun.of("cluster-bench", "--members", "2", "--replicas", "3")
        .assertUsageError("hflash cluster-bench: ", "--replicas must be at most --members: 3 > 2");
  }
}
