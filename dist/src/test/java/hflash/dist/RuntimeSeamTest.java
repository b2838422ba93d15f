package hflash.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.bench.TextGenerator;
import hflash.cli.CliRun;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The packaged application offers {@code generate} through the service-loader seam: the CLI finds
 * the examples module's llama2.c runtime without linking against it, and the runtime's own errors
 * reach the user as one-line usage errors. Needs no shared data.
 */
class RuntimeSeamTest {

  @Test
  void theApplicationFindsTheLlama2Runtime() {
    var runtime = TextGenerator.find();
    assertTrue(runtime.isPresent(), "no TextGenerator on the class path");
    assertEquals("llama2.c", runtime.get().name());
  }

  @Test
  void aCorruptCheckpointIsTheRuntimesUsageError(@TempDir Path tmp) throws IOException {
    Path garbage = Files.write(tmp.resolve("garbage.bin"), new byte[] {1, 2, 3});
    CliRun r = CliRun.of("generate", "--model", garbage.toString(), "--tokenizer", garbage.toString());
    r.assertUsageError("hflash generate: ", "invalid llama2.c checkpoint");
  }

  @Test
  void aMalformedBudgetIsCheckedByTheRuntimeBeforeAnyFileIsRead(@TempDir Path tmp) throws IOException {
    Path garbage = Files.write(tmp.resolve("garbage.bin"), new byte[] {1, 2, 3});
    CliRun r = CliRun.of("generate", "--model", garbage.toString(), "--tokenizer", garbage.toString(),
        "--mode", "budgeted", "--tiles", "lots");
    r.assertUsageError("hflash generate: ", "--tiles expects a count or a share such as 5%: lots");
  }
}
