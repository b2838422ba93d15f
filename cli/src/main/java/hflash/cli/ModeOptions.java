package hflash.cli;

import hflash.bench.ModeSpec;
import hflash.engine.AttentionConfig;
import hflash.engine.AttentionMode;
import hflash.engine.ModeConfig;
import hflash.io.UsageException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Supplier;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Option;
import picocli.CommandLine.TypeConversionException;

/**
 * The mode flags shared by {@code eval}, {@code bench} and {@code generate} (a picocli mixin): {@code --mode} (one or
 * more of exact, sampled, certified, budgeted, comma-separated, or {@code all}) and each mode's
 * parameters. {@link #specs()} validates every parameter once, whatever the modes asked for (so a bad
 * {@code --epsilon} is an error even with {@code --mode exact}: eval and bench use it for the oracle
 * in every mode), and builds one {@link AttentionConfig} per mode.
 */
final class ModeOptions {

  /** Default of {@code --tiles}: the share of tiles a budgeted call opens. */
  /** Default budget share in percent; the help text escapes its % for picocli's format. */
  static final String DEFAULT_TILES_PERCENT = "5";
  static final String DEFAULT_TILES = DEFAULT_TILES_PERCENT + "%";

  @Option(
      names = "--mode",
      defaultValue = "exact",
      split = ",",
      paramLabel = "MODE",
      converter = ModeNameConverter.class,
      description = "exact, sampled, certified, budgeted, estimated, or all (every mode, one result each); comma-separated"
          + " for several (default ${DEFAULT-VALUE}).")
  List<String> modes;

  @Option(
      names = "--epsilon",
      defaultValue = "1e-3",
      paramLabel = "E",
      description = "certified: stop when the unread softmax mass is at most E times the mass read; also the"
          + " epsilon of the oracle (default ${DEFAULT-VALUE}).")
  String epsilon;

  @Option(
      names = "--max-error",
      paramLabel = "E",
      description = "certified (instead of --epsilon) and estimated (default " + "1e-2" + "): stop when the bound"
          + " (estimated: the upper end of its interval) on ||out_h - exact_h|| /"
          + " ||exact_h|| is at most E for every head, in (0, 1); oracleBytesFraction is then the output-error"
          + " oracle's (fewest K+V bytes keeping the error at most E, knowing every tile's exact mass and values).")
  String maxError;

  @Option(
      names = "--confidence",
      defaultValue = "" + AttentionConfig.DEFAULT_CONFIDENCE,
      paramLabel = "C",
      description = "estimated: level of the interval on each head's error, in (0, 1) (default ${DEFAULT-VALUE}).")
  double confidence;

  /** Default target of the estimated mode when --max-error is not given. */
  static final String DEFAULT_ESTIMATED_MAX_ERROR = "1e-2";

  @Option(
      names = "--tiles",
      paramLabel = "K",
      description = "budgeted: tiles per KV head to open, a count (12) or a share of the context's tiles (5%%)"
          + " (default " + DEFAULT_TILES_PERCENT + "%%).")
  String tiles;

  @Option(
      names = "--bytes",
      paramLabel = "B",
      description = "budgeted, instead of --tiles: K+V bytes per call, e.g. 65536 or 64K (K, M, G = 1024^n).")
  String bytes;

  @Option(
      names = "--delta",
      defaultValue = "" + AttentionConfig.DEFAULT_DELTA,
      paramLabel = "N",
      description = "sampled: sampling stride in keys (default ${DEFAULT-VALUE}).")
  int delta;

  @Option(
      names = "--radius",
      defaultValue = "" + AttentionConfig.DEFAULT_RADIUS,
      paramLabel = "N",
      description = "sampled: refinement radius in keys (default ${DEFAULT-VALUE}).")
  int radius;

  @Option(
      names = "--margin",
      defaultValue = "" + AttentionConfig.DEFAULT_MARGIN,
      paramLabel = "X",
      description = "sampled: margin added to the estimated max (default ${DEFAULT-VALUE}).")
  float margin;

