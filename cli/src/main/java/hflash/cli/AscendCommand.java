package hflash.cli;

import hflash.ascend.AscendModel;
import hflash.ascend.AscendParams;
import hflash.ascend.EngineProbe;
import hflash.ascend.Schedule;
import hflash.ascend.Sensitivity;
import hflash.ascend.Shape;
import hflash.ascend.TilePlan;
import hflash.ascend.TimelineSvg;
import hflash.engine.AttentionConfig;
import hflash.engine.AttentionMode;
import hflash.engine.ModeConfig;
import hflash.io.UsageException;
import hflash.memory.DType;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.Function;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code hflash ascend}: the Ascend 910B-class cost model (module {@code ascend},
 * docs/ascend.md). Builds the tile schedule of one decode call, simulates it, and prints the
 * predicted time, the HBM roofline beside it, the utilisation of each unit and what bounds the run.
 * The hierarchical modes' opened-tile counts come from running hflash's engine on a generated cache
 * ({@code --keys}), or from {@code --share}.
 */
@Command(
    name = "ascend",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Predict one decode-attention call on a 910B-class Ascend NPU with a discrete-event model of its",
      "AI cores (cube + two vector units, unified buffers, DMA, shared HBM). See docs/ascend.md."
    })
final class AscendCommand implements Callable<Integer> {

  @Option(names = "--context", paramLabel = "N", description = "Cached keys n (required unless --params).")
  Integer context;

  @Option(names = "--heads", defaultValue = "32", paramLabel = "H", description = "Query heads (default ${DEFAULT-VALUE}).")
  int heads;

  @Option(names = "--kv-heads", defaultValue = "8", paramLabel = "G", description = "KV heads (default ${DEFAULT-VALUE}).")
  int kvHeads;

  @Option(names = "--dim", defaultValue = "128", paramLabel = "D", description = "Head dimension (default ${DEFAULT-VALUE}).")
  int dim;

  @Option(names = "--dtype", defaultValue = "f16", paramLabel = "T", description = "KV dtype: f16, bf16, f32 (default ${DEFAULT-VALUE}).")
  String dtype;

  @Option(names = "--mode", defaultValue = "exact", paramLabel = "MODE",
      description = "exact, sampled, certified or budgeted (default ${DEFAULT-VALUE}).")
  String mode;

  @Option(names = "--epsilon", defaultValue = "1e-3", paramLabel = "E",
      description = "certified: relative unread-mass tolerance (default ${DEFAULT-VALUE}).")
  double epsilon;

  @Option(names = "--tiles", defaultValue = ModeOptions.DEFAULT_TILES, paramLabel = "K",
      description = "budgeted: tiles per KV head, a count (12) or a share (5%%) (default ${DEFAULT-VALUE}).")
  String tiles;

  @Option(names = "--cores", paramLabel = "C", description = "AI cores used (default: the device's, 24).")
  Integer cores;

  @Option(names = "--share", paramLabel = "S",
      description = "certified/budgeted: share of tiles opened, in (0, 1], instead of running the engine.")
  Double share;

  @Option(names = "--keys", defaultValue = "random", paramLabel = "KIND",
      description = "cache the engine runs on: random or clustered (default ${DEFAULT-VALUE}).")
  String keys;

  @Option(names = "--mapping", defaultValue = "note", paramLabel = "M",
      description = "note (unit 2 scores and accumulates) or balanced (unit 1 scores) (default ${DEFAULT-VALUE}).")
  String mapping;

  @Option(names = "--path", defaultValue = "auto", paramLabel = "P",
      description = "vector, cube, or auto (simulate both, keep the faster) (default ${DEFAULT-VALUE}).")
  String path;

  @Option(names = "--buffers", defaultValue = "2", paramLabel = "B",
      description = "buffers per tile stream: 1 (none) or 2 (ping-pong), up to 8 (default ${DEFAULT-VALUE}).")
  int buffers;

  @Option(names = "--tile-tokens", paramLabel = "T", description = "Keys per tile (default: the largest power of two that fits the unified buffer).")
  Integer tileTokens;

