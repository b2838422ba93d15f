package hflash.cli;

import com.github.tjake.jlama.tensor.operations.TensorOperationsProvider;
import com.github.tjake.jlama.util.PhysicalCoreExecutor;
import hflash.bench.Format;
import hflash.bench.ModeSpec;
import hflash.bench.ResourceException;
import hflash.engine.AttentionConfig;
import hflash.io.UsageException;
import hflash.jlama.JlamaBench;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code hflash jlama-bench}: stock Jlama 0.8.4 against the same model with its KV cache and
 * attention on hflash (module {@code jlama}), token by token in turn in one run.
 */
@Command(
    name = "jlama-bench",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Time generated tokens of stock Jlama and of Jlama on hflash, in turn, in one run: a one-layer random",
      "Llama with the W1 attention shape (hidden 4096, 32 heads, 8 KV heads), both sessions filled with the",
      "same K/V rows to N positions; or a model directory of yours with --model and --prompt-file."
    })
final class JlamaBenchCommand implements Callable<Integer> {

  @Option(names = "--context", split = ",", paramLabel = "N", description = "Positions in the cache before the timed tokens,"
      + " comma-separated (default 8192,32768; with --model: the prompt's length).")
  List<Integer> contexts;

  @Option(names = "--threads", defaultValue = "2", paramLabel = "T", description = "Threads of Jlama and of hflash (default ${DEFAULT-VALUE}).")
  int threads;

  @Option(names = "--kv-dtype", defaultValue = "f32", paramLabel = "D", description = "hflash's cache dtype: f32, bf16, f16, q8_0, q4_0"
      + " (default ${DEFAULT-VALUE}; stock Jlama keeps f32, its working dtype).")
  String kvDtype;

  @Mixin ModeOptions modeOptions;

  @Option(names = "--tokens", defaultValue = "16", paramLabel = "K", description = "Timed tokens of each side (default ${DEFAULT-VALUE}, at least 16).")
  int tokens;

  @Option(names = "--warmup", defaultValue = "4", paramLabel = "K", description = "Untimed tokens of each side first (default ${DEFAULT-VALUE}).")
  int warmup;

  @Option(names = "--weights", defaultValue = "q4", paramLabel = "W", description = "Random model: f32 weights, or q4 made by Jlama's"
      + " quantizer as its published models are (default ${DEFAULT-VALUE}; the same file for both sides).")
  String weights;

  @Option(names = "--model", paramLabel = "DIR", description = "A llama, mistral or qwen2 model directory instead of the random model.")
  Path model;

  @Option(names = "--prompt-file", paramLabel = "F", description = "With --model: the prompt that fills both sessions.")
  Path promptFile;

  @Option(names = "--jlama-ops", defaultValue = "panama", paramLabel = "OPS", description = "Jlama's tensor operations,"
      + " the same for both sides: panama (its Vector API code) or native (its C library jlama-native, linux-x86_64,"
      + " shipped with the CLI; faster projections, slower stock attention) (default ${DEFAULT-VALUE}).")
  String jlamaOps;

  @Option(names = "--page-tokens", defaultValue = "0", paramLabel = "N", description = "Positions per page of the"
      + " adapter's session pool, a multiple of 128 (default: the adapter's, 512).")
  int pageTokens;

  @Mixin SharedOptions.Json jsonOption;

  @Spec CommandSpec spec;

