package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import hflash.tiles.TileKernelsProvider;
import org.junit.jupiter.api.Test;

/** {@code hflash probe}: both halves of the roofline, named, and bad input refused. */
class ProbeCommandTest {

  @Test
  void jsonNamesBothProbes() throws Exception {
    CliRun r = CliRun.of("probe", "--threads", "2", "--bytes", "1048576", "--json");
    assertEquals(0, r.code(), r::toString);
    JsonNode json = new ObjectMapper().readTree(r.out());
    assertEquals(2, json.get("threads").asInt());
    assertEquals(TileKernelsProvider.get().name(), json.get("kernels").asText());
    assertEquals(TileKernelsProvider.get().nativeVariant(),
        json.get("nativeLibrary").isNull() ? null : json.get("nativeLibrary").asText(), r::toString);
    assertEquals(hflash.tiles.NativeKernels.status(), json.get("nativeLibraryStatus").asText(), r::toString);
    assertTrue(json.get("probeGBps").asDouble() > 0, r::toString);
    assertTrue(json.get("computeProbeGFmas").asDouble() > 0, r::toString);
    String prefix = TileKernelsProvider.get().bitSize() == 0 ? "scalar-x" : TileKernelsProvider.get().name() + "x";
    assertTrue(json.get("computeProbeShape").asText().startsWith(prefix), r::toString);
  }

  @Test
  void badBufferSizeIsAUsageError() {
    CliRun r = CliRun.of("probe", "--bytes", "1000");
    assertEquals(2, r.code(), r::toString);
    assertTrue(r.err().contains("--bytes must be a positive multiple of 4096: 1000"), r::toString);
  }
}