  @Option(names = "--param", paramLabel = "NAME=V,...", description = "Override model parameters, e.g. hbmGBps=1200,syncNs=500.")
  String overrides;

  @Option(names = "--seed", defaultValue = "42", paramLabel = "S", description = "Seed of the generated cache (default ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--json", description = "One JSON object: predictedUs, rooflineUs, hbmBytes, bound, utilisation{dma, vec1, vec2, cube}.")
  boolean json;

  @Option(names = "--svg", paramLabel = "FILE", description = "Write the timeline as SVG.")
  Path svg;

  @Option(names = "--sweep", description = "Also print the sensitivity to every assumed parameter (x0.5, x2).")
  boolean sweep;

  @Option(names = "--params", description = "Print the parameter table (value, unit, source) and exit.")
  boolean listParams;

  @Spec CommandSpec spec;

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    AscendParams p = params();
    if (listParams) {
      out.print(p.markdownTable());
      out.flush();
      return 0;
    }
    if (context == null) {
      throw new UsageException("missing --context N");
    }
    UsageException.positive("--context", context);
    Shape shape;
    AttentionMode m;
    Schedule.Mapping map;
    Schedule.Path pth;
    TilePlan plan;
    try {
      DType parsed = DType.parse(dtype);
      if (parsed.quantized()) {
        throw new UsageException("ascend models f32, bf16 and f16 caches, not " + parsed.id());
      }
      shape = new Shape(context, heads, kvHeads, dim, parsed);
      m = AttentionMode.parse(mode);
      Schedule.ModeModel.of(m); // a mode the model does not cover is a usage error
      map = Schedule.Mapping.valueOf(mapping.trim().toUpperCase(Locale.ROOT));
      pth = path.equalsIgnoreCase("auto") ? null : Schedule.Path.valueOf(path.trim().toUpperCase(Locale.ROOT));
      plan = tileTokens == null ? TilePlan.choose(p, shape, buffers) : TilePlan.of(p, shape, tileTokens, buffers);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage(), e);
    }
    Schedule.HeadWork work = work(shape, m, plan);
    Function<AscendParams, AscendModel.Prediction> model =
        q -> AscendModel.predict(q, shape, m, work, plan, map, pth);
    AscendModel.Prediction pr = model.apply(p);
    if (svg != null) {
      String title = String.format(Locale.ROOT, "hflash ascend: n=%d H=%d G=%d d=%d %s, mode %s",
          context, heads, kvHeads, dim, shape.dtype().id(), m.id());
      Files.writeString(svg, TimelineSvg.render(pr, title), StandardCharsets.UTF_8);
    }
    if (json) {
      Map<String, Object> o = new LinkedHashMap<>();
      o.put("predictedUs", pr.predictedUs());
      o.put("rooflineUs", pr.rooflineUs());
      o.put("hbmBytes", pr.hbmBytes());
      o.put("bound", pr.bound());
      Map<String, Object> u = new LinkedHashMap<>();
      u.put("dma", pr.dma());
      u.put("vec1", pr.vec1());
      u.put("vec2", pr.vec2());
      u.put("cube", pr.cube());
      o.put("utilisation", u);
      out.println(JsonLine.of(o));
    } else {
      text(out, p, shape, m, plan, work, pr);
    }
    if (sweep) {
      out.println("sensitivity (predicted us with the parameter halved / as is / doubled):");
      for (Sensitivity.Row r : Sensitivity.sweep(p, model)) {
        out.printf(Locale.ROOT, "  %-20s %10s  %9.1f %9.1f %9.1f  (%s / %s)%n", r.name(),
            fmt(r.value()), r.halfUs(), r.baseUs(), r.doubleUs(), r.halfBound(), r.doubleBound());
      }
    }
    out.flush();
    return 0;
  }

  private AscendParams params() {
    AscendParams p = AscendParams.ascend910b();
    try {
      p = p.withAll(overrides);
      if (cores != null) {
        UsageException.positive("--cores", cores);
        p = p.with("cores", cores);
      }
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage(), e);
    }
    return p;
  }

  private Schedule.HeadWork work(Shape shape, AttentionMode m, TilePlan plan) {
    int t = plan.tileTokens();
    int total = (int) ((context + (long) t - 1) / t);
    AttentionConfig config;
    EngineProbe.Keys k;
    try {
      config = AttentionConfig.parse(m.id(), new ModeConfig.Parameters(epsilon, 0, AttentionConfig.DEFAULT_CONFIDENCE,
          AttentionConfig.DEFAULT_SEED, budget(total), new ModeConfig.Sampled()));
      k = EngineProbe.Keys.parse(keys);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage(), e);
    }
    if (config.modeConfig().isExact()) {
      return Schedule.HeadWork.exact(total);
    }
    if (share != null) {
      if (!config.modeConfig().hasErrorBound()) {
        throw new UsageException("--share applies to certified and budgeted, not " + m.id());
      }
      if (!(share > 0 && share <= 1)) {
        throw new UsageException("--share must be in (0, 1]: " + share);
      }
      int opened = (int) Math.max(1, Math.ceil(share * total));
      return new Schedule.HeadWork(total, opened, 0, 0, context / t);
    }
    return EngineProbe.measure(shape, t, config, k, seed);
  }

  private ModeConfig.Budgeted budget(int total) {
    String s = tiles.trim();
    if (s.endsWith("%")) {
      double pct = Double.parseDouble(s.substring(0, s.length() - 1));
      if (!(pct > 0 && pct <= 100)) {
        throw new IllegalArgumentException("--tiles share must be in (0%, 100%]: " + s);
      }
      return new ModeConfig.Budgeted(0, pct / 100, 0);
    }
    int k = Integer.parseInt(s);
    if (k <= 0) {
      throw new IllegalArgumentException("budget tiles must be > 0: " + k);
    }
    return new ModeConfig.Budgeted(Math.min(k, total), 0, 0);
  }

  private static void text(PrintWriter out, AscendParams p, Shape shape, AttentionMode m,
      TilePlan plan, Schedule.HeadWork w, AscendModel.Prediction pr) {
    int splits = Schedule.splits(p.cores(), shape.kvHeads(), Math.max(1, w.tiles()));
    out.printf(Locale.ROOT, "ascend 910B-class model: n=%d, heads=%d, kv-heads=%d, dim=%d, %s, mode %s%n",
        shape.context(), shape.heads(), shape.kvHeads(), shape.dim(), shape.dtype().id(), m.id());
    out.printf(Locale.ROOT, "  tiles       T=%d keys, K or V tile %d B; unified buffer %d / %d B (unit 2), %d buffers%n",
        plan.tileTokens(), plan.tileBytes(shape), plan.unit2Bytes(), p.ubBytes(), plan.buffers());
    out.printf(Locale.ROOT, "  work        %d of %d tiles per KV head opened; %d sample rows, %d refine tiles, %d summaries;"
        + " %d chunks per KV head on %d cores%n", w.openedTiles(), w.tiles(), w.sampleRows(),
        w.refineTiles(), w.summaryTiles(), splits, p.cores());
    out.printf(Locale.ROOT, "  schedule    %s path, %s mapping%n",
        pr.spec().path().name().toLowerCase(Locale.ROOT), pr.spec().mapping().name().toLowerCase(Locale.ROOT));
    out.printf(Locale.ROOT, "  predicted   %10.1f us%n", pr.predictedUs());
    out.printf(Locale.ROOT, "  roofline    %10.1f us  (%d B from HBM / %s GB/s)%n", pr.rooflineUs(),
        pr.hbmBytes(), fmt(p.param("hbmGBps").value()));
    out.printf(Locale.ROOT, "  bound       %s%n", pr.bound());
    out.printf(Locale.ROOT, "  utilisation dma %.2f  unit1 %.2f  unit2 %.2f  cube %.2f  hbm %.2f%n",
        pr.dma(), pr.vec1(), pr.vec2(), pr.cube(), pr.hbm());
  }

  private static String fmt(double v) {
    return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
  }
}
