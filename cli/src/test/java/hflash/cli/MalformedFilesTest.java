package hflash.cli;

import hflash.bench.ResourceException;
import hflash.bench.Resources;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.io.Safetensors;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Hostile files through the commands that read them: exit 2 with one line naming the file and the problem, never a
 * stack trace; a cache the machine cannot hold is refused before it is allocated with exit 1 and one line saying
 * how many bytes it needs and how many there are.
 */
class MalformedFilesTest {

  @TempDir static Path tmp;

  private static Path safetensorsHeader(String name, String json) throws IOException {
    byte[] h = json.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + h.length).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(h.length).put(h);
    return Files.write(tmp.resolve(name), b.array());
  }

  private static Path trace(String name, long[] q, long[] kv, float fill, Map<String, String> metadata) {
    Map<String, Safetensors.WriteTensor> t = new LinkedHashMap<>();
    t.put("q", tensor(q, fill));
    t.put("k", tensor(kv, 0.5f));
    t.put("v", tensor(kv, 0.25f));
    Path p = tmp.resolve(name);
    Safetensors.write(p, t, metadata);
    return p;
  }

  private static Safetensors.WriteTensor tensor(long[] shape, float fill) {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    float[] v = new float[(int) n];
    java.util.Arrays.fill(v, fill);
    return new Safetensors.WriteTensor(shape, v);
  }

  /** A tiny valid llama2.c checkpoint: dim 8, 2 heads, 1 KV head, vocab 300, seq_len 4. */
  static Stream<Arguments> malformedTraces() throws IOException {
    return Stream.of(
        Arguments.of(safetensorsHeader("deep.safetensors", "[".repeat(100_000)), "nesting deeper than 64"),
        Arguments.of(safetensorsHeader("lying-shape.safetensors",
            "{\"q\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,0]}}"), "overflows"),
        Arguments.of(Files.write(tmp.resolve("bad-utf8.safetensors"),
            new byte[] {5, 0, 0, 0, 0, 0, 0, 0, '{', '"', (byte) 0xff, '"', '}'}), "not valid UTF-8"),
        Arguments.of(trace("nan-q.safetensors", new long[] {1, 2, 3, 4}, new long[] {1, 1, 3, 4}, Float.NaN, Map.of()),
            "nan-q.safetensors"),
        Arguments.of(trace("scale.safetensors", new long[] {1, 2, 3, 4}, new long[] {1, 1, 3, 4}, 1f,
            Map.of("scale", "-Infinity")), "metadata scale must be positive and finite"),
        Arguments.of(trace("gqa.safetensors", new long[] {1, 3, 3, 4}, new long[] {1, 2, 3, 4}, 1f, Map.of()),
            "query heads must be a multiple of kv heads"));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("malformedTraces")
  void malformedTraceExitsTwoWithOneLineNamingTheFile(Path file, String problem) {
    CliRun r = CliRun.of("eval", "--trace", file.toString(), "--mode", "all");
    r.assertUsageError("hflash eval: ", problem);
    assertTrue(r.err().contains(file.getFileName().toString()), r::toString);
    assertFalse(r.err().contains("\tat "), r::toString);
  }

  @Test
  void cacheThatCannotFitIsRefusedWithExitOne() {
    String old = System.getProperty(Resources.AVAILABLE_PROPERTY);
    System.setProperty(Resources.AVAILABLE_PROPERTY, "1000000");
    try {
      CliRun r = CliRun.of("bench", "--context", "4096", "--heads", "8", "--kv-heads", "8", "--dim", "64");
      assertEquals(Main.EXIT_FAILURE, r.code(), r::toString);
      assertEquals(1, r.errLines().length, r::toString);
      // 4096 positions x 8 KV heads x 64 dims x 4 bytes, for K and for V
      assertTrue(r.err().contains("the KV cache does not fit in memory: needs 16777216 bytes"), r::toString);
      assertTrue(r.err().contains("1000000 bytes (") && r.err().contains("available"), r::toString);
      assertFalse(r.err().contains("\tat "), r::toString);
    } finally {
      if (old == null) {
        System.clearProperty(Resources.AVAILABLE_PROPERTY);
      } else {
        System.setProperty(Resources.AVAILABLE_PROPERTY, old);
      }
    }
  }

  @Test
  void availableMemoryIsKnownHere() {
    assertTrue(Resources.availableBytes() > 0, "available bytes: " + Resources.availableBytes());
  }
}
