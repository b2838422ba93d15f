package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import hflash.io.Trace;
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

  /** The per-mode fields, in their contract order after mode. */
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

  // ---- masking: causal by default, bidirectional when the trace's metadata says so --------------

  /**
   * A small random trace (1 layer, 4 heads over 2 KV heads, 64 positions, the last 48 of them query
   * rows, d = 8) whose stored o is float64 attention over every key: an encoder's trace.
   */
  private static Path encoderTrace(Path dir, String name, java.util.Map<String, String> metadata) {
    int layers = 1, heads = 4, kvHeads = 2, positions = 64, rows = 48, d = 8;
    java.util.Random rnd = new java.util.Random(2024);
    float[] q = new float[layers * heads * rows * d];
    float[] k = new float[layers * kvHeads * positions * d];
    float[] v = new float[k.length];
    for (float[] a : new float[][] {q, k, v}) {
      for (int i = 0; i < a.length; i++) {
        a[i] = (float) rnd.nextGaussian();
      }
    }
    double scale = 1 / Math.sqrt(d);
    float[] o = new float[q.length];
    for (int h = 0; h < heads; h++) {
      int g = h / (heads / kvHeads);
      for (int r = 0; r < rows; r++) {
        double[] w = new double[positions];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < positions; j++) {
          double dot = 0;
          for (int c = 0; c < d; c++) {
            dot += (double) q[(h * rows + r) * d + c] * k[(g * positions + j) * d + c];
          }
          w[j] = dot * scale;
          max = Math.max(max, w[j]);
        }
        double sum = 0;
        for (int j = 0; j < positions; j++) {
          w[j] = Math.exp(w[j] - max);
          sum += w[j];
        }
        for (int c = 0; c < d; c++) {
          double acc = 0;
          for (int j = 0; j < positions; j++) {
            acc += w[j] * v[(g * positions + j) * d + c];
          }
          o[(h * rows + r) * d + c] = (float) (acc / sum);
        }
      }
    }
    var tensors = new java.util.LinkedHashMap<String, hflash.io.Safetensors.WriteTensor>();
    tensors.put("q", new hflash.io.Safetensors.WriteTensor(new long[] {layers, heads, rows, d}, q));
    tensors.put("k", new hflash.io.Safetensors.WriteTensor(new long[] {layers, kvHeads, positions, d}, k));
    tensors.put("v", new hflash.io.Safetensors.WriteTensor(new long[] {layers, kvHeads, positions, d}, v));
    tensors.put("o", new hflash.io.Safetensors.WriteTensor(new long[] {layers, heads, rows, d}, o));
    Path file = dir.resolve(name);
    hflash.io.Safetensors.write(file, tensors, metadata);
    return file;
  }

  @Test
  void bidirectionalTraceAttendsEveryKeyAndSaysSo(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
    Path file = encoderTrace(tmp, "encoder.safetensors", java.util.Map.of("attention", "bidirectional (encoder)"));
    CliRun r = CliRun.of("eval", "--trace", file.toString(), "--mode", "exact,certified", "--json");
    assertEquals(0, r.code(), r::toString);
    assertEquals("", r.err(), "no warning when the stored o agrees: " + r);
    JsonNode json = new ObjectMapper().readTree(r.out());
    assertEquals("bidirectional", json.get("attention").asText(), r::toString);
    assertTrue(json.get("storedOutputAgrees").asBoolean(), r::toString);
    for (JsonNode m : json.get("results")) {
      // every row attended to all 64 keys, as the stored o did
      assertTrue(m.get("relErrMax").asDouble() < 1e-5, r::toString);
      assertTrue(m.get("relErrVsStoredMax").asDouble() < 1e-3, r::toString);
    }
    assertTrue(json.get("results").get(0).get("storedRelErrMax").asDouble() < 1e-6, r::toString);
    // exact reads every key of every row: 48 rows x 64 keys, not the causal 17..64
    assertEquals(1.0, json.get("results").get(0).get("keysFraction").asDouble(), r::toString);

    CliRun text = CliRun.of("eval", "--trace", file.toString(), "--mode", "exact");
    assertEquals(0, text.code(), text::toString);
    assertTrue(text.out().contains("attention: bidirectional (metadata attention=bidirectional (encoder)): every query"
        + " row attends to every key"), text::toString);
  }

  @Test
  void storedOutputThatDisagreesWithTheMaskingIsWarnedInOneLine(@org.junit.jupiter.api.io.TempDir Path tmp)
      throws Exception {
    // the same encoder trace without the metadata: evaluated causally, its o cannot match
    Path file = encoderTrace(tmp, "undeclared.safetensors", java.util.Map.of("attention", "bidirectionally-ish? no"));
    CliRun r = CliRun.of("eval", "--trace", file.toString(), "--mode", "exact", "--json");
    assertEquals(0, r.code(), r::toString);
    JsonNode json = new ObjectMapper().readTree(r.out());
    assertEquals("causal", json.get("attention").asText(), r::toString);
    assertTrue(!json.get("storedOutputAgrees").asBoolean(), r::toString);
    assertTrue(json.get("storedVsReferenceMax").asDouble() > 1e-3, r::toString);
    assertEquals(1, r.errLines().length, r::toString);
    assertTrue(r.err().startsWith("hflash eval: warning: the stored o differs from the float64 reference by up to "),
        r::toString);
    assertTrue(r.err().contains("under causal masking"), r::toString);

    CliRun text = CliRun.of("eval", "--trace", file.toString(), "--mode", "exact");
    assertEquals(0, text.code(), text::toString);
    assertEquals(1, text.errLines().length, text::toString);
    assertTrue(text.out().contains("attention: causal"), text::toString);
  }

  @Test
  void theEmbeddedTraceIsCausalAndAgreesWithoutAWarning() {
    CliRun r = CliRun.of("eval", "--trace", trace.toString(), "--mode", "exact");
    assertEquals(0, r.code(), r::toString);
    assertEquals("", r.err(), r::toString);
    assertTrue(r.out().contains("attention: causal: each query row attends to the keys up to its own position"),
        r::toString);
  }
}
