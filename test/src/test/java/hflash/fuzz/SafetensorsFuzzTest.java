package hflash.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import hflash.io.Safetensors;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;

/**
 * Fuzz targets of the safetensors reader: any byte string either opens (and then every tensor reads in full) or
 * fails with one IllegalArgumentException naming the file. Anything else thrown (an index error, a
 * ClassCastException, OutOfMemoryError from a lying length, StackOverflowError from deep JSON) is a finding.
 *
 * <p>Regression mode (every {@code mvn verify}) replays the corpus in {@code src/test/resources/hflash/fuzz/
 * SafetensorsFuzzTestInputs/<method>/}; {@code ./hflash fuzz --target SafetensorsFuzzTest#file} explores.
 */
class SafetensorsFuzzTest {

  /** The whole file as the fuzzer gives it: length prefix, header and data. */
  @FuzzTest(maxDuration = "10s")
  void file(byte[] bytes) {
    open(FuzzFiles.write("fuzz.safetensors", bytes));
  }

  /**
   * Only the JSON header: the length prefix is made right, so every input reaches the JSON parser and the header
   * checks (nesting, numbers, escapes, duplicate keys, offsets) instead of dying on the first 8 bytes.
   */
  @FuzzTest(maxDuration = "10s")
  void header(byte[] json) {
    ByteBuffer b = ByteBuffer.allocate(8 + json.length).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(json.length).put(json);
    open(FuzzFiles.write("header.safetensors", b.array()));
  }

  private static void open(Path file) {
    try (Safetensors st = Safetensors.open(file)) {
      for (String name : st.names()) {
        Safetensors.Tensor t = st.tensor(name);
        float[] values = t.toFloatArray();
        if (values.length != t.elementCount()) {
          throw new AssertionError("tensor " + name + " read " + values.length + " of " + t.elementCount());
        }
      }
      st.metadata().forEach((k, v) -> {
        if (k == null || v == null) {
          throw new AssertionError("null metadata entry");
        }
      });
    } catch (IllegalArgumentException e) {
      FuzzFiles.assertNamesFile(e, file);
    }
  }
}
