package hflash.cli;

import hflash.io.UsageException;
import hflash.memory.DType;
import java.nio.file.Files;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/**
 * picocli mixins for the flags that several commands declare word for word (name, default,
 * description), so each is written once. A flag whose description differs between commands (the
 * {@code --threads}, {@code --scheduler}, {@code --seed} and {@code --tile} of each command say what
 * they drive there) stays in its command.
 */
final class SharedOptions {

  private SharedOptions() {}

  /** {@code --heads}, {@code --kv-heads}, {@code --dim} of {@code bench} and {@code gen}. */
  static final class Shape {

    @Option(names = "--heads", defaultValue = "32", description = "Query heads (default ${DEFAULT-VALUE}).")
    int heads;

    @Option(names = "--kv-heads", defaultValue = "8", description = "KV heads (default ${DEFAULT-VALUE}).")
    int kvHeads;

    @Option(names = "--dim", defaultValue = "128", description = "Head dimension d (default ${DEFAULT-VALUE}).")
    int dim;

    /** Each of context, heads, kv-heads and dim positive, in that order, naming the flag. */
    static void checkPositive(int context, int heads, int kvHeads, int dim) {
      hflash.bench.ShapeChecks.checkPositive(context, heads, kvHeads, dim);
    }

    /** Every KV head serves the same number of query heads. */
    static void checkGroups(int heads, int kvHeads) {
      hflash.bench.ShapeChecks.checkGroups(heads, kvHeads);
    }
  }

  /** {@code --dtype} of {@code bench}, {@code eval} and {@code generate} (f32 by default). */
  static final class Dtype {

    @Option(
        names = "--dtype",
        defaultValue = "f32",
        converter = Converters.DTypeConverter.class,
        description = "KV cache element type: f32, bf16, f16, q8_0 or q4_0 (default ${DEFAULT-VALUE}).")
    DType dtype;
  }

  /** {@code --kv-rotation} of {@code bench}, {@code eval} and {@code generate}. */
  static final class KvRotation {

    @Option(
        names = "--kv-rotation",
        defaultValue = "none",
        paramLabel = "R",
        description = "none, or hadamard: K and V rotated by a seeded sign flip + fast Walsh-Hadamard transform per head"
            + " before they are cached (and quantized), q before scoring, outputs rotated back; power-of-two head"
            + " dims (default ${DEFAULT-VALUE}).")
    String rotation;

    /** True for hadamard, false for none; a usage error otherwise. */
    boolean hadamard() {
      return switch (rotation.trim().toLowerCase(java.util.Locale.ROOT)) {
        case "none" -> false;
        case "hadamard" -> true;
        default -> throw new UsageException("--kv-rotation must be none or hadamard: " + rotation);
      };
    }

    /** The rotation for head dimension d, or null; a usage error when d is not a power of two. */
    static hflash.memory.HadamardRotation of(boolean hadamard, int d) {
      return hflash.bench.ShapeChecks.rotation(hadamard, d);
    }
  }

  /** {@code --json} of {@code bench} and {@code eval}. */
  static final class Json {

    @Option(names = "--json", description = "Print one JSON object instead of a table.")
    boolean json;
  }

  /** A usage error unless the folder {@code file} would be written to exists: "no such folder for --svg: DIR". */
  static void checkFolder(String option, Path file) {
    Path parent = file.toAbsolutePath().getParent();
    if (parent != null && !Files.isDirectory(parent)) {
      throw new UsageException("no such folder for " + option + ": " + parent);
    }
  }
}
