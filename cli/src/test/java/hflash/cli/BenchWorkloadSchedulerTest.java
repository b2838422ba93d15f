package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.StringReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;
import org.xml.sax.InputSource;

/** {@code bench --workload structured}, {@code --scheduler} and {@code --decode-steps} on tiny shapes. */
class BenchWorkloadSchedulerTest {

  /** 8 KV heads: the default shares give 5 streaming, 2 retrieval and 1 broad head. */
  static final String[] TINY = {"--context", "300", "--heads", "8", "--kv-heads", "8", "--dim", "16", "--warmup", "3",
    "--iterations", "3", "--tile", "64"}; // 64-key tiles: 5 tiles of 300 keys, room for a budget

  @TempDir Path tmp;

  static String[] args(String... more) {
    List<String> a = new ArrayList<>(List.of("bench"));
    a.addAll(List.of(TINY));
    a.addAll(List.of(more));
    return a.toArray(String[]::new);
  }

  static List<JsonNode> lines(CliRun r) throws Exception {
    List<JsonNode> out = new ArrayList<>();
    for (String line : r.out().strip().split("\\R")) {
      out.add(new ObjectMapper().readTree(line));
    }
    return out;
  }

  @Test
  void structuredJsonHasTheContractFieldsAndFiguresPerHeadType() throws Exception {
    CliRun r = CliRun.of(args("--workload", "structured", "--dtype", "f16", "--mode", "exact,budgeted", "--tiles", "2",
        "--json"));
    assertEquals(0, r.code(), r::toString);
    List<JsonNode> json = lines(r);
    assertEquals(2, json.size(), r::toString);
    for (JsonNode j : json) {
      var names = j.fieldNames();
      for (String field : BenchCommandTest.CONTRACT) {
        assertEquals(field, names.next(), "contract fields come first, in the issue's order");
      }
      for (String field : BenchCommandTest.MODE_FIELDS) {
        assertEquals(field, names.next(), "then the mode fields, in contract order");
      }
      assertEquals("structured", j.get("workload").asText(), r::toString);
      assertEquals("splitk", j.get("scheduler").asText(), r::toString);
      JsonNode types = j.get("byHeadType");
      int kvHeads = 0;
      double weighted = 0;
      for (String type : new String[] {"streaming", "retrieval", "broad"}) {
        JsonNode t = types.get(type);
        assertTrue(t != null, () -> type + " missing: " + r.out());
        for (String f : new String[] {"kvHeads", "checkedKvHeads", "bytesFraction", "relErrMax", "bound",
            "errorBoundMax", "rhoMax"}) {
          assertTrue(t.get(f).isNumber(), () -> type + "." + f + " missing: " + r.out());
        }
        // tiny: every KV head is checked and replayed, so the types' bytes add up to the call's
        assertEquals(t.get("kvHeads").asInt(), t.get("checkedKvHeads").asInt(), r::toString);
        kvHeads += t.get("kvHeads").asInt();
        weighted += t.get("kvHeads").asInt() * t.get("bytesFraction").asDouble();
        assertTrue(t.get("relErrMax").asDouble() <= t.get("bound").asDouble() + 1e-3, r::toString);
      }
      assertEquals(8, kvHeads, r::toString);
      assertEquals(5, types.get("streaming").get("kvHeads").asInt(), r::toString);
      assertEquals(j.get("bytesFraction").asDouble(), weighted / 8, 1e-9, r::toString);
    }
    assertEquals(1.0, json.get(0).get("bytesFraction").asDouble(), 1e-12, "exact reads every byte once");
    assertTrue(json.get(1).get("bytesFraction").asDouble() < 1, "budgeted at 2 of 5 tiles reads less: " + r.out());
  }

  @Test
  void pipelineOnOneThreadIsAUsageError() {
    CliRun r = CliRun.of(args("--scheduler", "pipeline", "--threads", "1"));
    assertEquals(Main.EXIT_USAGE, r.code(), r::toString);
    assertEquals(1, r.errLines().length, r::toString);
    assertEquals("", r.out(), r::toString);
  }