  @Override
  public Integer call() throws IOException {
    String ops = jlamaOps.toLowerCase(Locale.ROOT);
    if (!ops.equals("panama") && !ops.equals("native")) {
      throw new UsageException("--jlama-ops must be panama or native: " + jlamaOps);
    }
    if (pageTokens < 0 || pageTokens % 128 != 0) {
      throw new UsageException("--page-tokens must be a multiple of 128: " + pageTokens);
    }
    if (tokens < 16) {
      throw new UsageException("--tokens must be >= 16: " + tokens);
    }
    if (warmup < 0 || threads < 1) {
      throw new UsageException("--warmup must be >= 0 and --threads >= 1: " + warmup + ", " + threads);
    }
    if ((model == null) != (promptFile == null)) {
      throw new UsageException("--model and --prompt-file go together");
    }
    try {
      hflash.memory.DType.parse(kvDtype);
    } catch (IllegalArgumentException e) {
      throw new UsageException("--kv-dtype: " + e.getMessage());
    }
    List<AttentionConfig> configs = new ArrayList<>();
    List<String> labels = new ArrayList<>();
    for (ModeSpec m : modeOptions.specs()) {
      configs.add(m.config());
      labels.add(m.label());
    }
    List<Integer> cs = contexts != null ? contexts : model != null ? List.of() : List.of(8192, 32768);
    for (int n : cs) {
      if (n < 1) {
        throw new UsageException("--context must be >= 1: " + n);
      }
    }
    // read by Jlama's TensorOperationsProvider when it first loads (once per JVM: a second run in the same JVM
    // keeps the first one's operations, and says so in jlamaOps)
    System.setProperty("jlama.force_panama_tensor_operations", Boolean.toString(ops.equals("panama")));
    String loaded = TensorOperationsProvider.get().name();
    if (ops.equals("native") && !loaded.toLowerCase(Locale.ROOT).contains("native")) {
      throw new ResourceException("--jlama-ops native: Jlama's native library did not load (Jlama runs " + loaded
          + "); it needs linux-x86_64 and a CPU with AVX2, and must be asked for before Jlama's first use in the JVM");
    }
    try {
      PhysicalCoreExecutor.overrideThreadCount(threads); // Jlama's pool, before its first use
    } catch (IllegalStateException e) { // started earlier in this JVM (a second run in tests): fine if the count matches
      int running = PhysicalCoreExecutor.instance.get().getCoreCount();
      if (running != threads) {
        throw new IllegalStateException("Jlama's thread pool already runs " + running + " threads: cannot set --threads " + threads, e);
      }
    }
    JlamaBench.Params p = new JlamaBench.Params(cs.stream().mapToInt(Integer::intValue).toArray(), threads,
        kvDtype.toLowerCase(Locale.ROOT), configs, labels, tokens, warmup, weights,
        Path.of(System.getProperty("java.io.tmpdir")), pageTokens);
    List<JlamaBench.Result> results;
    if (model != null) {
      if (!Files.isRegularFile(promptFile)) {
        throw new UsageException("no such file for --prompt-file: " + promptFile);
      }
      results = JlamaBench.realModel(p, model, Files.readString(promptFile));
    } else {
      results = JlamaBench.randomModel(p);
    }
    PrintWriter out = spec.commandLine().getOut();
    for (JlamaBench.Result r : results) {
      if (jsonOption.json) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("context", r.context());
        o.put("threads", r.threads());
        o.put("kvDtype", r.kvDtype());
        o.put("mode", r.mode());
        o.put("stockMsPerToken", Format.finite(r.stockMsPerToken()));
        o.put("hflashMsPerToken", Format.finite(r.hflashMsPerToken()));
        o.put("speedup", Format.finite(r.speedup()));
        o.put("fixedMsPerToken", Format.finite(r.fixedMsPerToken()));
        o.put("hflashFixedMsPerToken", Format.finite(r.hflashFixedMsPerToken()));
        // the attention's share alone: each side's time at N minus its own time at 16 positions
        o.put("attentionSpeedup", Format.finite((r.stockMsPerToken() - r.fixedMsPerToken())
            / (r.hflashMsPerToken() - r.hflashFixedMsPerToken())));
        // where the adapter's token goes, and hflash alone on the same rows in the same rounds
        o.put("hflashAttendMsPerToken", Format.finite(r.hflashAttendMsPerToken()));
        o.put("hflashBlockMsPerToken", Format.finite(r.hflashBlockMsPerToken()));
        o.put("engineMsPerToken", Format.finite(r.engineMsPerToken()));
        o.put("enginePagedMsPerToken", Format.finite(r.enginePagedMsPerToken()));
        o.put("hflashFixedBlockMsPerToken", Format.finite(r.hflashFixedBlockMsPerToken()));
        o.put("jlamaOps", loaded);
        o.put("tokens", r.tokens());
        o.put("tokensAgree", r.tokensAgree());
        o.put("weights", r.weights());
        o.put("fill", r.fill());
        o.put("model", r.model());
        out.println(JsonLine.of(o));
      } else {
        out.printf(Locale.ROOT, "context %6d  %-10s kv %-5s threads %d  stock %8.2f ms/token  hflash %8.2f ms/token  speedup %5.2fx"
            + "  (fixed at 16 positions: stock %.2f, hflash %.2f ms; %d/%d tokens agree; Jlama ops %s)%n", r.context(), r.mode(),
            r.kvDtype(), r.threads(), r.stockMsPerToken(), r.hflashMsPerToken(), r.speedup(), r.fixedMsPerToken(),
            r.hflashFixedMsPerToken(), r.tokensAgree(), r.tokens(), loaded);
        out.printf(Locale.ROOT, "               hflash token: attention block %.2f ms (%.2f at 16 positions), of which append + hflash"
            + " call %.2f ms; hflash alone on the same rows %.2f ms (flat cache), %.2f ms (page-pool sequence)%n",
            r.hflashBlockMsPerToken(), r.hflashFixedBlockMsPerToken(), r.hflashAttendMsPerToken(), r.engineMsPerToken(),
            r.enginePagedMsPerToken());
      }
    }
    out.flush();
    return 0;
  }
}
