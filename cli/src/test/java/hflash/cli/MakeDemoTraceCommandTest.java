package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import hflash.io.Trace;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The embedded trace is what {@code make-demo-trace} derives from the shared trace, bit for bit. */
class MakeDemoTraceCommandTest {

  /** {@code shared/data/traces} in the working directory or a parent (as the other modules find it), or null. */
  static Path sharedTraces() {
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      Path candidate = dir.resolve("shared/data/traces");
      if (Files.isDirectory(candidate)) {
        return candidate;
      }
    }
    return null;
  }

  @Test
  void prefixOfTheEmbeddedTraceIsATrace(@TempDir Path tmp) throws Exception {
    Path embedded = DemoCommand.extractTrace();
    try {
      Path out = tmp.resolve("prefix.safetensors");
      CliRun r = CliRun.of("make-demo-trace", "--from", embedded.toString(), "--positions", "40", "--out", out.toString());
      assertEquals(0, r.code(), r::toString);
      Trace t = Trace.read(out);
      assertEquals(40, t.positions());
      assertEquals(40, t.qPositions());
      assertEquals("40", t.metadata().get("seq_len"));
      CliRun eval = CliRun.of("eval", "--trace", out.toString(), "--json");
      assertEquals(0, eval.code(), eval::toString);
    } finally {
      Files.deleteIfExists(embedded);
    }
  }

  @Test
  void committedTraceIsReproducible(@TempDir Path tmp) throws Exception {
    Path traces = sharedTraces();
    assumeTrue(traces != null, "no shared/data/traces above " + Path.of("").toAbsolutePath());
    Path source = traces.resolve("stories260K-seq0.safetensors");
    Path out = tmp.resolve("again.safetensors");
    CliRun r = CliRun.of("make-demo-trace", "--from", source.toString(), "--positions", "256", "--out", out.toString());
    assertEquals(0, r.code(), r::toString);
    Path embedded = DemoCommand.extractTrace();
    try {
      assertArrayEquals(Files.readAllBytes(embedded), Files.readAllBytes(out),
          "data/stories260K-seq0-256.safetensors differs from a fresh make-demo-trace --positions 256");
    } finally {
      Files.deleteIfExists(embedded);
    }
  }
}
