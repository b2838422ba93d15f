package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

/** {@code bench --sequences B --shared-prefix P --suffix S --json} on a tiny shape: the fields, consistent. */
class BenchSequencesTest {

  static final String[] CONTRACT = {
    "sequences", "sharedPrefix", "suffix", "dtype", "threads", "medianMs", "separateMs", "speedupVsSeparate",
    "bytesRead", "separateBytesRead", "fmas", "computeProbeGFmas", "ratioToCompute", "relError", "poolBytes",
    "separateCacheBytes"
  };

  @Test
  void jsonHasEveryContractFieldInOrder() throws Exception {
    CliRun r = CliRun.of("bench", "--sequences", "5", "--shared-prefix", "1100", "--suffix", "70", "--heads", "4",
        "--kv-heads", "2", "--dim", "16", "--dtype", "f16", "--threads", "2", "--tile", "32", "--iterations", "2",
        "--warmup", "1", "--json");
    assertEquals(0, r.code(), r::toString);
    JsonNode json = new ObjectMapper().readTree(r.out());
    var names = json.fieldNames();
    for (String field : CONTRACT) {
      assertEquals(field, names.next(), "contract fields come first, in the issue's order: " + r.out());
      assertTrue(!json.get(field).isNull(), () -> field + " is null: " + r.out());
    }
    assertEquals(5, json.get("sequences").asInt());
    assertEquals("f16", json.get("dtype").asText());
    // every sequence attends 1170 keys: 4 heads, 2d + 8 multiply-adds per key and head
    assertEquals(5L * 1170 * 4 * (2 * 16 + 8), json.get("fmas").asLong(), r::toString);
    long row = 16 * 2; // f16 row bytes
    assertEquals(5L * 1170 * 2 * 2 * row, json.get("separateBytesRead").asLong(), r::toString);
    // pages of 512: pages 0-1 of the prefix shared by all 5, the rest (76 + 70 keys) read per sequence
    assertEquals((1024L + 5 * 146) * 2 * 2 * row, json.get("bytesRead").asLong(), r::toString);
    assertEquals(2, json.get("pagesShared").asInt(), r::toString);
    double ms = json.get("medianMs").asDouble();
    assertEquals(json.get("separateMs").asDouble() / ms, json.get("speedupVsSeparate").asDouble(), 1e-9);
    assertEquals(json.get("fmas").asDouble() / (ms * 1e6) / json.get("computeProbeGFmas").asDouble(),
        json.get("ratioToCompute").asDouble(), 1e-9);
    assertTrue(json.get("relError").asDouble() < 1e-5, r::toString);
    assertTrue(json.get("poolBytes").asLong() < json.get("separateCacheBytes").asLong(), r::toString);
    assertEquals(5, json.get("perSequence").size());
    assertEquals(1170L * 2, json.get("perSequence").get(0).get("keysScored").asLong());
  }

  @Test
  void thePipelineSchedulerRunsTheBatchToo() throws Exception {
    CliRun r = CliRun.of("bench", "--sequences", "3", "--shared-prefix", "600", "--suffix", "40", "--heads", "4",
        "--kv-heads", "2", "--dim", "16", "--dtype", "f16", "--threads", "2", "--tile", "32", "--iterations", "2",
        "--warmup", "1", "--scheduler", "pipeline", "--json");
    assertEquals(0, r.code(), r::toString);
    JsonNode json = new ObjectMapper().readTree(r.out());
    assertEquals("pipeline", json.get("scheduler").asText(), r::toString);
    assertTrue(json.get("relError").asDouble() < 1e-5, r::toString);
    CliRun one = CliRun.of("bench", "--sequences", "3", "--threads", "1", "--scheduler", "pipeline");
    assertEquals(2, one.code(), one::toString);
    assertTrue(one.err().contains("needs --threads >= 2"), one::toString);
  }

  @Test
  void optionsOfOtherBenchesAreRefused() {
    CliRun r = CliRun.of("bench", "--sequences", "2", "--context", "100");
    assertEquals(2, r.code(), r::toString);
    assertTrue(r.err().contains("--context does not apply to --sequences"), r::toString);
  }
}
