package hflash.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Reader and writer for the <a href="https://github.com/huggingface/safetensors">safetensors</a>
 * format: an 8-byte little-endian header length {@code N}, {@code N} bytes of UTF-8 JSON, then the
 * raw little-endian tensor bytes, each tensor at {@code [begin, end)} of its {@code data_offsets}
 * relative to the end of the header.
 *
 * <p><b>Reading.</b> {@link #open} maps the file read-only into its own shared arena (so tensors
 * may be read from any thread) and validates the whole header before returning: every problem is
 * an {@link IllegalArgumentException} whose message says what is wrong and ends with
 * {@code (file=PATH)}. Tensor dtypes F32, F16 and BF16 are supported; any other dtype is rejected.
 * The data section must be covered exactly (no overlap, no gap, no trailing bytes), as the format
 * requires. I/O failures (missing file, permissions) surface as {@link UncheckedIOException}.
 *
 * <p><b>Ownership.</b> This object owns the arena; the {@link Tensor#data()} segments are
 * borrowed read-only views, valid until {@link #close()} and throwing
 * {@link IllegalStateException} afterwards. {@code close()} is idempotent and thread-safe.
 *
 * <p><b>Writing.</b> {@link #write} writes F32 tensors in the given order and string metadata; the
 * header is padded with spaces to a multiple of 8 bytes so the data starts 8-byte aligned.
 */
public final class Safetensors implements AutoCloseable {

  /** Header size limit of the reference implementation; a larger header is a corrupt length. */
  static final long MAX_HEADER_BYTES = 100_000_000L;

  static final String METADATA_KEY = "__metadata__";

  /**
   * One tensor of a file; {@code data} is a read-only view of its bytes, little-endian.
   *
   * @param name tensor name
   * @param dtype "F32", "F16" or "BF16" as written in the header
   * @param shape dimensions, each &ge; 0 (defensively copied both ways)
   * @param data exactly {@code elementCount() * dtype size} bytes
   */
  public record Tensor(String name, String dtype, long[] shape, MemorySegment data) {

    /** Validates that dtype is supported, dims are non-negative and data's size matches. */
    public Tensor {
      Objects.requireNonNull(name, "name");
      Objects.requireNonNull(shape, "shape");
      Objects.requireNonNull(data, "data");
      int bytes = dtypeBytes(dtype);
      if (bytes < 0) {
        throw new IllegalArgumentException("unknown dtype '" + dtype + "' of tensor '" + name
            + "' (supported: F32, F16, BF16)");
      }
      shape = shape.clone();
      long expected = byteSize(name, shape, bytes);
      if (data.byteSize() != expected) {
        throw new IllegalArgumentException("tensor '" + name + "' data size differs from shape "
            + Arrays.toString(shape) + " of " + dtype + ": " + data.byteSize() + "!=" + expected);
      }
    }

    /** A copy of the dimensions. */
    @Override
    public long[] shape() {
      return shape.clone();
    }

    /** Product of the dimensions (1 for a scalar, shape {@code []}). */
    public long elementCount() {
      return data.byteSize() / dtypeBytes(dtype);
    }

    /**
     * Element {@code flatIndex} in row-major order, widened to float.
     *
     * @throws IndexOutOfBoundsException if flatIndex is outside {@code [0, elementCount())}
     */
    public float getFloat(long flatIndex) {
      Objects.checkIndex(flatIndex, elementCount());
      return read(dtype, data, flatIndex * dtypeBytes(dtype));
    }

    /** All elements, row-major, widened to float. */
    public float[] toFloatArray() {
      long n = elementCount();
      if (n > Integer.MAX_VALUE - 8) {
        throw new IllegalArgumentException(
            "tensor '" + name + "' too large for a float[]: " + n + " elements");
      }
      float[] out = new float[(int) n];
      if (dtype.equals("F32")) {
        MemorySegment.copy(data, F32_LE, 0, out, 0, out.length);
      } else {
        int bytes = dtypeBytes(dtype);
        for (int i = 0; i < out.length; i++) {
          out[i] = read(dtype, data, (long) i * bytes);
        }
      }
      return out;
    }

    @Override
    public String toString() {
      return "Tensor[name=" + name + ", dtype=" + dtype + ", shape=" + Arrays.toString(shape)
          + "]";
    }
  }

  /**
   * A tensor to write: F32 data of the given shape, row-major. The arrays are not copied.
   *
   * @param shape dimensions, each &ge; 0; their product must equal data.length
   * @param data (shape...) row-major
   */
  public record WriteTensor(long[] shape, float[] data) {

    /** Validates that the shape's product equals data.length. */
    public WriteTensor {
      if (shape == null || data == null) {
        throw new IllegalArgumentException("shape and data must not be null");
      }
      long expected = byteSize("(write)", shape, Float.BYTES) / Float.BYTES;
      if (data.length != expected) {
        throw new IllegalArgumentException("data length differs from shape product "
            + Arrays.toString(shape) + ": " + data.length + "!=" + expected);
      }
    }
  }

  private final Path path;
  private final Arena arena;
  private final Map<String, String> metadata; // unmodifiable, header order
  private final Map<String, Tensor> tensors; // unmodifiable, header order
  private final AtomicBoolean closed = new AtomicBoolean();

  private Safetensors(Path path, Arena arena, Map<String, String> metadata,
      Map<String, Tensor> tensors) {
    this.path = path;
    this.arena = arena;
    this.metadata = metadata;
    this.tensors = tensors;
  }

  /**
   * Maps {@code file} read-only and validates its header and offsets.
   *
   * @throws IllegalArgumentException if the file is not a valid safetensors file of F32, F16 and
   *     BF16 tensors; the message names the problem and the file
   * @throws UncheckedIOException if the file cannot be opened or mapped
   */
  public static Safetensors open(Path file) {
    Objects.requireNonNull(file, "file");
    Arena arena = Arena.ofShared();
    try {
      MemorySegment all;
      try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
        long size = ch.size();
        if (size < 8) {
          throw SafetensorsHeader.invalid(file,
              "file too short for a header length: " + size + " bytes < 8");
        }
        all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
      }
      SafetensorsHeader header = SafetensorsHeader.parse(file, all);
      return new Safetensors(file, arena, header.metadata(), header.tensors());
    } catch (IOException e) {
      arena.close();
      throw new UncheckedIOException("cannot read safetensors file " + file, e);
    } catch (RuntimeException | Error e) {
      arena.close();
      throw e;
    }
  }

  /** The {@code __metadata__} string map, in header order; empty if the file has none. */
  public Map<String, String> metadata() {
    return metadata;
  }

  /** Tensor names in header order. */
  public Set<String> names() {
    return tensors.keySet();
  }

  /**
   * The tensor called {@code name}; its data is a borrowed view valid until {@link #close()}.
   *
   * @throws IllegalArgumentException "no tensor 'x' in FILE (has: q, k, v)"
   * @throws IllegalStateException if this file was closed
   */
  public Tensor tensor(String name) {
    if (closed.get()) {
      throw new IllegalStateException("Safetensors is closed: " + path);
    }
    Tensor t = tensors.get(name);
    if (t == null) {
      throw new IllegalArgumentException("no tensor '" + name + "' in " + path + " (has: "
          + String.join(", ", tensors.keySet()) + ")");
    }
    return t;
  }

  /** Unmaps the file. Idempotent and thread-safe; tensor views throw afterwards. */
  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      arena.close();
    }
  }

  @Override
  public String toString() {
    return "Safetensors[" + path + ", tensors=" + tensors.keySet() + "]";
  }

  /**
   * Writes F32 tensors (in the map's iteration order) and string metadata to {@code file},
   * replacing it. The JSON header is padded with spaces to a multiple of 8 bytes.
   *
   * @param tensors name to tensor; names must be non-empty and not "__metadata__"
   * @param metadata string pairs stored under "__metadata__"; null or empty writes none
   * @throws IllegalArgumentException on a bad name or null entry
   * @throws UncheckedIOException if writing fails
   */
  public static void write(Path file, Map<String, WriteTensor> tensors,
      Map<String, String> metadata) {
    Objects.requireNonNull(file, "file");
    if (tensors == null) {
      throw new IllegalArgumentException("tensors must not be null");
    }
    byte[] header = headerJson(tensors, metadata).getBytes(StandardCharsets.UTF_8);
    int padded = (header.length + 7) & ~7;
    ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
    head.putLong(padded).put(header);
    while (head.hasRemaining()) {
      head.put((byte) ' ');
    }
    head.flip();
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE,
        StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
      writeFully(ch, head);
      ByteBuffer buf = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
      for (WriteTensor t : tensors.values()) {
        for (float x : t.data()) {
          if (!buf.hasRemaining()) {
            buf.flip();
            writeFully(ch, buf);
            buf.clear();
          }
          buf.putFloat(x);
        }
      }
      buf.flip();
      writeFully(ch, buf);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write safetensors file " + file, e);
    }
  }

  private static String headerJson(Map<String, WriteTensor> tensors,
      Map<String, String> metadata) {
    StringBuilder json = new StringBuilder("{");
    if (metadata != null && !metadata.isEmpty()) {
      json.append(Json.quote(METADATA_KEY)).append(":{");
      List<String> pairs = new ArrayList<>();
      for (Map.Entry<String, String> e : metadata.entrySet()) {
        if (e.getKey() == null || e.getValue() == null) {
          throw new IllegalArgumentException("metadata key and value must not be null: " + e);
        }
        pairs.add(Json.quote(e.getKey()) + ":" + Json.quote(e.getValue()));
      }
      json.append(String.join(",", pairs)).append('}');
    }
    long offset = 0;
    for (Map.Entry<String, WriteTensor> e : tensors.entrySet()) {
      String name = e.getKey();
      if (name == null || name.isEmpty() || name.equals(METADATA_KEY)) {
        throw new IllegalArgumentException("invalid tensor name: " + name);
      }
      if (e.getValue() == null) {
        throw new IllegalArgumentException("tensor '" + name + "' must not be null");
      }
      long end = offset + (long) e.getValue().data().length * Float.BYTES;
      long[] shape = e.getValue().shape();
      if (json.length() > 1) {
        json.append(',');
      }
      json.append(Json.quote(name)).append(":{\"dtype\":\"F32\",\"shape\":[");
      for (int i = 0; i < shape.length; i++) {
        json.append(i == 0 ? "" : ",").append(shape[i]);
      }
      json.append("],\"data_offsets\":[").append(offset).append(',').append(end).append("]}");
      offset = end;
    }
    return json.append('}').toString();
  }

  private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
    while (buf.hasRemaining()) {
      ch.write(buf);
    }
  }

  // ---- shared helpers (also used by SafetensorsHeader) --------------------------------------

  /** Bytes per element of a supported dtype name, or -1. */
  static int dtypeBytes(String dtype) {
    if (dtype == null) {
      return -1;
    }
    return switch (dtype) {
      case "F32" -> 4;
      case "F16", "BF16" -> 2;
      default -> -1;
    };
  }

  private static final ValueLayout.OfFloat F32_LE =
      ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfShort I16_LE =
      ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  /** One little-endian element of an F32, F16 or BF16 tensor at {@code byteOffset}, widened exactly. */
  static float read(String dtype, MemorySegment data, long byteOffset) {
    return switch (dtype) {
      case "F32" -> data.get(F32_LE, byteOffset);
      case "F16" -> Float.float16ToFloat(data.get(I16_LE, byteOffset));
      case "BF16" -> Float.intBitsToFloat((data.get(I16_LE, byteOffset) & 0xffff) << 16);
      default -> throw new IllegalArgumentException("unknown dtype: " + dtype);
    };
  }

  /** product(shape) * bytes, validating dims &ge; 0 and no overflow. */
  static long byteSize(String name, long[] shape, int bytes) {
    long n = bytes;
    for (long d : shape) {
      if (d < 0) {
        throw new IllegalArgumentException(
            "tensor '" + name + "' has a negative dimension: " + Arrays.toString(shape));
      }
      try {
        n = Math.multiplyExact(n, d);
      } catch (ArithmeticException e) {
        throw new IllegalArgumentException(
            "tensor '" + name + "' size overflows a long: " + Arrays.toString(shape), e);
      }
    }
    return n;
  }
}