  /**
   * The one mode a command that runs a single mode takes ({@code generate}): {@code --mode} must
   * name exactly one ({@code all} is not one mode); every parameter is validated as in {@link #specs()}.
   */
  ModeSpec one() {
    if (modes.size() != 1) {
      throw new UsageException("--mode takes one mode here: " + String.join(",", modes));
    }
    try {
      AttentionMode.parse(modes.get(0));
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage(), e);
    }
    return specs().get(0);
  }

  /** The modes asked for, in the order given ({@code all}: every mode in declaration order), each once. */
  List<ModeSpec> specs() {
    return specsOf(modes.toArray(String[]::new));
  }

  /**
   * As {@link #specs()} for the named modes instead of {@code --mode}. The configurations come from
   * the engine's one parser ({@link AttentionConfig#parse}) over every mode's flags, which validates
   * all of them whatever the modes asked for; a spec adds the flag as typed, for labels and JSON.
   */
  List<ModeSpec> specsOf(String... names) {
    ModeSpec certified = maxError != null ? certifiedMaxError(maxError) : certified(epsilon);
    ModeSpec budgeted = budgeted(tiles, bytes);
    String estimatedTarget = maxError == null ? DEFAULT_ESTIMATED_MAX_ERROR : maxError;
    ModeSpec estimated = estimated(estimatedTarget, confidence);
    ModeConfig.Parameters parameters = config(() -> AttentionConfig.of(new ModeConfig.Sampled(delta, radius, margin,
        AttentionConfig.DEFAULT_GUARD)), certified, budgeted, estimated);
    List<AttentionMode> wanted = new ArrayList<>();
    for (String m : names) {
      if (m.equals("all")) {
        for (AttentionMode a : AttentionMode.values()) {
          if (!wanted.contains(a)) {
            wanted.add(a);
          }
        }
      } else {
        AttentionMode a = AttentionMode.parse(m);
        if (!wanted.contains(a)) {
          wanted.add(a);
        }
      }
    }
    List<ModeSpec> specs = new ArrayList<>();
    for (AttentionMode a : wanted) {
      AttentionConfig c = config(() -> AttentionConfig.parse(a.id(), parameters));
      ModeSpec typed = new ModeSpec(c, "", 0, 0, 0);
      for (ModeSpec t : List.of(certified, budgeted, estimated)) { // the modes whose flags have a typed spelling
        if (t.mode() == a) {
          typed = t.with(c);
        }
      }
      specs.add(typed);
    }
    return specs;
  }

  /** Every mode's parameters as the flags gave them (validated by building each mode's spec). */
  private static ModeConfig.Parameters config(java.util.function.Supplier<AttentionConfig> sampled,
      ModeSpec certified, ModeSpec budgeted, ModeSpec estimated) {
    ModeConfig.Sampled s = (ModeConfig.Sampled) config(sampled).modeConfig();
    ModeConfig.Estimated e = (ModeConfig.Estimated) estimated.config().modeConfig();
    ModeConfig.Certified c = (ModeConfig.Certified) certified.config().modeConfig();
    return new ModeConfig.Parameters(c.epsilon(), c.maxError(), e.confidence(), e.seed(),
        (ModeConfig.Budgeted) budgeted.config().modeConfig(), s);
  }

  /** The validated {@code --epsilon}. */
  double epsilon() {
    return certified(epsilon).config().epsilon();
  }

  /** Certified mode with {@code eps} as typed ("1e-3"). */
  static ModeSpec certified(String eps) {
    double e = number("--epsilon", eps);
    return new ModeSpec(config(() -> AttentionConfig.certified(e)), eps.strip(), 0, 0, 0);
  }

  /** Certified mode with an output-error target as typed ("1e-2"). */
  static ModeSpec certifiedMaxError(String target) {
    double e = number("--max-error", target);
    return new ModeSpec(config(() -> AttentionConfig.certifiedMaxError(e)), target.strip(), 0, 0, 0);
  }

  /** Estimated mode with the target as typed ("1e-2"), the given confidence and the default seed. */
  static ModeSpec estimated(String target, double confidence) {
    double e = number("--max-error", target);
    return new ModeSpec(config(() -> AttentionConfig.estimated(e, confidence, AttentionConfig.DEFAULT_SEED)),
        target.strip(), 0, 0, 0);
  }

  /** {@code text} as a double, or a usage error naming {@code flag}. */
  private static double number(String flag, String text) {
    try {
      return Double.parseDouble(text.strip());
    } catch (NumberFormatException ex) {
      throw new UsageException(flag + " expects a number: " + text);
    }
  }

  /** Budgeted mode from {@code --tiles} ("12" or "5%") or {@code --bytes} ("65536", "64K"); default 5%. */
  static ModeSpec budgeted(String tiles, String bytes) {
    if (tiles != null && bytes != null) {
      throw new UsageException("--tiles and --bytes are alternatives: give one");
    }
    if (bytes != null) {
      long b = parseBytes(bytes);
      return new ModeSpec(config(() -> AttentionConfig.budgetedBytes(b)), bytes.strip(), 0, 0, b);
    }
    String t = (tiles == null ? DEFAULT_TILES : tiles).strip();
    if (t.endsWith("%")) {
      double percent;
      try {
        percent = Double.parseDouble(t.substring(0, t.length() - 1).strip());
      } catch (NumberFormatException ex) {
        throw new UsageException("--tiles expects a count or a share such as 5%: " + tiles);
      }
      if (!(percent > 0 && percent <= 100)) {
        throw new UsageException("--tiles share must be in (0%, 100%]: " + t);
      }
      double share = percent / 100;
      return new ModeSpec(config(() -> AttentionConfig.budgetedShare(share)), t, share, 0, 0);
    }
    int count;
    try {
      count = Integer.parseInt(t);
    } catch (NumberFormatException ex) {
      throw new UsageException("--tiles expects a count or a share such as 5%: " + tiles);
    }
    return new ModeSpec(config(() -> AttentionConfig.budgetedTiles(count)), t, 0, count, 0);
  }

  /** "65536", "64K", "1.5M", "2G" (binary multiples) -> bytes. */
  static long parseBytes(String s) {
    String t = s.strip().toUpperCase(Locale.ROOT);
    long unit = 1;
    if (t.endsWith("B")) {
      t = t.substring(0, t.length() - 1);
    }
    if (!t.isEmpty()) {
      switch (t.charAt(t.length() - 1)) {
        case 'K' -> unit = 1L << 10;
        case 'M' -> unit = 1L << 20;
        case 'G' -> unit = 1L << 30;
        default -> unit = 1;
      }
    }
    if (unit != 1) {
      t = t.substring(0, t.length() - 1).strip();
    }
    double v;
    try {
      v = Double.parseDouble(t);
    } catch (NumberFormatException ex) {
      throw new UsageException("--bytes expects a byte count such as 65536 or 64K: " + s);
    }
    if (!(v * unit < Long.MAX_VALUE) || Double.isNaN(v)) {
      throw new UsageException("--bytes is too large: " + s);
    }
    return (long) Math.floor(v * unit);
  }

  /** Builds a config, turning the engine's validation message into a usage error. */
  static AttentionConfig config(Supplier<AttentionConfig> build) {
    try {
      return build.get();
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage(), e);
    }
  }

  /** Accepts a mode name or {@code all}; returns it in lower case. */
  static final class ModeNameConverter implements ITypeConverter<String> {
    @Override
    public String convert(String value) {
      if (value != null && value.strip().equalsIgnoreCase("all")) {
        return "all";
      }
      try {
        return AttentionMode.parse(value).id();
      } catch (IllegalArgumentException e) {
        StringBuilder known = new StringBuilder();
        for (AttentionMode m : AttentionMode.values()) {
          known.append(m.id()).append(", ");
        }
        known.setLength(known.length() - 2);
        throw new TypeConversionException("unknown mode: " + value + " (expected " + known + " or all)");
      }
    }
  }
}
