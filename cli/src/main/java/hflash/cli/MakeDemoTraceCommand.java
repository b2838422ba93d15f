package hflash.cli;

import hflash.bench.Format;
import hflash.io.Safetensors;
import hflash.io.Trace;
import hflash.io.UsageException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code hflash make-demo-trace}: the first N positions of a trace (q, k, v and o when present, as
 * f32), with the source's metadata, a provenance note and the token ids cut to N. How
 * {@code data/stories260K-seq0-256.safetensors} was made; see {@code data/README.md}.
 */
@Command(
    name = "make-demo-trace",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Write the first N positions of a trace (q, k, v and o, f32) to a new safetensors file. Row t of",
      "a causal trace attends to keys 0..t only, so the slice is a complete trace of its own."
    })
final class MakeDemoTraceCommand implements Callable<Integer> {

  @Option(names = "--from", required = true, paramLabel = "FILE", description = "Source trace (.safetensors).")
  Path from;

  @Option(names = "--positions", required = true, paramLabel = "N", description = "Positions to keep.")
  int positions;

  @Option(names = "--out", required = true, paramLabel = "FILE", description = "Output file.")
  Path out;

  @Spec CommandSpec spec;

  @Override
  public Integer call() throws IOException {
    UsageException.positive("--positions", positions);
    if (!Files.isRegularFile(from)) {
      throw new UsageException("no such trace file: " + from);
    }
    Trace t = Trace.read(from);
    if (t.qPositions() != t.positions()) {
      throw new UsageException("trace " + from.getFileName() + " holds only the last " + t.qPositions()
          + " query rows of " + t.positions() + " positions; a prefix needs every row");
    }
    if (positions > t.positions()) {
      throw new UsageException("--positions exceeds the trace's positions: " + positions + ">" + t.positions());
    }
    Map<String, Safetensors.WriteTensor> tensors = new LinkedHashMap<>();
    tensors.put("q", slice(t.q(), t.layers(), t.heads(), t.positions(), t.dim()));
    tensors.put("k", slice(t.k(), t.layers(), t.kvHeads(), t.positions(), t.dim()));
    tensors.put("v", slice(t.v(), t.layers(), t.kvHeads(), t.positions(), t.dim()));
    if (t.o() != null) {
      tensors.put("o", slice(t.o(), t.layers(), t.heads(), t.positions(), t.dim()));
    }
    Map<String, String> metadata = new LinkedHashMap<>(t.metadata());
    if (metadata.containsKey("seq_len")) {
      metadata.put("seq_len", String.valueOf(positions));
    }
    String ids = metadata.get("token_ids");
    if (ids != null) {
      String[] parts = ids.split(",");
      metadata.put("token_ids", String.join(",", java.util.Arrays.copyOf(parts, Math.min(parts.length, positions))));
    }
    // text and story summaries describe every source position; drop them rather than ship a mismatch
    metadata.remove("text");
    metadata.remove("stories");
    metadata.put("derived_from", from.getFileName() + " (sha256 " + sha256(from) + ")");
    metadata.put("derivation", "first " + positions + " positions of q, k, v" + (t.o() != null ? ", o" : "")
        + " as F32: hflash make-demo-trace --positions " + positions);
    Safetensors.write(out, tensors, metadata);
    spec.commandLine().getOut().println("wrote " + out + " (" + Format.bytes(Files.size(out)) + "): " + tensors.keySet()
        + " x " + positions + " positions");
    return 0;
  }

  /** (a, b, positions, dim) -> (a, b, this.positions, dim): the first positions along axis 2. */
  private Safetensors.WriteTensor slice(float[] src, int a, int b, int n, int dim) {
    float[] dst = new float[a * b * positions * dim];
    for (int i = 0; i < a * b; i++) {
      System.arraycopy(src, i * n * dim, dst, i * positions * dim, positions * dim);
    }
    return new Safetensors.WriteTensor(new long[] {a, b, positions, dim}, dst);
  }

  static String sha256(Path file) throws IOException {
    try (InputStream in = Files.newInputStream(file)) {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      byte[] buf = new byte[1 << 16];
      for (int r; (r = in.read(buf)) > 0; ) {
        md.update(buf, 0, r);
      }
      return HexFormat.of().formatHex(md.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("no SHA-256 in this JDK", e);
    }
  }
}