  @Test
  void schedulerAllPrintsThreeRows() throws Exception {
    CliRun text = CliRun.of(args("--scheduler", "all", "--threads", "2"));
    assertEquals(0, text.code(), text::toString);
    List<String> rows = text.out().lines().filter(l -> l.strip().startsWith("exact ")).toList();
    assertEquals(3, rows.size(), text::toString);
    String[] order = {"serial", "splitk", "pipeline"};
    for (int i = 0; i < 3; i++) {
      assertTrue(rows.get(i).contains(" " + order[i] + " "), text::toString);
    }
    CliRun r = CliRun.of(args("--scheduler", "all", "--threads", "2", "--mode", "certified", "--json"));
    assertEquals(0, r.code(), r::toString);
    List<JsonNode> json = lines(r);
    assertEquals(3, json.size(), r::toString);
    for (int i = 0; i < 3; i++) {
      assertEquals(order[i], json.get(i).get("scheduler").asText(), r::toString);
      assertEquals("certified", json.get(i).get("mode").asText(), r::toString);
      // every scheduler reads the same bytes and gives the same output up to float rounding
      assertEquals(json.get(0).get("bytesRead").asLong(), json.get(i).get("bytesRead").asLong(), r::toString);
      assertEquals(json.get(0).get("relErrMax").asDouble(), json.get(i).get("relErrMax").asDouble(), 1e-5, r::toString);
    }
    assertEquals(1.0, json.get(0).get("speedupVsSerial").asDouble(), r::toString);
  }

  @Test
  void decodeStepsPrintsEveryStepAndAPlot() throws Exception {
    Path svg = tmp.resolve("steps.svg");
    CliRun r = CliRun.of(args("--workload", "structured", "--mode", "exact,certified", "--decode-steps", "8", "--svg",
        svg.toString(), "--json"));
    assertEquals(0, r.code(), r::toString);
    List<JsonNode> json = lines(r);
    assertEquals(16, json.size(), "N=8 < 10: every step is a sample, for each of 2 modes\n" + r);
    for (int i = 0; i < json.size(); i++) {
      JsonNode j = json.get(i);
      var names = j.fieldNames();
      for (String field : new String[] {"step", "context", "mode", "ms"}) {
        assertEquals(field, names.next(), "step, context, mode, ms come first");
      }
      assertEquals(i / 2 + 1, j.get("step").asInt(), r::toString);
      assertEquals(300 + i / 2 + 1, j.get("context").asInt(), r::toString);
      assertEquals(i % 2 == 0 ? "exact" : "certified", j.get("mode").asText(), r::toString);
      assertTrue(j.get("ms").asDouble() > 0, r::toString);
    }
    Document doc = DocumentBuilderFactory.newInstance().newDocumentBuilder()
        .parse(new InputSource(new StringReader(Files.readString(svg))));
    assertEquals("svg", doc.getDocumentElement().getNodeName());
    assertTrue(doc.getElementsByTagName("polyline").getLength() >= 2, "one line per mode");

    CliRun table = CliRun.of(args("--mode", "exact", "--decode-steps", "20"));
    assertEquals(0, table.code(), table::toString);
    assertTrue(table.out().contains("exact ms"), table::toString);
    long rows = table.out().lines().filter(l -> l.strip().matches("\\d+\\s+\\d+\\s+.*")).count();
    assertEquals(10, rows, "a row every N/10 = 2 steps\n" + table);
  }

  @Test
  void decodeStepsTakeADtypeList() throws Exception {
    CliRun r = CliRun.of(args("--mode", "exact", "--dtype", "f16,q8_0", "--decode-steps", "2", "--json"));
    assertEquals(0, r.code(), r::toString);
    List<JsonNode> json = lines(r);
    assertEquals(4, json.size(), "2 steps x 2 dtypes\n" + r);
    for (int i = 0; i < 4; i++) {
      JsonNode j = json.get(i);
      assertEquals(i < 2 ? "f16" : "q8_0", j.get("dtype").asText(), r::toString);
      assertEquals(i % 2 + 1, j.get("step").asInt(), r::toString);
      double first = json.get(i % 2).get("ms").asDouble();
      assertEquals(first / j.get("ms").asDouble(), j.get("speedupVsFirstDtype").asDouble(), 1e-9, r::toString);
    }
    assertTrue(json.get(2).get("bytesPerToken").asDouble() < json.get(0).get("bytesPerToken").asDouble(), r::toString);
  }
}
