package hflash.examples.llama2;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The weights of a llama2.c "version 0" checkpoint, loaded onto the heap as float32.
 *
 * <p>File format (little-endian): a header of 7 int32 {@code dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len}, then float32 arrays in the order of the fields below, then {@code seq_len*head_dim}
 * unused legacy RoPE floats, then (only when {@code vocab_size < 0}) a separate classifier {@code wcls}. A positive
 * {@code vocab_size} means the classifier shares the token-embedding matrix.
 *
 * <p>{@link #load(Path)} validates the header and that the file size is exactly what the header implies, so a
 * truncated or corrupt file fails with one {@link IllegalArgumentException} naming the file and the problem instead of
 * producing garbage. The file is mapped read-only in a confined arena that is closed before {@code load} returns;
 * nothing off-heap outlives the call.
 *
 * <p>Arrays are per layer so that no single Java array has to exceed 2^31 elements. They are borrowed by
 * {@link Transformer} and must not be modified. Matrices are row-major {@code (out, in)}.
 */
public final class Llama2Checkpoint {

  /** Header size in bytes: 7 x int32. */
  static final int HEADER_BYTES = 7 * Integer.BYTES;

  private static final ValueLayout.OfInt I32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfFloat F32_LE =
      ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  /**
   * Model hyper-parameters from the header.
   *
   * @param sharedClassifier true when {@code vocab_size > 0} in the file (classifier = token embedding)
   */
  public record Config(int dim, int hiddenDim, int layers, int heads, int kvHeads, int vocabSize, int seqLen,
      boolean sharedClassifier) {

    /** Per-head width: {@code dim / heads}. */
    public int headDim() {
      return dim / heads;
    }

    /** Width of the key and value projections: {@code kvHeads * headDim}. */
    public int kvDim() {
      return kvHeads * headDim();
    }
  }

  private final Path file;
  private final Config config;
  final float[] tokenEmbedding; // (vocab, dim)
  final float[][] rmsAtt; // [layers] (dim)
  final float[][] wq; // [layers] (dim, dim)
  final float[][] wk; // [layers] (kvDim, dim)
  final float[][] wv; // [layers] (kvDim, dim)
  final float[][] wo; // [layers] (dim, dim)
  final float[][] rmsFfn; // [layers] (dim)
  final float[][] w1; // [layers] (hiddenDim, dim)
  final float[][] w2; // [layers] (dim, hiddenDim)
  final float[][] w3; // [layers] (hiddenDim, dim)
  final float[] rmsFinal; // (dim)
  final float[] wcls; // (vocab, dim); the same array as tokenEmbedding when the classifier is shared

  private Llama2Checkpoint(Path file, Config config, Reader r) {
    int d = config.dim(), h = config.hiddenDim(), kv = config.kvDim(), n = config.layers();
    this.file = file;
    this.config = config;
    this.tokenEmbedding = r.floats((long) config.vocabSize() * d);
    this.rmsAtt = r.perLayer(n, d);
    this.wq = r.perLayer(n, (long) d * d);
    this.wk = r.perLayer(n, (long) kv * d);
    this.wv = r.perLayer(n, (long) kv * d);
    this.wo = r.perLayer(n, (long) d * d);
    this.rmsFfn = r.perLayer(n, d);
    this.w1 = r.perLayer(n, (long) h * d);
    this.w2 = r.perLayer(n, (long) d * h);
    this.w3 = r.perLayer(n, (long) h * d);
    this.rmsFinal = r.floats(d);
    r.skipFloats((long) config.seqLen() * config.headDim()); // legacy freq_cis_real + freq_cis_imag
    this.wcls = config.sharedClassifier() ? tokenEmbedding : r.floats((long) config.vocabSize() * d);
  }

  /** The file this checkpoint was loaded from. */
  public Path file() {
    return file;
  }

  /** The header hyper-parameters. */
  public Config config() {
    return config;
  }

  /**
   * Loads and validates a llama2.c version-0 checkpoint.
   *
   * @throws IllegalArgumentException if the header is invalid or the file size differs from what it implies
   * @throws IOException if the file cannot be read
   */
  public static Llama2Checkpoint load(Path file) throws IOException {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ); Arena arena = Arena.ofConfined()) {
      long size = ch.size();
      if (size < HEADER_BYTES) {
        throw invalid(file, "file shorter than the " + HEADER_BYTES + "-byte header: " + size + " bytes");
      }
      MemorySegment seg = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
      Config config = parseHeader(file, seg);
      long expected;
      try {
        expected = expectedBytes(config);
      } catch (ArithmeticException e) {
        throw invalid(file, "corrupt header: implied size overflows a long (" + describe(config) + ")");
      }
      if (size != expected) {
        String what = size < expected ? "truncated" : "corrupt";
        throw invalid(file, what + ": file size differs from what the header implies: " + size + "!=" + expected
            + " bytes (" + describe(config) + ")");
      }
      try {
        return new Llama2Checkpoint(file, config, new Reader(seg, HEADER_BYTES));
      } catch (IllegalArgumentException e) { // a tensor too large for one Java array: name the file
        throw invalid(file, e.getMessage());
      }
    }
  }

  /** Reads and validates the 7-int header. */
  private static Config parseHeader(Path file, MemorySegment seg) {
    int[] h = new int[7]; // dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
    for (int i = 0; i < h.length; i++) {
      h[i] = seg.get(I32_LE, (long) i * Integer.BYTES);
    }
    String[] names = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < h.length; i++) {
      // vocab_size may be negative (it flags an unshared classifier); only its magnitude is a size
      int v = i == 5 ? (h[i] == Integer.MIN_VALUE ? 0 : Math.abs(h[i])) : h[i];
      if (v <= 0) {
        throw invalid(file, "corrupt header: " + names[i] + " must be positive: " + h[i]);
      }
    }
    int dim = h[0], heads = h[3], kvHeads = h[4];
    if (heads % kvHeads != 0) {
      throw invalid(file, "corrupt header: n_heads must be a multiple of n_kv_heads: " + heads + " % " + kvHeads
          + " != 0");
    }
    if (dim % heads != 0) {
      throw invalid(file, "corrupt header: dim must be a multiple of n_heads: " + dim + " % " + heads + " != 0");
    }
    if ((dim / heads) % 2 != 0) {
      throw invalid(file, "corrupt header: head_dim must be even for RoPE: " + (dim / heads));
    }
    return new Config(dim, h[1], h[2], heads, kvHeads, Math.abs(h[5]), h[6], h[5] > 0);
  }

  /** The exact file size the header implies, in bytes (overflow-checked). */
  static long expectedBytes(Config c) {
    long d = c.dim(), h = c.hiddenDim(), kv = c.kvDim(), n = c.layers(), vocab = c.vocabSize();
    long floats = Math.multiplyExact(vocab, d); // token embedding
    floats = Math.addExact(floats, Math.multiplyExact(n, 2 * d)); // rms_att, rms_ffn
    floats = Math.addExact(floats, Math.multiplyExact(n, Math.multiplyExact(2 * d, d))); // wq, wo
    floats = Math.addExact(floats, Math.multiplyExact(n, Math.multiplyExact(2 * kv, d))); // wk, wv
    floats = Math.addExact(floats, Math.multiplyExact(n, Math.multiplyExact(3 * h, d))); // w1, w2, w3
    floats = Math.addExact(floats, d); // rms_final
    floats = Math.addExact(floats, Math.multiplyExact((long) c.seqLen(), c.headDim())); // legacy RoPE tables
    if (!c.sharedClassifier()) {
      floats = Math.addExact(floats, Math.multiplyExact(vocab, d)); // wcls
    }
    return Math.addExact(HEADER_BYTES, Math.multiplyExact(floats, Float.BYTES));
  }

  private static String describe(Config c) {
    return "dim=" + c.dim() + " hidden_dim=" + c.hiddenDim() + " n_layers=" + c.layers() + " n_heads=" + c.heads()
        + " n_kv_heads=" + c.kvHeads() + " vocab_size=" + (c.sharedClassifier() ? c.vocabSize() : -c.vocabSize())
        + " seq_len=" + c.seqLen();
  }

  private static IllegalArgumentException invalid(Path file, String problem) {
    return new IllegalArgumentException("invalid llama2.c checkpoint " + file + ": " + problem);
  }

  @Override
  public String toString() {
    return "Llama2Checkpoint[" + file + ", " + describe(config) + "]";
  }

  /** Sequential little-endian float reader over the mapped file; the size was validated up front. */
  private static final class Reader {
    private final MemorySegment seg;
    private long offset; // bytes

    Reader(MemorySegment seg, long offset) {
      this.seg = seg;
      this.offset = offset;
    }

    float[] floats(long count) {
      if (count > Integer.MAX_VALUE - 8) {
        throw new IllegalArgumentException("tensor too large for one Java array: " + count + " floats");
      }
      float[] out = new float[(int) count];
      MemorySegment.copy(seg, F32_LE, offset, out, 0, out.length);
      offset += count * Float.BYTES;
      return out;
    }

    float[][] perLayer(int layers, long count) {
      float[][] out = new float[layers][];
      for (int l = 0; l < layers; l++) {
        out[l] = floats(count);
      }
      return out;
    }

    void skipFloats(long count) {
      offset += count * Float.BYTES;
    }
  }
}
