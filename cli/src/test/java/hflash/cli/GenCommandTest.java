package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import hflash.bench.StructuredWorkload;
import hflash.io.Safetensors;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** {@code gen}: a trace in the shared traces' format, readable by the safetensors reader, eval and claims. */
class GenCommandTest {

  @TempDir static Path tmp;

  @Test
  void writesATraceTheReaderEvalAndClaimsAccept() throws Exception {
    Path file = tmp.resolve("s.safetensors");
    CliRun r = CliRun.of("gen", "--context", "300", "--heads", "4", "--kv-heads", "2", "--dim", "16", "--queries", "3",
        "--seed", "5", "--set", "window=32", "--out", file.toString());
    assertEquals(0, r.code(), r::toString);
    assertTrue(r.out().startsWith("wrote " + file), r::toString);
    var params = StructuredWorkload.Params.of(300, 4, 2, 16, 5).with("queries", "3").with("window", "32");
    var w = new StructuredWorkload(params);
    try (Safetensors st = Safetensors.open(file)) {
      assertArrayEquals(new long[] {1, 4, 3, 16}, st.tensor("q").shape());
      assertArrayEquals(new long[] {1, 2, 300, 16}, st.tensor("k").shape());
      assertArrayEquals(new long[] {1, 2, 300, 16}, st.tensor("v").shape());
      assertEquals(Files.size(file), 8 + headerBytes(file) + 4L * (4 * 3 * 16 + 2 * 2 * 300 * 16));
      var meta = st.metadata();
      assertEquals("0.25", meta.get("scale"));
      assertEquals("structured", meta.get("workload"));
      assertEquals(2, meta.get("head_types").split(",").length);
      assertEquals(params, StructuredWorkload.Params.fromMap(meta));
      float[] k = st.tensor("k").toFloatArray();
      float[] v = st.tensor("v").toFloatArray();
      for (int g = 0; g < 2; g++) {
        float[] kg = new float[300 * 16];
        float[] vg = new float[300 * 16];
        w.keys(g).next(300, kg, 0, 16, vg, 0, 16);
        assertArrayEquals(kg, java.util.Arrays.copyOfRange(k, g * 300 * 16, (g + 1) * 300 * 16));
        assertArrayEquals(vg, java.util.Arrays.copyOfRange(v, g * 300 * 16, (g + 1) * 300 * 16));
      }
      float[] q = st.tensor("q").toFloatArray(); // (heads, queries, dim)
      for (int row = 0; row < 3; row++) {
        float[] qr = w.query(row);
        for (int h = 0; h < 4; h++) {
          assertArrayEquals(java.util.Arrays.copyOfRange(qr, h * 16, h * 16 + 16),
              java.util.Arrays.copyOfRange(q, (h * 3 + row) * 16, (h * 3 + row + 1) * 16), "row " + row + " head " + h);
        }
      }
    }
    CliRun eval = CliRun.of("eval", "--trace", file.toString(), "--mode", "exact", "--json");
    assertEquals(0, eval.code(), eval::toString);
    assertEquals(3, new ObjectMapper().readTree(eval.out()).get("rows").asInt(), eval::toString);
    CliRun claims = CliRun.of("claims", "--trace", file.toString(), "--json");
    assertEquals(0, claims.code(), claims::toString);
    JsonNode groups = new ObjectMapper().readTree(claims.out()).get("traces").get(0).get("groups");
    assertEquals("all", groups.get(0).get("group").asText());
    assertEquals(4 * 3, groups.get(0).get("rows").asInt());
    assertTrue(groups.get(0).get("concentration").has("sinksWindow"), claims::toString);
  }

  private static long headerBytes(Path file) throws Exception {
    byte[] b = new byte[8];
    try (var in = Files.newInputStream(file)) {
      assertEquals(8, in.read(b));
    }
    return java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
  }

  static Stream<Arguments> badArguments() {
    String out = tmp.resolve("bad.safetensors").toString();
    return Stream.of(
        Arguments.of(new String[] {"gen", "--context", "0", "--out", out}, "--context must be positive: 0"),
        Arguments.of(new String[] {"gen", "--context", "100"}, "Missing required option: '--out=FILE'"),
        Arguments.of(new String[] {"gen", "--workload", "zipf", "--context", "100", "--out", out},
            "unknown workload: zipf (expected structured)"),
        Arguments.of(new String[] {"gen", "--context", "100", "--heads", "32", "--kv-heads", "6", "--out", out},
            "--heads must be a multiple of --kv-heads: 32 % 6 != 0"),
        Arguments.of(new String[] {"gen", "--context", "100", "--queries", "101", "--out", out},
            "--queries must be in [1, --context=100]: 101"),
        Arguments.of(new String[] {"gen", "--context", "100", "--dim", "4", "--out", out},
            "dim must be at least clusters + 3: 4 < 7"),
        Arguments.of(new String[] {"gen", "--context", "100", "--set", "bogus=1", "--out", out},
            "unknown workload parameter: bogus"),
        Arguments.of(new String[] {"gen", "--context", "100", "--set", "sinkBoost=abc", "--out", out},
            "workload parameter sinkBoost is not a number: abc"),
        Arguments.of(new String[] {"gen", "--context", "100", "--out", tmp.resolve("no/such/dir/x.safetensors").toString()},
            "--out folder does not exist"));
  }

  @ParameterizedTest(name = "{1}")
  @MethodSource("badArguments")
  void badArgumentsExitTwoWithOneLine(String[] args, String expected) {
    CliRun.of(args).assertUsageError("hflash gen: ", expected);
  }
}
