package hflash.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import hflash.cli.CliRun;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code generate} on the shared stories260K model ({@code shared/data/stories260K} above the working
 * directory; skipped when absent): the greedy text of llama2.c and one-line errors for bad input. In
 * this module because only the packaged application has both the CLI and the llama2.c runtime that
 * it finds through the service loader.
 */
class GenerateCommandTest {

  Path dir;

  @BeforeEach
  void shared() {
    dir = null;
    for (Path d = Path.of("").toAbsolutePath(); d != null && dir == null; d = d.getParent()) {
      if (Files.isDirectory(d.resolve("shared/data/stories260K"))) {
        dir = d.resolve("shared/data/stories260K");
      }
    }
    assumeTrue(dir != null, "skipped: no shared/data/stories260K above " + Path.of("").toAbsolutePath()
        + " (the shared real-data folder, ../shared/data beside the repository)");
  }

  @Test
  void greedyExactReproducesTheReference() throws Exception {
    JsonNode reference = new ObjectMapper().readTree(dir.resolve("reference.json").toFile()).get("greedy").get(0);
    assertEquals("", reference.get("prompt").asText(), "the first reference starts from BOS");
    CliRun r = CliRun.of("generate", "--temperature", "0", "--steps", "40", "--mode", "exact",
        "--model", dir.resolve("stories260K.bin").toString(), "--tokenizer", dir.resolve("tok512.bin").toString());
    assertEquals(0, r.code(), r::toString);
    String text = r.out().stripTrailing();
    String expected = reference.get("text").asText();
    // 40 positions from BOS: the first 40 tokens of the 200-step reference, so a prefix of its text
    assertTrue(text.length() > 100, r::toString);
    assertEquals(expected.substring(0, text.length()), text, r::toString);
    assertTrue(r.err().contains("tokens/s"), r::toString);
    // prompt (BOS only here) and generation reported apart
    assertTrue(r.err().contains("prompt: 1 positions in ") && r.err().contains("generation: 39 positions in "),
        r::toString);
    assertTrue(r.err().contains("attention: 200 calls"), r::toString); // 40 positions x 5 layers
  }

  @Test
  void pipelineSchedulerGivesTheSameGreedyText() {
    CliRun serial = CliRun.of("generate", "--temperature", "0", "--steps", "60", "--scheduler", "serial");
    CliRun pipe = CliRun.of("generate", "--temperature", "0", "--steps", "60", "--scheduler", "pipeline",
        "--threads", "2");
    assertEquals(0, serial.code(), serial::toString);
    assertEquals(0, pipe.code(), pipe::toString);
    assertEquals(serial.out(), pipe.out());
  }

  @Test
  void defaultsFindTheSharedModel() {
    CliRun r = CliRun.of("generate", "--steps", "8", "--mode", "certified", "--epsilon", "1e-2");
    assertEquals(0, r.code(), r::toString);
    assertTrue(r.out().startsWith("Once"), r::toString);
    assertTrue(r.err().contains("mode certified eps=1e-2"), r::toString);
  }

  @Test
  void promptLongerThanTheContextIsAUsageError() {
    CliRun r = CliRun.of("generate", "--prompt", "Once upon a time ".repeat(200));
    assertOneLine(r, "prompt longer than the context");
  }

  @Test
  void tokenizerOfAnotherModelIsAUsageError(@TempDir Path tmp) throws IOException {
    Path tok = tmp.resolve("tok600.bin");
    Files.write(tok, tokenizer(600));
    CliRun r = CliRun.of("generate", "--tokenizer", tok.toString());
    assertOneLine(r, "tokenizer has 600 tokens but the model expects 512");
  }

  @Test
  void truncatedCheckpointIsAUsageError(@TempDir Path tmp) throws IOException {
    Path model = tmp.resolve("truncated.bin");
    byte[] all = Files.readAllBytes(dir.resolve("stories260K.bin"));
    Files.write(model, java.util.Arrays.copyOf(all, all.length / 2));
    CliRun r = CliRun.of("generate", "--model", model.toString());
    assertOneLine(r, "invalid llama2.c checkpoint");
  }

  private static void assertOneLine(CliRun r, String expected) {
    r.assertUsageError("hflash generate: ", expected);
  }

  /** A well-formed llama2.c tokenizer with {@code n} one-byte tokens. */
  private static byte[] tokenizer(int n) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteBuffer b = ByteBuffer.allocate(4 + n * 9).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(1);
    for (int i = 0; i < n; i++) {
      b.putFloat(0f).putInt(1).put((byte) ('a' + i % 26));
    }
    out.writeBytes(b.array());
    return out.toByteArray();
  }
}
