package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import hflash.io.Safetensors;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code claims} on the embedded trace (5 layers x 8 heads x 256 causal rows, d = 8) against a
 * direct, independent computation written the way trace_stats.py does it.
 */
class ClaimsCommandTest {

  @TempDir static Path tmp;
  private static Path trace;
  private static JsonNode all; // the "all" group of claims --json --delta 8 --radius 32

  @BeforeAll
  static void run() throws Exception {
    trace = DemoCommand.extractTrace();
    CliRun r = CliRun.of("claims", "--trace", trace.toString(), "--delta", "8", "--radius", "32", "--json");
    assertEquals(0, r.code(), r::toString);
    all = new ObjectMapper().readTree(r.out()).get("traces").get(0).get("groups").get(0);
  }

  @AfterAll
  static void delete() throws Exception {
    Files.deleteIfExists(trace);
  }

  @Test
  void agreesWithADirectComputation() {
    List<Double> diffs = new ArrayList<>();
    List<Double> top1 = new ArrayList<>();
    List<Double> miss = new ArrayList<>();
    int rows = 0;
    int found = 0;
    try (Safetensors st = Safetensors.open(trace)) {
      float[] q = st.tensor("q").toFloatArray(); // (5, 8, 256, 8)
      float[] k = st.tensor("k").toFloatArray(); // (5, 4, 256, 8)
      double scale = Double.parseDouble(st.metadata().get("scale"));
      for (int l = 0; l < 5; l++) {
        for (int h = 0; h < 8; h++) {
          for (int t = 0; t < 256; t++) {
            double[] s = new double[t + 1];
            for (int j = 0; j <= t; j++) {
              double acc = 0;
              for (int c = 0; c < 8; c++) {
                acc += (double) q[((l * 8 + h) * 256 + t) * 8 + c] * k[((l * 4 + h / 2) * 256 + j) * 8 + c];
              }
              s[j] = acc * scale;
            }
            double m = Arrays.stream(s).max().getAsDouble();
            for (int j = 0; j < t; j++) {
              diffs.add(Math.abs(s[j] - s[j + 1]));
            }
            int best = 0;
            for (int j = 0; j <= t; j += 8) {
              best = s[j] > s[best] ? j : best;
            }
            double est = Double.NEGATIVE_INFINITY;
            for (int j = Math.max(0, best - 32); j <= Math.min(t, best + 32); j++) {
              est = Math.max(est, s[j]);
            }
            found += est == m ? 1 : 0;
            miss.add(m - est);
            double[] p = Arrays.stream(s).map(x -> Math.exp(x - m)).sorted().toArray();
            int top = (int) Math.ceil(0.01 * p.length);
            top1.add(Arrays.stream(p, p.length - top, p.length).sum() / Arrays.stream(p).sum());
            rows++;
          }
        }
      }
    }
    assertEquals(rows, all.get("rows").asInt());
    JsonNode loc = all.get("locality");
    assertEquals(diffs.size(), loc.get("pairs").asInt());
    assertEquals(percentile(diffs, 50), loc.get("diffMedian").asDouble(), 1e-9);
    assertEquals(percentile(diffs, 99), loc.get("diffP99").asDouble(), 1e-9);
    assertEquals(percentile(diffs, 100), loc.get("diffMax").asDouble(), 1e-9);
    JsonNode est = all.get("sampled").get(0);
    assertEquals(8, est.get("delta").asInt());
    assertEquals(32, est.get("radius").asInt());
    assertEquals(found / (double) rows, est.get("foundFraction").asDouble(), 1e-12);
    assertEquals(percentile(miss, 99), est.get("missP99").asDouble(), 1e-9);
    assertEquals(percentile(miss, 100), est.get("missMax").asDouble(), 1e-9);
    assertEquals(percentile(top1, 50), all.get("concentration").get("top1").get("p50").asDouble(), 1e-9);
  }

  /** numpy's default (linear) percentile. */
  private static double percentile(List<Double> values, double p) {
    double[] s = values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    double at = p / 100 * (s.length - 1);
    int lo = (int) Math.floor(at);
    int hi = Math.min(s.length - 1, lo + 1);
    return s[lo] + (s[hi] - s[lo]) * (at - lo);
  }

  @Test
  void tablesAndTheHistogram() throws Exception {
    Path svg = tmp.resolve("ds.svg");
    CliRun r = CliRun.of("claims", "--trace", trace.toString(), "--svg", svg.toString());
    assertEquals(0, r.code(), r::toString);
    for (String s : new String[] {"concentration", "locality", "sampled max", "miss<=L_row*delta", "wrote " + svg}) {
      assertTrue(r.out().contains(s), () -> s + " missing\n" + r);
    }
    // concentration and locality: one row each; sampled max: one per (delta, radius) of 8,16 x 32,64
    assertEquals(1 + 1 + 4, r.out().lines().filter(l -> l.startsWith("  hflash-demo-") && l.contains(":all ")).count(), r::toString);
    String doc = Files.readString(svg);
    assertTrue(doc.startsWith("<svg") && doc.contains("<polyline") && doc.trim().endsWith("</svg>"), doc);
  }

  static Stream<Arguments> badArguments() {
    return Stream.of(
        Arguments.of(new String[] {"claims"}, "Missing required option: '--trace=FILE'"),
        Arguments.of(new String[] {"claims", "--trace", "x.safetensors", "--delta", "0"}, "--delta must be >= 1: 0"),
        Arguments.of(new String[] {"claims", "--trace", "x.safetensors", "--radius", "-1"}, "--radius must be >= 0: -1"),
        Arguments.of(new String[] {"claims", "--trace", "x.safetensors", "--min-pos", "-3"}, "--min-pos must be >= 0: -3"),
        Arguments.of(new String[] {"claims", "--trace", "none.safetensors"}, "no such trace file: none.safetensors"));
  }

  @ParameterizedTest(name = "{1}")
  @MethodSource("badArguments")
  void badArgumentsExitTwoWithOneLine(String[] args, String expected) {
    CliRun.of(args).assertUsageError("hflash claims: ", expected);
  }
}
