package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AscendCommandTest {

  @Test
  void jsonHasExactlyTheIssuesFields() throws Exception {
    CliRun r = CliRun.of("ascend", "--context", "8192", "--mode", "exact", "--json");
    assertEquals(0, r.code(), r.toString());
    JsonNode o = new ObjectMapper().readTree(r.out());
    List<String> names = new ArrayList<>();
    o.fieldNames().forEachRemaining(names::add);
    assertEquals(List.of("predictedUs", "rooflineUs", "hbmBytes", "bound", "utilisation"), names);
    List<String> units = new ArrayList<>();
    o.get("utilisation").fieldNames().forEachRemaining(units::add);
    assertEquals(List.of("dma", "vec1", "vec2", "cube"), units);
    // exact reads all of K and V: 2 * 8192 * 8 * 128 * 2 bytes, plus the outputs
    assertTrue(o.get("hbmBytes").asLong() >= 2L * 8192 * 8 * 128 * 2, r.out());
    assertTrue(o.get("predictedUs").asDouble() >= o.get("rooflineUs").asDouble(), r.out());
  }

  @Test
  void hierarchicalModesRunTheEngineOrTakeAShare(@TempDir Path dir) throws Exception {
    Path svg = dir.resolve("t.svg");
    CliRun r = CliRun.of("ascend", "--context", "4096", "--mode", "certified", "--keys", "clustered",
        "--svg", svg.toString());
    assertEquals(0, r.code(), r.toString());
    assertTrue(r.out().contains("predicted") && r.out().contains("bound"), r.out());
    String s = Files.readString(svg);
    assertTrue(s.startsWith("<svg") && s.contains("unit 2 (AIV1)") && s.contains("ping-pong"), s.substring(0, 200));
    CliRun b = CliRun.of("ascend", "--context", "4096", "--mode", "budgeted", "--share", "0.1", "--json");
    CliRun e = CliRun.of("ascend", "--context", "4096", "--mode", "exact", "--json");
    long bytesB = new ObjectMapper().readTree(b.out()).get("hbmBytes").asLong();
    long bytesE = new ObjectMapper().readTree(e.out()).get("hbmBytes").asLong();
    assertTrue(bytesB < bytesE / 5, bytesB + " vs " + bytesE);
  }

  @Test
  void oversizeTilesAreAUsageError() {
    CliRun r = CliRun.of("ascend", "--context", "4096", "--tile-tokens", "512");
    assertEquals(Main.EXIT_USAGE, r.code(), r.toString());
    assertTrue(r.err().contains("bytes of unified buffer, more than 196608"), r.err());
  }
}
