package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

/** {@code bench --json} on a tiny shape: every contract field, with values that agree with each other. */
class BenchCommandTest {

  static final String[] CONTRACT = {
    "mode", "context", "heads", "kvHeads", "dim", "dtype", "threads", "medianMs", "p10Ms", "p90Ms",
    "bytesRead", "effectiveGBps", "probeGBps", "ratioToProbe", "relError"
  };

  @Test
  void jsonHasEveryContractField() throws Exception {
    CliRun r =
        CliRun.of("bench", "--context", "300", "--heads", "4", "--kv-heads", "2", "--dim", "16", "--dtype", "f16",
            "--threads", "2", "--mode", "exact", "--workload", "random", "--json");
    assertEquals(0, r.code(), r::toString);
    JsonNode json = new ObjectMapper().readTree(r.out());
    for (int i = 0; i < CONTRACT.length; i++) {
      String field = CONTRACT[i];
      assertTrue(json.has(field) && !json.get(field).isNull(), () -> field + " missing: " + r.out());
    }
    var names = json.fieldNames();
    for (String field : CONTRACT) {
      assertEquals(field, names.next(), "contract fields come first, in the issue's order");
    }
    assertEquals("exact", json.get("mode").asText());
    assertEquals(300, json.get("context").asInt());
    assertEquals(4, json.get("heads").asInt());
    assertEquals(2, json.get("kvHeads").asInt());
    assertEquals(16, json.get("dim").asInt());
    assertEquals("f16", json.get("dtype").asText());
    assertEquals(2, json.get("threads").asInt());
    // exact reads every K and V row once per KV head: 2 (K, V) * n * kvHeads * d * 2 bytes
    assertEquals(2L * 300 * 2 * 16 * 2, json.get("bytesRead").asLong(), r::toString);
    double p10 = json.get("p10Ms").asDouble(), median = json.get("medianMs").asDouble(), p90 = json.get("p90Ms").asDouble();
    assertTrue(0 < p10 && p10 <= median && median <= p90, r::toString);
    double effective = json.get("effectiveGBps").asDouble();
    assertEquals(json.get("bytesRead").asDouble() / (median * 1e6), effective, 1e-9 * effective, r::toString);
    assertEquals(effective / json.get("probeGBps").asDouble(), json.get("ratioToProbe").asDouble(), 1e-9, r::toString);
    // relative error against float64 over the stored f16 values: float32 rounding only
    assertTrue(json.get("relError").asDouble() < 1e-5, r::toString);
  }

  @Test
  void humanOutputIsATable() {
    CliRun r = CliRun.of("bench", "--context", "70", "--heads", "2", "--kv-heads", "1", "--dim", "8", "--dtype", "bf16", "--threads", "1");
    assertEquals(0, r.code(), r::toString);
    assertTrue(r.out().contains("median ms"), r::toString);
    assertTrue(r.out().contains("ratio to probe"), r::toString);
  }
}
