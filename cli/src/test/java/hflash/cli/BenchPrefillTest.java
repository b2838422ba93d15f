package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

/** {@code bench --prefill N [--context C] --json} on tiny shapes: the fields, consistent with each other. */
class BenchPrefillTest {

  static final String[] CONTRACT = {
    "mode", "prefill", "context", "heads", "kvHeads", "dim", "dtype", "threads", "medianMs", "fmas", "gflops",
    "computeProbeGFmas", "ratioToCompute", "tokensPerSecond", "relError", "speedupVsRows"
  };

  @Test
  void jsonHasEveryContractFieldInOrder() throws Exception {
    CliRun r = CliRun.of("bench", "--prefill", "70", "--context", "45", "--heads", "4", "--kv-heads", "2", "--dim",
        "16", "--dtype", "f16", "--threads", "2", "--tile", "32", "--iterations", "2", "--json");
    assertEquals(0, r.code(), r::toString);
    JsonNode json = new ObjectMapper().readTree(r.out());
    var names = json.fieldNames();
    for (String field : CONTRACT) {
      assertEquals(field, names.next(), "contract fields come first, in the issue's order: " + r.out());
      assertTrue(!json.get(field).isNull(), () -> field + " is null: " + r.out());
    }
    assertEquals("exact", json.get("mode").asText());
    assertEquals(70, json.get("prefill").asInt());
    assertEquals(45, json.get("context").asInt());
    assertEquals("f16", json.get("dtype").asText());
    assertEquals(64, json.get("blockRows").asInt(), r::toString);
    assertTrue(json.get("prefillKernels").asText().startsWith("prefill-"), r::toString); // f16: the prefill kernels
    // causal pairs only: row i attends 45 + i + 1 keys; 4 heads; 2d + 8 per pair
    long pairs = 70L * 45 + 70L * 71 / 2;
    assertEquals(pairs * 4 * (2 * 16 + 8), json.get("fmas").asLong(), r::toString);
    double ms = json.get("medianMs").asDouble();
    assertEquals(2 * json.get("fmas").asDouble() / (ms * 1e6), json.get("gflops").asDouble(), 1e-9 * json.get("gflops").asDouble());
    assertEquals(json.get("fmas").asDouble() / (ms * 1e6) / json.get("computeProbeGFmas").asDouble(),
        json.get("ratioToCompute").asDouble(), 1e-9);
    assertEquals(70 / (ms / 1e3), json.get("tokensPerSecond").asDouble(), 1e-6 * json.get("tokensPerSecond").asDouble());
    assertEquals(json.get("rowsMs").asDouble() / ms, json.get("speedupVsRows").asDouble(), 1e-9 * json.get("speedupVsRows").asDouble());
    assertTrue(json.get("relError").asDouble() < 1e-5, r::toString);
    assertEquals(70, json.get("rowsTimed").asInt());
    assertEquals(false, json.get("rowsScaled").asBoolean());
    // tiled: each tile of the 115 keys read once per block of 64 rows, K and V, per KV head
    assertTrue(json.get("kvBytesRead").asLong() < 2L * pairs * 2 * 16 * 2 / 4, r::toString);
  }

  @Test
  void contextDefaultsToZeroAndModesPrintOneLineEach() throws Exception {
    CliRun r = CliRun.of("bench", "--prefill", "40", "--heads", "2", "--kv-heads", "1", "--dim", "8", "--tile", "32",
        "--mode", "exact,certified", "--iterations", "1", "--json");
    assertEquals(0, r.code(), r::toString);
    String[] lines = r.out().strip().split("\n");
    assertEquals(2, lines.length, r::toString);
    JsonNode certified = new ObjectMapper().readTree(lines[1]);
    assertEquals(0, certified.get("context").asInt());
    assertEquals("certified", certified.get("mode").asText());
    assertEquals(1, certified.get("blockRows").asInt(), "bounded modes run one decode call per row");
  }

  @Test
  void humanOutputSaysWhenTheRowPathIsScaled() {
    CliRun json = CliRun.of("bench", "--prefill", "50", "--heads", "1", "--kv-heads", "1", "--dim", "8", "--tile",
        "32", "--iterations", "1", "--warmup", "0", "--json");
    assertTrue(json.out().contains("\"rowsScaled\":false"), json::toString);
    CliRun r;
    System.setProperty("hflash.prefillRowsTimed", "100"); // 8192 without it: the same code path, 80x the calls
    try {
      r = CliRun.of("bench", "--prefill", "300", "--heads", "1", "--kv-heads", "1", "--dim", "8", "--tile", "32",
          "--iterations", "1", "--warmup", "0");
    } finally {
      System.clearProperty("hflash.prefillRowsTimed");
    }
    assertEquals(0, r.code(), r::toString);
    assertTrue(r.out().contains("row-by-row path timed on the first 100 rows"), r::toString);
    assertTrue(r.out().contains("scaled by causal pairs to all 300 rows"), r::toString);
    assertTrue(r.out().contains("speedup vs row-by-row"), r::toString);
  }

  @Test
  void prefillRejectsFlagsOfOtherBenches() {
    CliRun r = CliRun.of("bench", "--prefill", "8", "--decode-steps", "4");
    assertEquals(2, r.code(), r::toString);
    assertTrue(r.err().contains("--decode-steps does not apply to --prefill"), r::toString);
  }
}
