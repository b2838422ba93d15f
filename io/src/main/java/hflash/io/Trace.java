package hflash.io;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

/**
 * An attention trace read into heap arrays and checked for consistent shapes. Layout (as written by
 * {@code ../shared/data/traces/make_traces.py}): {@code q}, {@code o} (layers, heads, qPositions, dim);
 * {@code k}, {@code v} (layers, kvHeads, positions, dim); {@code o} optional. When qPositions is smaller
 * than positions, query row i sits at position {@code positions - qPositions + i}.
 *
 * <p>Masking: a row attends to the keys up to its own position (causal, a decoder's attention),
 * unless the metadata value {@code attention} begins with the word {@code bidirectional} (an
 * encoder's attention), in which case every row attends to every key. {@link #keys(int)} says how many.
 */
public record Trace(
    Path path,
    int layers,
    int heads,
    int kvHeads,
    int qPositions,
    int positions,
    int dim,
    float[] q, // (layers, heads, qPositions, dim)
    float[] k, // (layers, kvHeads, positions, dim)
    float[] v, // (layers, kvHeads, positions, dim)
    float[] o, // (layers, heads, qPositions, dim) or null
    double scale,
    Map<String, String> metadata) {

  /** Reads and checks a trace; every problem with the file is a {@link UsageException} naming it. */
  public static Trace read(Path path) {
    Safetensors st;
    try {
      st = Safetensors.open(path);
    } catch (IllegalArgumentException | IllegalStateException e) {
      throw new UsageException(e.getMessage(), e);
    }
    try (st) {
      return read(path, st);
    } catch (IllegalArgumentException e) {
      throw new UsageException("trace " + path.getFileName() + ": " + e.getMessage(), e);
    }
  }

  private static Trace read(Path path, Safetensors st) {
    String file = path.getFileName().toString();
    for (String name : new String[] {"q", "k", "v"}) {
      if (!st.names().contains(name)) {
        throw new UsageException("trace " + file + " has no tensor '" + name + "' (has: " + String.join(", ", st.names()) + ")");
      }
    }
    var q = st.tensor("q");
    var k = st.tensor("k");
    var v = st.tensor("v");
    var o = st.names().contains("o") ? st.tensor("o") : null;
    long[] qs = shape4(file, "q", q.shape());
    long[] ks = shape4(file, "k", k.shape());
    long[] vs = shape4(file, "v", v.shape());
    if (!Arrays.equals(ks, vs)) {
      throw new UsageException("trace " + file + ": v shape differs from k shape: " + Arrays.toString(vs) + "!=" + Arrays.toString(ks));
    }
    if (qs[0] != ks[0] || qs[3] != ks[3]) {
      throw new UsageException("trace " + file + ": q shape " + Arrays.toString(qs) + " does not match k shape "
          + Arrays.toString(ks) + " in layers or head dim");
    }
    if (qs[1] % ks[1] != 0) {
      throw new UsageException("trace " + file + ": query heads must be a multiple of kv heads: " + qs[1] + " % " + ks[1] + " != 0");
    }
    if (qs[2] > ks[2]) {
      throw new UsageException("trace " + file + ": q has more positions than k: " + qs[2] + ">" + ks[2]);
    }
    if (o != null && !Arrays.equals(o.shape(), qs)) {
      throw new UsageException("trace " + file + ": o shape differs from q shape: " + Arrays.toString(o.shape()) + "!=" + Arrays.toString(qs));
    }
    int dim = (int) qs[3];
    double scale = 1.0 / Math.sqrt(dim);
    String s = st.metadata().get("scale");
    if (s != null) {
      try {
        scale = Double.parseDouble(s);
      } catch (NumberFormatException e) {
        throw new UsageException("trace " + file + ": metadata scale is not a number: " + s);
      }
      if (!(scale > 0) || !Double.isFinite(scale)) {
        throw new UsageException("trace " + file + ": metadata scale must be positive and finite: " + s);
      }
    }
    return new Trace(
        path, (int) qs[0], (int) qs[1], (int) ks[1], (int) qs[2], (int) ks[2], dim,
        q.toFloatArray(), k.toFloatArray(), v.toFloatArray(), o == null ? null : o.toFloatArray(),
        scale, java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(st.metadata())));
  }

  private static long[] shape4(String file, String name, long[] shape) {
    if (shape.length != 4) {
      throw new UsageException("trace " + file + ": " + name + " must have 4 dimensions: " + Arrays.toString(shape));
    }
    for (long s : shape) {
      if (s <= 0 || s > Integer.MAX_VALUE) {
        throw new UsageException("trace " + file + ": " + name + " has an empty or huge dimension: " + Arrays.toString(shape));
      }
    }
    if ((double) shape[0] * shape[1] * shape[2] * shape[3] > Integer.MAX_VALUE - 8) {
      throw new UsageException("trace " + file + ": " + name + " is too large for a heap array: " + Arrays.toString(shape));
    }
    return shape;
  }

  /** Metadata key whose value says how rows attend: see {@link #bidirectional()}. */
  public static final String ATTENTION_KEY = "attention";

  /**
   * True when the metadata value {@code attention} begins with the word {@code bidirectional}
   * (case ignored, leading blanks ignored): every query row attends to every key. Otherwise causal.
   */
  public boolean bidirectional() {
    String a = metadata.get(ATTENTION_KEY);
    if (a == null) {
      return false;
    }
    String s = a.strip().toLowerCase(java.util.Locale.ROOT);
    return s.startsWith("bidirectional") && (s.length() == "bidirectional".length()
        || !Character.isLetterOrDigit(s.charAt("bidirectional".length())));
  }

  /** {@code "bidirectional"} or {@code "causal"}: the masking {@link #keys(int)} applies. */
  public String attention() {
    return bidirectional() ? "bidirectional" : "causal";
  }

  /**
   * Keys query row {@code row} attends to, always the first ones of the context: every position when
   * {@link #bidirectional()}, else those up to and including the row's own position.
   */
  public int keys(int row) {
    return bidirectional() ? positions : position(row) + 1;
  }

  /** Position of query row {@code row}: the last qPositions positions of the context. */
  public int position(int row) {
    return positions - qPositions + row;
  }

  /** Query of row {@code row} of layer {@code layer} for every head into {@code dst} (heads, dim). */
  public void query(int layer, int row, float[] dst) {
    gatherRow(q, layer, heads, qPositions, row, dst);
  }

  /** Stored output of row {@code row}, or false when the trace has none. */
  public boolean output(int layer, int row, float[] dst) {
    if (o == null) {
      return false;
    }
    gatherRow(o, layer, heads, qPositions, row, dst);
    return true;
  }

  private void gatherRow(float[] src, int layer, int nHeads, int rows, int row, float[] dst) {
    for (int h = 0; h < nHeads; h++) {
      System.arraycopy(src, ((layer * nHeads + h) * rows + row) * dim, dst, h * dim, dim);
    }
  }

  /** Keys or values of one layer as (positions, kvHeads, dim): the order {@code KvCache.append} takes. */
  public float[] positionMajor(float[] kv, int layer) {
    float[] dst = new float[positions * kvHeads * dim];
    for (int g = 0; g < kvHeads; g++) {
      for (int p = 0; p < positions; p++) {
        System.arraycopy(kv, ((layer * kvHeads + g) * positions + p) * dim, dst, (p * kvHeads + g) * dim, dim);
      }
    }
    return dst;
  }

  /** The first {@code n} positions of one layer's keys or values as (kvHeads, n, dim): the reference's order. */
  public float[] prefix(float[] kv, int layer, int n) {
    float[] dst = new float[kvHeads * n * dim];
    for (int g = 0; g < kvHeads; g++) {
      System.arraycopy(kv, (layer * kvHeads + g) * positions * dim, dst, g * n * dim, n * dim);
    }
    return dst;
  }
}
