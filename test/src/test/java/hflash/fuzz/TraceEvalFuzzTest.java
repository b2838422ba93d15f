package hflash.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import hflash.cli.Main;
import hflash.io.Safetensors;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Fuzz targets of {@code hflash eval}: a whole trace file through the command's loading, shape validation and
 * evaluation in every mode, exactly as a user runs it. The contract: exit 0, or exit 2 with one line on stderr
 * naming the problem (or exit 1 with the one-line resource refusal of a cache that cannot fit); never another exit 1
 * (an internal error: an exception the command did not turn into a usage error), never a stack trace without
 * {@code --verbose}.
 */
class TraceEvalFuzzTest {

  private static final String[] MODES = {"exact", "sampled", "certified", "budgeted", "estimated", "all"};
  private static final String[] DTYPES = {"f32", "bf16", "f16", "q8_0", "q4_0"};

  /**
   * Raw bytes as the trace file, evaluated in the exact mode (the loading and validation are the same in every
   * mode, and one mode runs several times more inputs per second than all five; {@link #structured} varies the
   * mode). Seeds: small traces cut from the repository's demo trace, and known bad ones.
   */
  @FuzzTest(maxDuration = "10s")
  void raw(byte[] bytes) {
    Path file = FuzzFiles.write("raw-trace.safetensors", bytes);
    eval(file, List.of("--mode", "exact", "--tile", "32"));
  }

  /**
   * A well-formed safetensors file whose tensors, shapes, values (NaN and infinities included), metadata and
   * command-line flags come from the fuzzer: this reaches the shape checks and the engine's input checks, which
   * raw bytes rarely get past the safetensors header to.
   */
  @FuzzTest(maxDuration = "10s")
  void structured(FuzzedDataProvider data) {
    int layers = data.consumeInt(1, 2);
    int heads = data.consumeInt(1, 4);
    int kvHeads = data.consumeInt(1, 4);
    int positions = data.consumeInt(1, 70);
    int qPositions = data.consumeInt(1, positions + 1);
    int dim = data.consumeInt(1, 20);
    Map<String, Safetensors.WriteTensor> tensors = new LinkedHashMap<>();
    for (String name : new String[] {"q", "k", "v", "o"}) {
      int choice = data.consumeInt(0, 9);
      if (choice == 0) {
        continue; // missing tensor (o is optional; q, k, v are not)
      }
      boolean query = name.equals("q") || name.equals("o");
      long[] shape = query ? new long[] {layers, heads, qPositions, dim} : new long[] {layers, kvHeads, positions, dim};
      if (choice == 1) {
        shape = new long[data.consumeInt(0, 5)];
        for (int i = 0; i < shape.length; i++) {
          shape[i] = data.consumeInt(0, 6);
        }
      }
      long n = 1;
      for (long d : shape) {
        n *= d;
      }
      float[] values = new float[(int) n];
      boolean wild = data.consumeInt(0, 7) == 0;
      for (int i = 0; i < values.length; i++) {
        values[i] = wild ? data.consumeFloat() : data.consumeRegularFloat(-8f, 8f);
      }
      tensors.put(name, new Safetensors.WriteTensor(shape, values));
    }
    Map<String, String> metadata = new LinkedHashMap<>();
    if (data.consumeBoolean()) {
      metadata.put("scale", data.consumeBoolean() ? Double.toString(data.consumeDouble()) : data.consumeString(12));
    }
    List<String> args = new ArrayList<>();
    args.add("--mode");
    args.add(data.consumeInt(0, 9) == 0 ? data.consumeString(12) : data.pickValue(MODES));
    args.add("--dtype");
    args.add(data.consumeInt(0, 9) == 0 ? data.consumeString(8) : data.pickValue(DTYPES));
    args.add("--tile");
    // bad tiles too, but none that is valid and huge: a 2^22-token tile is a valid request for gigabytes, which the
    // command would allocate (or refuse with exit 1), and is not a parsing question
    args.add(data.pickValue(new String[] {"32", "64", "32", "64", "0", "-32", "48", "1", "2147483647", "x"}));
    if (data.consumeBoolean()) {
      args.add("--epsilon");
      args.add(data.consumeBoolean() ? Double.toString(data.consumeDouble()) : data.consumeString(8));
    }
    if (data.consumeBoolean()) {
      args.add("--threads");
      args.add(Integer.toString(data.consumeInt(-1, 3)));
    }
    if (data.consumeBoolean()) {
      args.add("--kv-rotation");
      args.add(data.consumeBoolean() ? "hadamard" : data.consumeString(8));
    }
    Path file = FuzzFiles.write("trace.safetensors", new byte[0]);
    Safetensors.write(file, tensors, metadata);
    eval(file, args);
  }

  /** Runs {@code hflash eval --trace FILE args...} and checks the exit-code contract. */
  static void eval(Path file, List<String> args) {
    List<String> argv = new ArrayList<>(List.of("eval", "--trace", file.toString()));
    argv.addAll(args);
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Main.run(argv.toArray(String[]::new), new PrintWriter(out), new PrintWriter(err));
    String e = err.toString();
    if (code == 0) {
      return;
    }
    if (code == Main.EXIT_FAILURE && e.contains("does not fit in memory: needs ") && !e.strip().contains("\n")) {
      return; // the documented resource refusal: a cache larger than the memory available
    }
    if (code != Main.EXIT_USAGE) {
      throw new AssertionError("eval " + argv + " exited " + code + " (not 0 or 2): " + e);
    }
    if (e.strip().isEmpty() || e.strip().contains("\n") || e.contains("\tat ")) {
      throw new AssertionError("eval " + argv + " exited 2 without exactly one line on stderr: " + e);
    }
  }
}
