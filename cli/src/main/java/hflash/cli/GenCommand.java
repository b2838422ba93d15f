package hflash.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import hflash.bench.Format;
import hflash.bench.StructuredWorkload;
import hflash.io.UsageException;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.StringJoiner;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code hflash gen}: writes a generated workload as a trace that {@code eval} and {@code claims} read. */
@Command(
    name = "gen",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Write a generated long-context workload as a trace (safetensors, F32): q [1, heads, queries, dim]",
      "holds the decode queries at positions n-queries..n-1, k and v [1, kvHeads, n, dim]; metadata:",
      "scale, head_types, cluster_starts and every workload parameter. K and V are generated and written",
      "per KV head in batches, never held whole. Size: about 8 * n * kvHeads * dim bytes (n = 32768,",
      "8 KV heads, d = 128: 268 MB). The model and its defaults: docs/WORKLOAD.md."
    })
final class GenCommand implements Callable<Integer> {

  @Option(names = "--workload", defaultValue = "structured", description = "Generator (default ${DEFAULT-VALUE}; the only one).")
  String workload;

  @Option(names = "--context", required = true, description = "Positions n.")
  int context;

  @Mixin SharedOptions.Shape shape;

  @Option(names = "--seed", defaultValue = "42", description = "Seed (default ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--queries", defaultValue = "4", description = "Decode query rows at the end (default ${DEFAULT-VALUE}).")
  int queries;

  @Option(
      names = "--set",
      paramLabel = "NAME=VALUE",
      description = "Any other workload parameter (docs/WORKLOAD.md), e.g. --set sinkBoost=4; repeatable.")
  Map<String, String> set = new LinkedHashMap<>();

