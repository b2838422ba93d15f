package hflash.cli;

import hflash.io.Trace;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** {@code eval} on the embedded trace (data/stories260K-seq0-256.safetensors, 5 layers x 256 rows). */
class EvalCommandTest {

  private static Path trace;

  @BeforeAll
  static void extract() throws Exception {
    trace = DemoCommand.extractTrace();
  }

  @AfterAll
  static void delete() throws Exception {
    Files.deleteIfExists(trace);
  }

  @Test
  void exactF32MatchesFloat64AndTheStoredOutput() throws Exception {
    CliRun r = CliRun.of("eval", "--trace", trace.toString(), "--mode", "exact", "--json");
    assertEquals(0, r.code(), r::toString);
    JsonNode json = new ObjectMapper().readTree(r.out());
    assertEquals(trace.toString(), json.get("trace").asText());
    assertEquals(5 * 256, json.get("rows").asInt(), r::toString);
    JsonNode exact = json.get("results").get(0);
    for (String field : new String[] {"mode", "relErrMean", "relErrMax", "keysFraction", "bytesFraction"}) {
      assertTrue(exact.has(field), () -> field + " missing: " + r.out());
    }
    assertEquals("exact", exact.get("mode").asText());
    // float32 online softmax over <= 256 keys, d = 8: a few ulps, far below this bound
    assertTrue(exact.get("relErrMax").asDouble() < 1e-5, r::toString);
    assertTrue(exact.get("relErrMean").asDouble() <= exact.get("relErrMax").asDouble(), r::toString);
    // the trace's own o is float32 attention too: the two differ by rounding only
    assertTrue(exact.get("relErrVsStoredMax").asDouble() < 1e-5, r::toString);
    assertEquals(1.0, exact.get("keysFraction").asDouble(), r::toString);
    assertEquals(1.0, exact.get("bytesFraction").asDouble(), r::toString);
    assertEquals(5, exact.get("perLayer").size(), r::toString);
  }

  /** The per-mode fields of issue 4, in its order after mode. */
  static final String[] MODE_FIELDS = {
    "mode", "relErrMean", "relErrMax", "boundMean", "boundMax", "violations", "keysFraction", "bytesFraction",
    "oracleBytesFraction", "guardFirings"
  };

  @Test
  void everyModeReportsItsBoundAndCertifiedHoldsIt(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
    Path svg = tmp.resolve("plot.svg");
    CliRun r = CliRun.of("eval", "--trace", trace.toString(), "--mode", "all", "--json", "--svg", svg.toString());
    assertEquals(0, r.code(), r::toString);
    JsonNode results = new ObjectMapper().readTree(r.out()).get("results");
    String[] modes = {"exact", "sampled", "certified", "budgeted", "estimated"};
    assertEquals(modes.length, results.size(), r::toString);
    for (int i = 0; i < modes.length; i++) {
      JsonNode m = results.get(i);
      var names = m.fieldNames();
      for (String field : MODE_FIELDS) {
        assertEquals(field, names.next(), () -> "fields in the issue's order: " + m);
        assertTrue(!m.get(field).isNull(), () -> field + " is null: " + m);
      }
      assertEquals(modes[i], m.get("mode").asText());
      assertTrue(m.get("relErrMean").asDouble() <= m.get("relErrMax").asDouble(), m::toString);
      assertTrue(m.get("boundMean").asDouble() <= m.get("boundMax").asDouble(), m::toString);
      double oracle = m.get("oracleBytesFraction").asDouble();
      assertTrue(oracle > 0 && oracle <= 1, m::toString);
      assertEquals(5, m.get("perLayer").size(), m::toString);
    }
    // the oracle is a property of the data at one epsilon: the same for every mode
    assertEquals(results.get(0).get("oracleBytesFraction").asDouble(), results.get(2).get("oracleBytesFraction").asDouble());
    JsonNode exact = results.get(0), certified = results.get(2), budgeted = results.get(3);
    assertEquals(0, exact.get("boundMax").asDouble(), r::toString);
    assertEquals(1.0, exact.get("bytesFraction").asDouble(), r::toString);
    // the certified bound holds on real data: no (row, head) beyond its bound plus float rounding
    assertEquals(0, certified.get("violations").asLong(), r::toString);
    // the estimated mode's interval covers at least its level of (row, head) pairs
    assertTrue(results.get(4).get("coverage").asDouble() >= 0.99, r::toString);
    assertEquals(0.99, results.get(4).get("confidence").asDouble(), r::toString);
    // exact reads every tile, so never less than the oracle's tiles; the median is a per-row ratio
    assertTrue(exact.get("oracleRatioMedian").asDouble() >= 1, r::toString);
    assertTrue(certified.get("oracleRatioMedian").asDouble() > 0, r::toString);
    assertEquals(1e-3, certified.get("epsilon").asDouble());
    assertEquals("5%", budgeted.get("tiles").asText());
    assertTrue(budgeted.get("keysFraction").asDouble() < 1, r::toString);
    // the plot: well-formed SVG naming the trace, a curve per mode
    String text = Files.readString(svg);
    javax.xml.parsers.DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(svg.toFile());
    assertTrue(text.contains(trace.getFileName().toString()), "title names the trace");
    for (String mode : modes) {
      assertTrue(text.contains(">" + mode + "</text>"), () -> mode + " missing from the legend");
    }
  }

