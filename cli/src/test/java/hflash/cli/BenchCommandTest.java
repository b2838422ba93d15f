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
    checkRoofline(json, 4L * 300 * (2 * 16 + 8), r);
  }

  /**
   * {@code --dtype f16,q8_0,q4_0}: one JSON line per dtype, same workload, every single-dtype field kept, plus
   * speedupVsFirstDtype and bytesPerToken; relError is over the stored (dequantized) values, float rounding only.
   */
  @Test
  void dtypeListTimesTheDtypesInAlternatingIterations() throws Exception {
    CliRun r = CliRun.of("bench", "--context", "300", "--heads", "4", "--kv-heads", "2", "--dim", "64", "--dtype",
        "f16,q8_0,q4_0", "--kv-rotation", "hadamard", "--mode", "exact", "--json");
    assertEquals(0, r.code(), r::toString);
    String[] lines = r.out().strip().split("\n");
    assertEquals(3, lines.length, r::toString);
    String[] ids = {"f16", "q8_0", "q4_0"};
    // per position per layer: kvHeads * (2 rows + row / 8 + summaries (2d * lo/hi bytes + 4d + 12) * 17/16 / 128)
    long[] rows = {128, 2 * 34, 2 * 18};
    long[] boxBytes = {2, 4, 4};
    for (int i = 0; i < 3; i++) {
      JsonNode json = new ObjectMapper().readTree(lines[i]);
      for (String field : CONTRACT) {
        assertTrue(json.has(field), field + " missing: " + lines[i]);
      }
      assertEquals(ids[i], json.get("dtype").asText());
      assertEquals("hadamard", json.get("kvRotation").asText());
      assertEquals(2L * 300 * 2 * rows[i], json.get("bytesRead").asLong(), lines[i]);
      double expect = 2 * (2.0 * rows[i] + rows[i] / 8.0 + (2 * 64 * boxBytes[i] + 4 * 64 + 12) * 17.0 / 16 / 128);
      assertEquals(expect, json.get("bytesPerToken").asDouble(), 1e-9, lines[i]);
      double speedup = json.get("speedupVsFirstDtype").asDouble();
      assertTrue(i == 0 ? speedup == 1.0 : speedup > 0, lines[i]);
      assertTrue(json.get("relError").asDouble() < 1e-5, lines[i]);
      assertEquals("[\"f16\",\"q8_0\",\"q4_0\"]", json.get("dtypesTimedInTurn").toString(), lines[i]);
      String variant = hflash.tiles.TileKernelsProvider.get().nativeVariant();
      assertEquals(variant, json.get("nativeLibrary").isNull() ? null : json.get("nativeLibrary").asText(), lines[i]);
      assertEquals(hflash.tiles.NativeKernels.status(), json.get("nativeLibraryStatus").asText(), lines[i]);
    }
  }

  /**
   * The roofline fields: fmas counted from the plan, the compute probe, and rooflineMs,
   * ratioToRoofline and limitedBy derived from them and the stream probe as documented.
   */
  static void checkRoofline(JsonNode json, long expectedFmas, CliRun r) {
    if (expectedFmas >= 0) {
      assertEquals(expectedFmas, json.get("fmas").asLong(), r::toString);
    }
    double compute = json.get("computeProbeGFmas").asDouble();
    assertTrue(compute > 0, r::toString);
    double memoryMs = json.get("bytesRead").asDouble() / (json.get("probeGBps").asDouble() * 1e6);
    double computeMs = json.get("fmas").asDouble() / (compute * 1e6);
    double roofline = json.get("rooflineMs").asDouble();
    assertEquals(Math.max(memoryMs, computeMs), roofline, 1e-9 * roofline, r::toString);
    assertEquals(roofline / json.get("medianMs").asDouble(), json.get("ratioToRoofline").asDouble(), 1e-9, r::toString);
    assertEquals(computeMs > memoryMs ? "compute" : "memory", json.get("limitedBy").asText(), r::toString);
    assertEquals(memoryMs, json.get("memoryMs").asDouble(), 1e-9 * memoryMs, r::toString);
    assertEquals(computeMs, json.get("computeMs").asDouble(), 1e-9 * computeMs, r::toString);
  }

  /** The roofline fields, right after the mode fields, in their contract order. */
  static final String[] ROOFLINE_FIELDS = {"fmas", "computeProbeGFmas", "rooflineMs", "ratioToRoofline", "limitedBy"};

  /** The mode fields, after the contract fields, in their contract order. */
  static final String[] MODE_FIELDS = {
    "workload", "epsilon", "tiles", "bytesFraction", "oracleBytesFraction", "speedupVsExact", "relErrMax", "bound"
  };

  @Test
  void certifiedJsonHasEveryFieldAndAgreesWithExact() throws Exception {
    CliRun r =
        CliRun.of("bench", "--context", "300", "--heads", "4", "--kv-heads", "2", "--dim", "16", "--mode", "certified",
            "--epsilon", "1e-2", "--warmup", "3", "--iterations", "3", "--json");
    assertEquals(0, r.code(), r::toString);
    JsonNode json = new ObjectMapper().readTree(r.out());
    var names = json.fieldNames();
    for (String field : CONTRACT) {
      assertEquals(field, names.next(), "contract fields come first, in the issue's order");
    }
    for (String field : MODE_FIELDS) {
      assertEquals(field, names.next(), "then the mode fields, in contract order");
    }
    for (String field : ROOFLINE_FIELDS) {
      assertEquals(field, names.next(), "then the roofline fields, in contract order");
    }
    checkRoofline(json, -1, r);
    for (String field : new String[] {"workload", "epsilon", "bytesFraction", "oracleBytesFraction",
        "speedupVsExact", "relErrMax", "bound"}) {
      assertTrue(json.get(field).isNumber() || json.get(field).isTextual(), () -> field + " is null: " + r.out());
    }
    assertTrue(json.get("tiles").isNull(), "tiles is the budgeted mode's budget: " + r.out());
    assertEquals("certified", json.get("mode").asText());
    assertEquals("random", json.get("workload").asText());
    assertEquals(1e-2, json.get("epsilon").asDouble());
    assertTrue(json.get("speedupVsExact").asDouble() > 0, r::toString);
    assertEquals(json.get("exactMedianMs").asDouble() / json.get("medianMs").asDouble(),
        json.get("speedupVsExact").asDouble(), 1e-9, r::toString);
    // bytes: every byte read (K, V, summaries) over exact's K+V bytes; the oracle opens at most everything
    long exactBytes = 2L * 300 * 2 * 16 * 4;
    assertEquals((double) json.get("bytesRead").asLong() / exactBytes, json.get("bytesFraction").asDouble(), 1e-12);
    double oracle = json.get("oracleBytesFraction").asDouble();
    assertTrue(oracle > 0 && oracle <= 1, r::toString);
    // the stated bound holds on the checked heads (float32 rounding aside)
    assertTrue(json.get("relErrMax").asDouble() <= json.get("bound").asDouble() + 1e-5, r::toString);
  }

  @Test
  void modeAllPrintsOneObjectPerMode() throws Exception {
    CliRun r =
        CliRun.of("bench", "--context", "200", "--heads", "2", "--kv-heads", "1", "--dim", "8", "--mode", "all",
            "--tiles", "2", "--warmup", "3", "--iterations", "3", "--json");
    assertEquals(0, r.code(), r::toString);
    String[] lines = r.out().strip().split("\\R");
    assertEquals(5, lines.length, r::toString);
    String[] modes = {"exact", "sampled", "certified", "budgeted", "estimated"};
    for (int i = 0; i < 5; i++) {
      JsonNode json = new ObjectMapper().readTree(lines[i]);
      assertEquals(modes[i], json.get("mode").asText(), r::toString);
      for (String field : MODE_FIELDS) {
        assertTrue(json.has(field), () -> field + " missing: " + r.out());
      }
      checkRoofline(json, i == 0 ? 2L * 200 * (2 * 8 + 8) : -1, r); // every mode has the roofline
    }
    JsonNode budgeted = new ObjectMapper().readTree(lines[3]);
    assertEquals(2, budgeted.get("tiles").asInt(), r::toString);
    assertEquals(1.0, new ObjectMapper().readTree(lines[0]).get("speedupVsExact").asDouble(), r::toString);
  }

  @Test
  void humanOutputIsATable() {
    CliRun r = CliRun.of("bench", "--context", "70", "--heads", "2", "--kv-heads", "1", "--dim", "8", "--dtype", "bf16", "--threads", "1");
    assertEquals(0, r.code(), r::toString);
    assertTrue(r.out().contains("median ms"), r::toString);
    assertTrue(r.out().contains("ratio to probe"), r::toString);
  }
}
