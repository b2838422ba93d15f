package hflash.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.io.Safetensors.Tensor;
import hflash.io.Safetensors.WriteTensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {

  @TempDir Path dir;

  // ---- round trip ----------------------------------------------------------------------------

  @Test
  void writeThenReadRoundTripsTensorsMetadataAndOrder() throws IOException {
    long seed = 31L;
    Random rnd = new Random(seed);
    Map<String, WriteTensor> tensors = new LinkedHashMap<>();
    float[] a = new float[2 * 3 * 5];
    for (int i = 0; i < a.length; i++) {
      a[i] = (float) rnd.nextGaussian();
    }
    tensors.put("zeta", new WriteTensor(new long[] {2, 3, 5}, a));
    tensors.put("alpha", new WriteTensor(new long[] {}, new float[] {Float.MIN_VALUE}));
    tensors.put("empty", new WriteTensor(new long[] {0, 4}, new float[0]));
    tensors.put("wé\"ird\n", new WriteTensor(new long[] {3}, new float[] {-0f, 1e30f, -2f}));
    Map<String, String> meta = new LinkedHashMap<>();
    meta.put("model", "tiny \"quoted\" \\ back\tslash\nnewline é 漢 \u0001");
    meta.put("n_layers", "5");
    Path file = dir.resolve("rt.safetensors");
    Safetensors.write(file, tensors, meta);

    byte[] bytes = Files.readAllBytes(file);
    long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
    assertEquals(0, n % 8, "header padded to a multiple of 8");
    String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
    String json = header.stripTrailing();
    assertTrue(json.endsWith("}"), header);
    assertTrue(header.substring(json.length()).chars().allMatch(c -> c == ' '), header);
    assertEquals(8 + n + 4L * (30 + 1 + 0 + 3), bytes.length);

    try (var st = Safetensors.open(file)) {
      assertEquals(List.of("zeta", "alpha", "empty", "wé\"ird\n"), List.copyOf(st.names()));
      assertEquals(meta, st.metadata());
      Tensor z = st.tensor("zeta");
      assertEquals("F32", z.dtype());
      assertArrayEquals(new long[] {2, 3, 5}, z.shape());
      assertEquals(30, z.elementCount());
      assertArrayEquals(a, z.toFloatArray(), "seed=" + seed);
      assertEquals(a[17], z.getFloat(17));
      assertEquals(1, st.tensor("alpha").elementCount());
      assertEquals(Float.MIN_VALUE, st.tensor("alpha").getFloat(0));
      assertEquals(0, st.tensor("empty").toFloatArray().length);
      assertArrayEquals(new float[] {-0f, 1e30f, -2f}, st.tensor("wé\"ird\n").toFloatArray());
      assertThrows(IndexOutOfBoundsException.class, () -> z.getFloat(30));
    }
  }

  @Test
  void writeWithoutMetadataAndNoTensors() {
    Path file = dir.resolve("empty.safetensors");
    Safetensors.write(file, Map.of(), null);
    try (var st = Safetensors.open(file)) {
      assertTrue(st.names().isEmpty());
      assertTrue(st.metadata().isEmpty());
    }
  }

  @Test
  void writeRejectsShapeDataMismatchAndBadNames() {
    var e = assertThrows(IllegalArgumentException.class,
        () -> new WriteTensor(new long[] {2, 3}, new float[5]));
    assertEquals("data length differs from shape product [2, 3]: 5!=6", e.getMessage());
    Map<String, WriteTensor> bad = Map.of("__metadata__", new WriteTensor(new long[] {1},
        new float[1]));
    var e2 = assertThrows(IllegalArgumentException.class,
        () -> Safetensors.write(dir.resolve("x"), bad, null));
    assertEquals("invalid tensor name: __metadata__", e2.getMessage());
  }

  // ---- the real trace ------------------------------------------------------------------------

  @Test
  void readsTheRealStoriesTrace() {
    Path file = TestData.trace("stories260K-seq0.safetensors");
    try (var st = Safetensors.open(file)) {
      assertEquals(List.of("q", "k", "v", "o"), List.copyOf(st.names()));
      assertArrayEquals(new long[] {5, 8, 512, 8}, st.tensor("q").shape());
      assertArrayEquals(new long[] {5, 4, 512, 8}, st.tensor("k").shape());
      assertArrayEquals(new long[] {5, 4, 512, 8}, st.tensor("v").shape());
      assertArrayEquals(new long[] {5, 8, 512, 8}, st.tensor("o").shape());
      for (String name : st.names()) {
        assertEquals("F32", st.tensor(name).dtype());
      }
      assertEquals(List.of("model", "model_sha256", "text_source", "stories", "text", "licence",
          "seq_len", "n_layers", "n_heads", "n_kv_heads", "head_dim", "scale", "rope_theta",
          "rope", "gqa", "layout", "token_ids"), List.copyOf(st.metadata().keySet()));
      assertEquals("512", st.metadata().get("seq_len"));
      assertEquals("4", st.metadata().get("n_kv_heads"));
      assertEquals(-0.8642754554748535f, st.tensor("q").getFloat(0));
      assertEquals(0.013907983899116516f, st.tensor("q").getFloat(1));
      var e = assertThrows(IllegalArgumentException.class, () -> st.tensor("x"));
      assertEquals("no tensor 'x' in " + file + " (has: q, k, v, o)", e.getMessage());
    }
  }

  /** The trace's own claim: o is causal softmax attention of q, k, v (README: max diff 5.5e-6). */
  @Test
  void realTraceOutputIsCausalAttentionOfItsInputs() {
    try (var st = Safetensors.open(TestData.trace("stories260K-seq0.safetensors"))) {
      float[] q = st.tensor("q").toFloatArray();
      float[] k = st.tensor("k").toFloatArray();
      float[] v = st.tensor("v").toFloatArray();
      float[] o = st.tensor("o").toFloatArray();
      double scale = Double.parseDouble(st.metadata().get("scale"));
      int layer = 3;
      int head = 5;
      int kvHead = head / 2;
      for (int t : new int[] {0, 1, 63, 407, 408, 511}) {
        int qBase = ((layer * 8 + head) * 512 + t) * 8;
        int kvBase = (layer * 4 + kvHead) * 512 * 8;
        double[] s = new double[t + 1];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j <= t; j++) {
          double dot = 0;
          for (int c = 0; c < 8; c++) {
            dot += (double) q[qBase + c] * k[kvBase + j * 8 + c];
          }
          s[j] = scale * dot;
          max = Math.max(max, s[j]);
        }
        double sum = 0;
        double[] out = new double[8];
        for (int j = 0; j <= t; j++) {
          double p = Math.exp(s[j] - max);
          sum += p;
          for (int c = 0; c < 8; c++) {
            out[c] += p * v[kvBase + j * 8 + c];
          }
        }
        for (int c = 0; c < 8; c++) {
          assertEquals(out[c] / sum, o[qBase + c], 1e-5, "t=" + t + " c=" + c);
        }
      }
    }
  }

  // ---- half-precision tensors ------------------------------------------------------------------

  @Test
  void readsF16AndBf16Tensors() throws IOException {
    ByteBuffer data = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
    data.putShort(Float.floatToFloat16(1.5f)).putShort(Float.floatToFloat16(-2f)).putShort(Float.floatToFloat16(0x1p-24f));
    data.putShort(toBf16(3f)).putShort(toBf16(-0.5f)).putShort(toBf16(1e30f));
    Path file = writeRaw("halves",
        "{\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
            + "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,3],\"data_offsets\":[6,12]}}",
        data.array());
    try (var st = Safetensors.open(file)) {
      assertArrayEquals(new float[] {1.5f, -2f, 0x1p-24f}, st.tensor("h").toFloatArray());
      assertEquals(-2f, st.tensor("h").getFloat(1));
      assertArrayEquals(new float[] {3f, -0.5f, Float.intBitsToFloat((toBf16(1e30f) & 0xffff) << 16)},
          st.tensor("b").toFloatArray());
      assertEquals("BF16", st.tensor("b").dtype());
    }
  }

  /** bfloat16 by round-to-nearest-even (finite inputs only): the bits a model's BF16 tensor holds. */
  private static short toBf16(float v) {
    int bits = Float.floatToRawIntBits(v);
    return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
  }

  // ---- malformed files -------------------------------------------------------------------------

  @Test
  void rejectsEmptyAndShortFiles() throws IOException {
    Path empty = Files.write(dir.resolve("empty"), new byte[0]);
    assertInvalid(empty, "file too short for a header length: 0 bytes < 8");
    Path five = Files.write(dir.resolve("five"), new byte[5]);
    assertInvalid(five, "file too short for a header length: 5 bytes < 8");
  }

  @Test
  void rejectsHeaderLengthPastEnd() throws IOException {
    ByteBuffer b = ByteBuffer.allocate(18).order(ByteOrder.LITTLE_ENDIAN).putLong(100);
    Path file = Files.write(dir.resolve("long"), b.array());
    assertInvalid(file, "header length past end of file: 8+100>18");
    b.putLong(0, -1L); // 2^64-1 unsigned
    Files.write(file, b.array());
    assertInvalid(file, "header length past end of file: 8+18446744073709551615>18");
  }

  @Test
  void rejectsMalformedJson() throws IOException {
    assertInvalid(writeRaw("a", "{\"a\":", new byte[0]),
        "header is malformed JSON at offset 8: unexpected end of input" /* after the padding */);
    assertInvalid(writeRaw("b", "{\"x\":{} junk", new byte[0]),
        "header is malformed JSON at offset 8: expected ',' or '}'");
    assertInvalid(writeRaw("c", "{\"x\":1,\"x\":2}", new byte[0]),
        "header is malformed JSON at offset 7: duplicate key \"x\"");
    assertInvalid(writeRaw("d", "[1, 2]", new byte[0]), "header is not a JSON object");
    assertInvalid(writeRaw("e", "{\"s\":\"a\u0001\"}", new byte[0]),
        "header is malformed JSON at offset 7: unescaped control character in string");
    Path badUtf8 = dir.resolve("f");
    ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(8);
    b.put(new byte[] {'{', '"', (byte) 0xff, '"', ':', '1', '}', ' '});
    Files.write(badUtf8, b.array());
    assertInvalid(badUtf8, "header is not valid UTF-8");
  }

  @Test
  void rejectsBadOffsets() throws IOException {
    assertInvalid(writeRaw("past",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", new byte[8]),
        "tensor 'x' data_offsets past end of data: end 16 > 8 data bytes");
    assertInvalid(writeRaw("order",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", new byte[8]),
        "tensor 'x' data_offsets out of order: begin 8 > end 4");
    assertInvalid(writeRaw("three",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", new byte[8]),
        "tensor 'x' data_offsets length differs from 2: 3");
    assertInvalid(writeRaw("neg",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,4]}}", new byte[8]),
        "tensor 'x' data_offsets is not an array of non-negative integers: [-4, 4]");
    assertInvalid(writeRaw("overlap",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            + "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[12]),
        "tensors overlap: 'x' [0, 8) and 'y' [4, 12)");
    assertInvalid(writeRaw("gap",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", new byte[8]),
        "gap in data before tensor 'x' [4, 8): bytes [0, 4) belong to no tensor");
    assertInvalid(writeRaw("tail",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[8]),
        "data section has 4 trailing bytes past the last tensor");
  }

  @Test
  void rejectsSizeMismatchAndUnknownDtype() throws IOException {
    assertInvalid(writeRaw("size",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", new byte[8]),
        "tensor 'x' size mismatch: data_offsets span 8 bytes, shape [3] of F32 needs 12");
    assertInvalid(writeRaw("dtype",
        "{\"x\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", new byte[8]),
        "tensor 'x' has unknown dtype 'I64' (supported: F32, F16, BF16)");
    assertInvalid(writeRaw("nodtype",
        "{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]),
        "tensor 'x' has no string dtype");
    assertInvalid(writeRaw("shape",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", new byte[4]),
        "tensor 'x' shape is not an array of non-negative integers: [1.5]");
    assertInvalid(writeRaw("entry", "{\"x\":3}", new byte[0]),
        "tensor 'x' entry is not a JSON object");
    assertInvalid(writeRaw("meta", "{\"__metadata__\":{\"a\":1}}", new byte[0]),
        "__metadata__ value of 'a' is not a string: 1");
  }

  @Test
  void missingFileIsAnIoError() {
    assertThrows(UncheckedIOException.class, () -> Safetensors.open(dir.resolve("nope")));
  }

  @Test
  void tensorsThrowAfterClose() {
    Path file = dir.resolve("c.safetensors");
    Safetensors.write(file, Map.of("t", new WriteTensor(new long[] {2}, new float[] {1, 2})),
        Map.of());
    var st = Safetensors.open(file);
    Tensor t = st.tensor("t");
    assertEquals(2f, t.getFloat(1));
    st.close();
    st.close(); // idempotent
    assertThrows(IllegalStateException.class, () -> t.getFloat(1));
    var e = assertThrows(IllegalStateException.class, () -> st.tensor("t"));
    assertEquals("Safetensors is closed: " + file, e.getMessage());
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /** Writes length prefix + header (space padded to 8) + data, like a real producer would. */
  private Path writeRaw(String name, String header, byte[] data) throws IOException {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    int padded = (h.length + 7) & ~7;
    ByteBuffer b = ByteBuffer.allocate(8 + padded + data.length).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(padded).put(h);
    for (int i = h.length; i < padded; i++) {
      b.put((byte) ' ');
    }
    b.put(data);
    return Files.write(dir.resolve(name + ".safetensors"), b.array());
  }

  private static void assertInvalid(Path file, String problem) {
    var e = assertThrows(IllegalArgumentException.class, () -> Safetensors.open(file).close());
    assertEquals(problem + " (file=" + file + ")", e.getMessage());
  }
}
