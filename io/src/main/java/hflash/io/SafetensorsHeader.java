package hflash.io;

import hflash.io.Safetensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The validated header of a mapped safetensors file: every check of {@link Safetensors#open} lives
 * here, in file order (length prefix, UTF-8, JSON, entries, then coverage of the data section).
 *
 * @param metadata unmodifiable {@code __metadata__} map, header order
 * @param tensors unmodifiable name to tensor map, header order; data are views of the mapping
 */
record SafetensorsHeader(Map<String, String> metadata, Map<String, Tensor> tensors) {

  private static final ValueLayout.OfLong I64_LE =
      ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  /** A tensor's byte range in the data section, kept for the overlap and gap checks. */
  private record Range(String name, long begin, long end) {
    @Override
    public String toString() {
      return "'" + name + "' [" + begin + ", " + end + ")";
    }
  }

  /** IAE "problem (file=PATH)": the one message shape of every reader check. */
  static IllegalArgumentException invalid(Path file, String problem) {
    return new IllegalArgumentException(problem + " (file=" + file + ")");
  }

  /**
   * Validates the header of {@code all} (the whole file, at least 8 bytes) and builds the tensors
   * as read-only slices of it.
   */
  static SafetensorsHeader parse(Path file, MemorySegment all) {
    long size = all.byteSize();
    long n = all.get(I64_LE, 0);
    if (n < 0 || n > size - 8) {
      throw invalid(file, "header length past end of file: 8+" + Long.toUnsignedString(n) + ">"
          + size);
    }
    if (n > Safetensors.MAX_HEADER_BYTES) {
      throw invalid(file,
          "header length exceeds limit " + Safetensors.MAX_HEADER_BYTES + ": " + n);
    }
    String text = utf8(file, all.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE));
    Object root;
    try {
      root = Json.parse(text);
    } catch (IllegalArgumentException e) {
      throw invalid(file, "header is " + e.getMessage());
    }
    if (!(root instanceof Map<?, ?> entries)) {
      throw invalid(file, "header is not a JSON object");
    }
    MemorySegment data = all.asSlice(8 + n).asReadOnly();
    Map<String, String> metadata = Map.of();
    LinkedHashMap<String, Tensor> tensors = new LinkedHashMap<>();
    List<Range> ranges = new ArrayList<>();
    for (Map.Entry<?, ?> e : entries.entrySet()) {
      String key = (String) e.getKey();
      if (key.equals(Safetensors.METADATA_KEY)) {
        metadata = metadata(file, e.getValue());
      } else {
        Range r = range(file, key, e.getValue(), data.byteSize());
        ranges.add(r);
        tensors.put(key, tensor(file, key, (Map<?, ?>) e.getValue(), r, data));
      }
    }
    checkCoverage(file, ranges, data.byteSize());
    return new SafetensorsHeader(metadata, Collections.unmodifiableMap(tensors));
  }

  private static String utf8(Path file, byte[] bytes) {
    try {
      return StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(bytes))
          .toString();
    } catch (CharacterCodingException e) {
      throw invalid(file, "header is not valid UTF-8");
    }
  }

  private static Map<String, String> metadata(Path file, Object value) {
    if (!(value instanceof Map<?, ?> map)) {
      throw invalid(file, "__metadata__ is not a JSON object");
    }
    LinkedHashMap<String, String> out = new LinkedHashMap<>();
    for (Map.Entry<?, ?> e : map.entrySet()) {
      if (!(e.getValue() instanceof String s)) {
        throw invalid(file, "__metadata__ value of '" + e.getKey() + "' is not a string: "
            + e.getValue());
      }
      out.put((String) e.getKey(), s);
    }
    return Collections.unmodifiableMap(out);
  }

  /** Checks the entry is an object with a well-formed data_offsets inside the data section. */
  private static Range range(Path file, String name, Object value, long dataBytes) {
    if (!(value instanceof Map<?, ?> entry)) {
      throw invalid(file, "tensor '" + name + "' entry is not a JSON object");
    }
    long[] offsets = longs(file, name, entry, "data_offsets");
    if (offsets.length != 2) {
      throw invalid(file, "tensor '" + name + "' data_offsets length differs from 2: "
          + offsets.length);
    }
    long begin = offsets[0];
    long end = offsets[1];
    if (begin > end) {
      throw invalid(file, "tensor '" + name + "' data_offsets out of order: begin " + begin
          + " > end " + end);
    }
    if (end > dataBytes) {
      throw invalid(file, "tensor '" + name + "' data_offsets past end of data: end " + end
          + " > " + dataBytes + " data bytes");
    }
    return new Range(name, begin, end);
  }

  private static Tensor tensor(Path file, String name, Map<?, ?> entry, Range r,
      MemorySegment data) {
    if (!(entry.get("dtype") instanceof String dtype)) {
      throw invalid(file, "tensor '" + name + "' has no string dtype");
    }
    int bytes = Safetensors.dtypeBytes(dtype);
    if (bytes < 0) {
      throw invalid(file, "tensor '" + name + "' has unknown dtype '" + dtype
          + "' (supported: F32, F16, BF16)");
    }
    long[] shape = longs(file, name, entry, "shape");
    long expected;
    try {
      expected = Safetensors.byteSize(name, shape, bytes);
    } catch (IllegalArgumentException e) {
      throw invalid(file, e.getMessage());
    }
    if (r.end - r.begin != expected) {
      throw invalid(file, "tensor '" + name + "' size mismatch: data_offsets span "
          + (r.end - r.begin) + " bytes, shape " + Arrays.toString(shape) + " of "
          + dtype + " needs " + expected);
    }
    return new Tensor(name, dtype, shape, data.asSlice(r.begin, r.end - r.begin));
  }

  /** entry[key] as an array of non-negative JSON integers. */
  private static long[] longs(Path file, String name, Map<?, ?> entry, String key) {
    Object v = entry.get(key);
    String problem = "tensor '" + name + "' " + key + " is not an array of non-negative integers: ";
    if (!(v instanceof List<?> list)) {
      throw invalid(file, problem + v);
    }
    long[] out = new long[list.size()];
    for (int i = 0; i < out.length; i++) {
      if (!(list.get(i) instanceof Long x) || x < 0) {
        throw invalid(file, problem + v);
      }
      out[i] = x;
    }
    return out;
  }

  /** The format requires the tensors to tile the data section exactly: no overlap, gap or tail. */
  private static void checkCoverage(Path file, List<Range> ranges, long dataBytes) {
    List<Range> sorted = new ArrayList<>(ranges);
    sorted.sort(Comparator.comparingLong(Range::begin).thenComparingLong(Range::end));
    long covered = 0;
    Range previous = null;
    for (Range r : sorted) {
      if (r.begin < covered) {
        throw invalid(file, "tensors overlap: " + previous + " and " + r);
      }
      if (r.begin > covered) {
        throw invalid(file, "gap in data before tensor " + r + ": bytes [" + covered + ", "
            + r.begin + ") belong to no tensor");
      }
      covered = r.end;
      previous = r;
    }
    if (covered != dataBytes) {
      throw invalid(file, "data section has " + (dataBytes - covered)
          + " trailing bytes past the last tensor");
    }
  }
}