  @Option(names = "--out", required = true, paramLabel = "FILE", description = "Output file (.safetensors), replaced.")
  Path out;

  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    if (!workload.equals("structured")) {
      throw new UsageException("unknown workload: " + workload + " (expected structured)");
    }
    int heads = shape.heads;
    int kvHeads = shape.kvHeads;
    int dim = shape.dim;
    SharedOptions.Shape.checkPositive(context, heads, kvHeads, dim);
    SharedOptions.Shape.checkGroups(heads, kvHeads);
    if (queries < 1 || queries > context) {
      throw new UsageException("--queries must be in [1, --context=" + context + "]: " + queries);
    }
    StructuredWorkload w;
    try {
      var params = StructuredWorkload.Params.of(context, heads, kvHeads, dim, seed).with("queries", String.valueOf(queries));
      for (var e : set.entrySet()) {
        params = params.with(e.getKey(), e.getValue());
      }
      w = new StructuredWorkload(params);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage(), e);
    }
    Path parent = out.toAbsolutePath().getParent();
    if (parent != null && !Files.isDirectory(parent)) {
      throw new UsageException("--out folder does not exist: " + parent);
    }
    long bytes = write(w, out);
    PrintWriter o = spec.commandLine().getOut();
    o.println("wrote " + out + " (" + Format.bytes(bytes) + "): " + summary(w));
    o.flush();
    return 0;
  }

  /** One line: shape, query positions and head types. */
  static String summary(StructuredWorkload w) {
    var p = w.params();
    int[] count = new int[StructuredWorkload.HeadType.values().length];
    for (int g = 0; g < p.kvHeads(); g++) {
      count[w.headType(g).ordinal()]++;
    }
    StringJoiner types = new StringJoiner(", ");
    for (var t : StructuredWorkload.HeadType.values()) {
      types.add(count[t.ordinal()] + " " + t.id());
    }
    return "structured workload, n=" + p.context() + ", " + p.heads() + " heads, " + p.kvHeads() + " kv heads, d="
        + p.dim() + ", seed " + p.seed() + ", " + p.queries() + " query rows at positions " + w.queryPosition(0) + ".."
        + w.queryPosition(p.queries() - 1) + "; kv head types: " + types;
  }

  /** The trace metadata: every parameter, the scale, head types and cluster positions, and what the file is. */
  static Map<String, String> metadata(StructuredWorkload w) {
    var p = w.params();
    Map<String, String> m = new LinkedHashMap<>();
    m.put("workload", "structured");
    m.put("generator", "hflash gen --workload structured (hflash.cli.StructuredWorkload, docs/WORKLOAD.md)");
    m.put("scale", Float.toString(w.scale()));
    List<String> types = new ArrayList<>();
    List<String> clusters = new ArrayList<>();
    for (int g = 0; g < p.kvHeads(); g++) {
      types.add(w.headType(g).id());
      StringJoiner s = new StringJoiner(",");
      for (int c : w.clusterStarts(g)) {
        s.add(String.valueOf(c));
      }
      clusters.add(s.toString());
    }
    m.put("head_types", String.join(",", types));
    m.put("cluster_starts", String.join(";", clusters));
    m.put("background_rank_used", String.valueOf(w.backgroundRank()));
    m.put("seq_len", String.valueOf(p.context()));
    m.put("n_layers", "1");
    m.put("n_heads", String.valueOf(p.heads()));
    m.put("n_kv_heads", String.valueOf(p.kvHeads()));
    m.put("head_dim", String.valueOf(p.dim()));
    m.put("gqa", "query head h reads kv head h / " + (p.heads() / p.kvHeads()));
    m.put("layout", "q [1, heads, queries, dim]: query row i sits at position n - queries + i and sees keys 0..that"
        + " position; k, v [1, kvHeads, n, dim]; row-major little-endian F32");
    m.putAll(p.toMap());
    return m;
  }

  /** Writes the trace, streaming K and V per KV head; returns the file size. */
  static long write(StructuredWorkload w, Path file) {
    var p = w.params();
    int d = p.dim();
    long qFloats = (long) p.heads() * p.queries() * d;
    long kvFloats = (long) p.kvHeads() * p.context() * d;
    Map<String, Object> header = new LinkedHashMap<>();
    header.put("__metadata__", metadata(w));
    header.put("q", tensor(new long[] {1, p.heads(), p.queries(), d}, 0, qFloats * 4));
    header.put("k", tensor(new long[] {1, p.kvHeads(), p.context(), d}, qFloats * 4, (qFloats + kvFloats) * 4));
    header.put("v", tensor(new long[] {1, p.kvHeads(), p.context(), d}, (qFloats + kvFloats) * 4, (qFloats + 2 * kvFloats) * 4));
    byte[] json;
    try {
      json = new ObjectMapper().writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
    int padded = (json.length + 7) & ~7;
    long data0 = 8L + padded;
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
        StandardOpenOption.WRITE)) {
      ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
      head.putLong(padded).put(json);
      while (head.hasRemaining()) {
        head.put((byte) ' ');
      }
      writeAt(ch, head.flip(), 0);
      // q: (heads, queries, dim), rows gathered from query(row), which is (heads, dim)
      float[] q = new float[(int) qFloats];
      for (int row = 0; row < p.queries(); row++) {
        float[] qr = w.query(row);
        for (int h = 0; h < p.heads(); h++) {
          System.arraycopy(qr, h * d, q, (h * p.queries() + row) * d, d);
        }
      }
      writeFloats(ch, q, q.length, data0);
      int batch = Math.max(1, (1 << 20) / d); // about 4 MiB of K and of V per write
      float[] k = new float[batch * d];
      float[] v = new float[batch * d];
      for (int g = 0; g < p.kvHeads(); g++) {
        var stream = w.keys(g);
        for (int pos = 0; pos < p.context(); pos += batch) {
          int count = Math.min(batch, p.context() - pos);
          stream.next(count, k, 0, d, v, 0, d);
          long at = ((long) g * p.context() + pos) * d * 4;
          writeFloats(ch, k, count * d, data0 + qFloats * 4 + at);
          writeFloats(ch, v, count * d, data0 + (qFloats + kvFloats) * 4 + at);
        }
      }
      return ch.size();
    } catch (IOException e) {
      try {
        Files.deleteIfExists(file);
      } catch (IOException ignored) {
        // the write error is the one to report
      }
      throw new UsageException("cannot write " + file + ": " + e.getMessage(), e);
    }
  }

  private static Map<String, Object> tensor(long[] shape, long begin, long end) {
    Map<String, Object> t = new LinkedHashMap<>();
    t.put("dtype", "F32");
    t.put("shape", shape);
    t.put("data_offsets", new long[] {begin, end});
    return t;
  }

  private static void writeFloats(FileChannel ch, float[] x, int count, long position) throws IOException {
    ByteBuffer buf = ByteBuffer.allocate(count * 4).order(ByteOrder.LITTLE_ENDIAN);
    buf.asFloatBuffer().put(x, 0, count);
    writeAt(ch, buf, position);
  }

  private static void writeAt(FileChannel ch, ByteBuffer buf, long position) throws IOException {
    long at = position;
    while (buf.hasRemaining()) {
      at += ch.write(buf, at);
    }
  }
}