  /**
   * {@code --max-error}: certified keeps every head within the target and its bound (coverage 1, no
   * violation), reports the target, and measures itself against the output-error oracle, which
   * needs fewer bytes for a looser target.
   */
  @Test
  void maxErrorKeepsEveryHeadWithinTheTarget() throws Exception {
    double[] oracle = new double[2];
    String[] targets = {"1e-1", "1e-3"};
    for (int i = 0; i < 2; i++) {
      CliRun r = CliRun.of("eval", "--trace", trace.toString(), "--mode", "certified", "--max-error", targets[i],
          "--json");
      assertEquals(0, r.code(), r::toString);
      JsonNode m = new ObjectMapper().readTree(r.out()).get("results").get(0);
      double e = Double.parseDouble(targets[i]);
      assertEquals("certified maxError=" + targets[i], m.get("label").asText(), m::toString);
      assertEquals(e, m.get("maxErrorTarget").asDouble(), m::toString);
      assertEquals(0, m.get("violations").asLong(), m::toString);
      assertEquals(1.0, m.get("coverage").asDouble(), m::toString);
      assertTrue(m.get("headRelErrMax").asDouble() <= e, m::toString);
      assertTrue(m.get("errorBoundMax").asDouble() <= e * (1 + 1e-5), m::toString);
      assertTrue(m.get("bytesFraction").asDouble() < 1, m::toString);
      oracle[i] = m.get("oracleBytesFraction").asDouble();
      assertTrue(oracle[i] > 0 && oracle[i] <= 1, m::toString);
    }
    assertTrue(oracle[0] < oracle[1], () -> "oracle at 1e-1 and 1e-3: " + java.util.Arrays.toString(oracle));
  }

  @Test
  void tableNamesEveryLayer() {
    CliRun r = CliRun.of("eval", "--trace", trace.toString());
    assertEquals(0, r.code(), r::toString);
    for (String row : new String[] {"  0 ", "  4 ", "  all "}) {
      assertTrue(r.out().contains(row), () -> row + " missing\n" + r);
    }
  }

  @Test
  void lastRowsOfALongerContext(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
    // keep q and o for the last 16 rows only: row i is then position 256 - 16 + i
    Trace t = Trace.read(trace);
    int keep = 16;
    var tensors = new java.util.LinkedHashMap<String, hflash.io.Safetensors.WriteTensor>();
    tensors.put("q", lastRows(t.q(), t, keep));
    tensors.put("k", new hflash.io.Safetensors.WriteTensor(new long[] {t.layers(), t.kvHeads(), t.positions(), t.dim()}, t.k()));
    tensors.put("v", new hflash.io.Safetensors.WriteTensor(new long[] {t.layers(), t.kvHeads(), t.positions(), t.dim()}, t.v()));
    tensors.put("o", lastRows(t.o(), t, keep));
    Path tail = tmp.resolve("tail.safetensors");
    hflash.io.Safetensors.write(tail, tensors, java.util.Map.of("scale", String.valueOf(t.scale())));
    CliRun r = CliRun.of("eval", "--trace", tail.toString(), "--json");
    assertEquals(0, r.code(), r::toString);
    JsonNode json = new ObjectMapper().readTree(r.out());
    assertEquals(5 * keep, json.get("rows").asInt(), r::toString);
    // o of row i is attention over positions 0..240+i: it matches only if rows sit at the end
    assertTrue(json.get("results").get(0).get("relErrVsStoredMax").asDouble() < 1e-5, r::toString);
  }

  private static hflash.io.Safetensors.WriteTensor lastRows(float[] src, Trace t, int keep) {
    int d = t.dim();
    float[] dst = new float[t.layers() * t.heads() * keep * d];
    for (int lh = 0; lh < t.layers() * t.heads(); lh++) {
      System.arraycopy(src, (lh * t.positions() + t.positions() - keep) * d, dst, lh * keep * d, keep * d);
    }
    return new hflash.io.Safetensors.WriteTensor(new long[] {t.layers(), t.heads(), keep, d}, dst);
  }
}
