package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Errors in arguments or files: exit 2, exactly one line on stderr naming the problem, nothing on stdout. */
class ArgumentErrorsTest {

  @TempDir static Path tmp;

  static Stream<Arguments> badArguments() throws IOException {
    Path garbage = tmp.resolve("garbage.safetensors");
    Files.write(garbage, new byte[] {1, 2, 3});
    Path truncated = tmp.resolve("truncated.safetensors");
    Files.write(truncated, new byte[] {(byte) 200, 0, 0, 0, 0, 0, 0, 0, '{', '}'});
    Path onlyQ = tmp.resolve("only-q.safetensors");
    var t = new hflash.io.Safetensors.WriteTensor(new long[] {1, 2, 3, 4}, new float[24]);
    hflash.io.Safetensors.write(onlyQ, java.util.Map.of("q", t), java.util.Map.of());
    Path badO = tmp.resolve("bad-o.safetensors");
    var kv = new hflash.io.Safetensors.WriteTensor(new long[] {1, 1, 3, 4}, new float[12]);
    var o = new hflash.io.Safetensors.WriteTensor(new long[] {1, 2, 2, 4}, new float[16]);
    var tensors = new java.util.LinkedHashMap<String, hflash.io.Safetensors.WriteTensor>();
    tensors.put("q", t);
    tensors.put("k", kv);
    tensors.put("v", kv);
    tensors.put("o", o);
    hflash.io.Safetensors.write(badO, tensors, java.util.Map.of("scale", "abc"));
    return Stream.of(
        Arguments.of(new String[] {}, "missing command"),
        Arguments.of(new String[] {"frobnicate"}, "Unmatched argument"),
        Arguments.of(new String[] {"bench", "--bogus"}, "Unknown option: '--bogus'"),
        Arguments.of(new String[] {"bench", "--context", "0"}, "--context must be positive: 0"),
        Arguments.of(new String[] {"bench", "--context", "many"}, "'many' is not an int"),
        Arguments.of(new String[] {"bench", "--threads", "-1"}, "--threads must be positive: -1"),
        Arguments.of(new String[] {"bench", "--dtype", "f8"}, "unknown dtype: f8 (expected f32, bf16, f16, q8_0 or q4_0)"),
        Arguments.of(
            new String[] {"bench", "--heads", "32", "--kv-heads", "6"},
            "--heads must be a multiple of --kv-heads: 32 % 6 != 0"),
        Arguments.of(new String[] {"bench", "--mode", "fast"}, "unknown mode: fast (expected exact"),
        Arguments.of(new String[] {"bench", "--workload", "zipf"}, "unknown workload: zipf (expected random, structured)"),
        Arguments.of(new String[] {"bench", "--workload", "structured", "--dim", "4"},
            "workload structured: dim must be at least clusters + 3: 4 < 7"),
        Arguments.of(new String[] {"bench", "--scheduler", "pipeline", "--threads", "1"},
            "--scheduler pipeline needs --threads >= 2"),
        Arguments.of(new String[] {"bench", "--scheduler", "all"}, "--scheduler all (which includes pipeline) needs --threads >= 2"),
        Arguments.of(new String[] {"bench", "--scheduler", "fastest"},
            "unknown scheduler: fastest (expected serial, splitk, pipeline or all)"),
        Arguments.of(new String[] {"bench", "--decode-steps", "0"}, "--decode-steps must be positive: 0"),
        Arguments.of(new String[] {"bench", "--kv-rotation", "givens"}, "--kv-rotation must be none or hadamard: givens"),
        Arguments.of(new String[] {"bench", "--kv-rotation", "hadamard", "--dim", "40"},
            "--kv-rotation hadamard: hadamard rotation needs a power-of-two head dim: 40"),
        Arguments.of(new String[] {"bench", "--svg", "x.svg"}, "--svg needs --decode-steps"),
        Arguments.of(new String[] {"eval", "--trace", "x", "--scheduler", "pipeline"}, "--scheduler pipeline needs --threads >= 2"),
        Arguments.of(new String[] {"eval", "--trace", "x", "--scheduler", "all"},
            "unknown scheduler: all (expected serial, splitk or pipeline)"),
        Arguments.of(new String[] {"demo", "--threads", "1", "--scheduler", "pipeline"}, "--scheduler pipeline needs --threads >= 2"),
        Arguments.of(new String[] {"generate", "--scheduler", "pipeline"}, "--scheduler pipeline needs --threads >= 2"),
        Arguments.of(new String[] {"eval"}, "Missing required option: '--trace=FILE'"),
        Arguments.of(new String[] {"eval", "--trace", tmp.resolve("none.safetensors").toString()}, "no such trace file"),
        Arguments.of(new String[] {"eval", "--trace", garbage.toString()}, "garbage.safetensors"),
        Arguments.of(new String[] {"eval", "--trace", truncated.toString()}, "truncated.safetensors"),
        Arguments.of(new String[] {"eval", "--trace", onlyQ.toString()}, "trace only-q.safetensors has no tensor 'k' (has: q)"),
        Arguments.of(new String[] {"eval", "--trace", badO.toString()},
            "trace bad-o.safetensors: o shape differs from q shape: [1, 2, 2, 4]!=[1, 2, 3, 4]"),
        Arguments.of(new String[] {"eval", "--trace", "x", "--mode", "exact,fast"},
            "unknown mode: fast (expected exact, sampled, certified, budgeted, estimated or all)"),
        Arguments.of(new String[] {"eval", "--trace", "x", "--mode", "estimated", "--max-error", "2"},
            "max error must be in (0, 1): 2.0"),
        Arguments.of(new String[] {"eval", "--trace", "x", "--mode", "certified", "--max-error", "x"},
            "--max-error expects a number: x"),
        Arguments.of(new String[] {"eval", "--trace", "x", "--epsilon", "0"}, "epsilon must be finite and > 0: 0.0"),
        Arguments.of(new String[] {"eval", "--trace", "x", "--epsilon", "tiny"}, "--epsilon expects a number: tiny"),
        Arguments.of(new String[] {"eval", "--trace", "x", "--tiles", "0"}, "budget tiles must be > 0: 0"),
        Arguments.of(new String[] {"eval", "--trace", "x", "--tiles", "150%"}, "--tiles share must be in (0%, 100%]: 150%"),
        Arguments.of(new String[] {"eval", "--trace", "x", "--tiles", "some"}, "--tiles expects a count or a share such as 5%: some"),
        Arguments.of(new String[] {"eval", "--trace", "x", "--tiles", "5%", "--bytes", "4K"}, "--tiles and --bytes are alternatives"),
        Arguments.of(new String[] {"bench", "--bytes", "-4K"}, "budget bytes must be > 0: -4096"),
        Arguments.of(new String[] {"bench", "--delta", "0"}, "delta must be >= 1: 0"),
        Arguments.of(new String[] {"bench", "--radius", "-1"}, "radius must be >= 0: -1"),
        Arguments.of(new String[] {"bench", "--margin", "NaN"}, "margin must be finite and >= 0: NaN"),
        Arguments.of(new String[] {"bench", "--mode", "all", "--tile", "48"}, "cache shape rejected"),
        Arguments.of(new String[] {"generate", "--mode", "all"}, "unknown mode: all (expected exact"),
        Arguments.of(new String[] {"generate", "--steps", "-1"}, "--steps must be >= 0: -1"),
        Arguments.of(new String[] {"generate", "--epsilon", "-1"}, "epsilon must be finite and > 0: -1.0"),
        // generate parses its mode flags as bench does: one mode, every parameter checked whatever the mode
        Arguments.of(new String[] {"generate", "--mode", "exact,sampled"}, "--mode takes one mode here: exact,sampled"),
        Arguments.of(new String[] {"generate", "--max-error", "2"}, "max error must be in (0, 1): 2.0"),
        Arguments.of(new String[] {"generate", "--tiles", "lots"}, "--tiles expects a count or a share such as 5%: lots"),
        Arguments.of(new String[] {"ascend", "--context", "1024", "--mode", "estimated"},
            "the Ascend model covers exact, sampled, certified and budgeted, not estimated"),
        Arguments.of(new String[] {"generate", "--model", tmp.resolve("none.bin").toString(), "--tokenizer", garbage.toString()},
            "no such model file"),
        // the cli module alone has no text-generation runtime (the dist module's jar has the llama2.c one)
        Arguments.of(new String[] {"generate", "--model", garbage.toString(), "--tokenizer", garbage.toString()},
            "no text-generation runtime on the class path"),
        Arguments.of(new String[] {"make-demo-trace", "--from", garbage.toString(), "--positions", "0", "--out", "x"},
            "--positions must be positive: 0"));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("badArguments")
  void exitsTwoWithOneLine(String[] args, String expected) {
    CliRun.of(args).assertUsageError("hflash", expected);
  }

  @Test
  void verbosePrintsTheStackTrace() {
    CliRun r = CliRun.of("eval", "--trace", tmp.resolve("none.safetensors").toString(), "--verbose");
    assertEquals(Main.EXIT_USAGE, r.code(), r::toString);
    assertTrue(r.errLines().length > 1, r::toString);
    assertTrue(r.err().contains("\tat hflash.cli."), r::toString);
  }

  @Test
  void helpExitsZero() {
    CliRun r = CliRun.of("bench", "--help");
    assertEquals(0, r.code(), r::toString);
    for (String flag : new String[] {"--context", "--heads", "--kv-heads", "--dim", "--dtype", "--threads", "--mode", "--json", "--workload",
        "--scheduler", "--decode-steps", "--svg"}) {
      assertTrue(r.out().contains(flag), () -> flag + " missing from help\n" + r);
    }
  }

  /** A '%' that picocli's format cannot read makes it warn on stderr and print the raw text. */
  @ParameterizedTest
  @MethodSource("commands")
  void everyHelpFormatsCleanly(String command) {
    java.io.PrintStream saved = System.err;
    java.io.ByteArrayOutputStream captured = new java.io.ByteArrayOutputStream();
    CliRun r;
    System.setErr(new java.io.PrintStream(captured, true, java.nio.charset.StandardCharsets.UTF_8));
    try {
      r = CliRun.of(command, "--help");
    } finally {
      System.setErr(saved);
    }
    String stray = captured.toString(java.nio.charset.StandardCharsets.UTF_8);
    assertEquals(0, r.code(), r::toString);
    assertEquals("", stray, "stderr of " + command + " --help");
    assertTrue(!r.out().contains("%n") && !r.out().contains("%%"), r::toString);
  }

  static Stream<String> commands() {
    return Stream.of("demo", "bench", "eval", "gen", "claims", "generate", "ascend", "probe", "make-demo-trace");
  }
}
