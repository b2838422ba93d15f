package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import hflash.jlama.RandomModel;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code jlama-bench} on a small user model directory, and its argument errors. */
class JlamaBenchCommandTest {

  @TempDir Path dir;

  @Test
  void userModelRunGivesTheContractFieldsAndAgreeingTokens() throws Exception {
    // Jlama's model classes need the incubator vector module, which the scalar run leaves out
    assumeTrue("vector".equals(System.getProperty("hflash.testProvider")), "Jlama runs in the vector execution only");
    Path model = new RandomModel("llama", 128, 4, 2, 2, 96, 300, 1024, 3f, 5).write(dir.resolve("m"));
    Path prompt = Files.writeString(dir.resolve("prompt.txt"), "A prompt of some length for both sessions. ".repeat(3));
    CliRun r = CliRun.of("jlama-bench", "--model", model.toString(), "--prompt-file", prompt.toString(),
        "--threads", "1", "--warmup", "1", "--json");
    assertEquals(0, r.code(), r::toString);
    JsonNode o = new ObjectMapper().readTree(r.out().lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow());
    for (String f : new String[] {"context", "threads", "kvDtype", "mode", "stockMsPerToken", "hflashMsPerToken", "speedup",
        "fixedMsPerToken", "hflashAttendMsPerToken", "hflashBlockMsPerToken", "hflashFixedBlockMsPerToken"}) {
      assertTrue(o.has(f), f + " missing: " + r.out());
    }
    assertEquals(1 + 3 * 43, o.get("context").asInt(), "BOS + one token per character: " + r.out());
    assertEquals("f32", o.get("kvDtype").asText());
    assertEquals("exact", o.get("mode").asText());
    assertEquals(16, o.get("tokensAgree").asInt(), "exact f32 generates stock Jlama's tokens: " + r.out());
    assertTrue(o.get("speedup").asDouble() > 0, r.out());
    assertEquals("Panama Vector Operations", o.get("jlamaOps").asText(), "the default --jlama-ops: " + r.out());
  }

  @Test
  void argumentErrorsExitTwoNamingTheProblem() {
    CliRun few = CliRun.of("jlama-bench", "--tokens", "5");
    assertEquals(2, few.code(), few::toString);
    assertTrue(few.err().contains("--tokens must be >= 16"), few.err());
    CliRun alone = CliRun.of("jlama-bench", "--model", dir.toString());
    assertEquals(2, alone.code(), alone::toString);
    assertTrue(alone.err().contains("--model and --prompt-file go together"), alone.err());
    CliRun dtype = CliRun.of("jlama-bench", "--kv-dtype", "f8");
    assertEquals(2, dtype.code(), dtype::toString);
    assertTrue(dtype.err().contains("unknown dtype: f8"), dtype.err());
    CliRun ops = CliRun.of("jlama-bench", "--jlama-ops", "cuda");
    assertEquals(2, ops.code(), ops::toString);
    assertTrue(ops.err().contains("--jlama-ops must be panama or native: cuda"), ops.err());
  }
}
