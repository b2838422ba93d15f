package hflash.engine;

import java.util.Locale;

/**
 * The parameters of one attention mode: a sealed family with one record per mode, each validating
 * only its own fields at construction. Which strategy runs a mode is decided in one place inside
 * the engine; sinks + window are an orthogonal option ({@link SinkWindow}, exact mode only) carried
 * by {@link AttentionConfig}. See docs/HIERARCHICAL.md for what each mode bounds.
 */
public sealed interface ModeConfig permits ModeConfig.Exact, ModeConfig.Sampled, ModeConfig.Certified,
    ModeConfig.Budgeted, ModeConfig.Estimated, ModeConfig.CertifiedOracle {

  /** The mode this configures. */
  AttentionMode mode();

  /** The CLI spelling of the mode: lower case. */
  default String id() {
    return mode().id();
  }

  /**
   * Whether a call's workers split each KV head's key range (exact: split-K, partial states merged
   * in order) rather than taking whole KV heads (every approximate mode: a KV head's traversal is
   * sequential).
   */
  default boolean splitsKeys() {
    return false;
  }

  // What a front end, a benchmark or another module needs to know about a mode, asked of the mode
  // itself: nothing outside the engine compares mode names or switches over the modes, so a new
  // mode is added here and in its strategy only. A module whose own model differs per mode (the
  // Ascend cost model, the cluster's shard plan) switches over this sealed type without a default.

  /**
   * Whether this is the reference computation itself: every key, one online softmax, float32
   * rounding only. Every other mode is measured against it (a benchmark runs it alongside them).
   */
  default boolean isExact() {
    return false;
  }

  /** Whether the mode reads the cache's key-sample store (and reports guard firings and estimate misses). */
  default boolean readsSamples() {
    return false;
  }

  /**
   * Whether the mode may leave keys unread and states a bound on its error (certified: a guarantee;
   * budgeted: a posteriori; estimated: at a confidence level); the float32-exact modes have none.
   */
  default boolean hasErrorBound() {
    return false;
  }

  /**
   * The mode's own parameters by their JSON names, in a fixed order (empty for exact): what a report
   * prints next to the mode's name. An output-error target is not among them (it is reported as
   * {@code maxErrorTarget} for every mode).
   */
  default java.util.Map<String, Object> parameters() {
    return java.util.Map.of();
  }

  /**
   * A one-line label: the name and the parameters, e.g. {@code "certified eps=1e-3"},
   * {@code "budgeted 5%"}, {@code "sampled delta=16 r=32 margin=2"}, {@code "exact"}.
   *
   * @param spelled the mode's main parameter as the user spelled it ({@code "1e-3"}, {@code "5%"},
   *     {@code "64K"}), or null to print it from its value
   */
  default String label(String spelled) {
    return id();
  }

  /**
   * The main parameter alone, for a point on a plot ({@code "\u03b5=1e-3"}, {@code "5%"},
   * {@code "E=1e-2"}); empty for a mode without one.
   *
   * @param spelled as in {@link #label}
   */
  default String pointLabel(String spelled) {
    return "";
  }

  /**
   * Tiles per KV head a call over {@code totalTiles} tiles may open under a budget (a count as is, a
   * share rounded up, bytes divided by one tile of K and V for every KV head, at least 1); -1 for a
   * mode without a budget.
   */
  default int tileBudget(int totalTiles, long tileBytes, int kvHeads) {
    return -1;
  }

  /** {@code v} without a trailing ".0" ({@code 2}, {@code 0.5}, {@code 1.0e-3}): labels print numbers this way. */
  static String trim(double v) {
    if (v == Math.rint(v) && Math.abs(v) < 1e9) {
      return String.valueOf((long) v);
    }
    return String.valueOf(v).toLowerCase(Locale.ROOT);
  }

  private static String spelledOr(String spelled, double v) {
    return spelled != null ? spelled : trim(v);
  }

  /** Online softmax over every key (FlashAttention/FlashDecoding); float32-exact. */
  record Exact() implements ModeConfig {
    static final Exact INSTANCE = new Exact();

    @Override
    public AttentionMode mode() {
      return AttentionMode.EXACT;
    }

    @Override
    public boolean splitsKeys() {
      return true;
    }

    @Override
    public boolean isExact() {
      return true;
    }
  }

  /**
   * The note's estimator fixes the softmax reference: every {@code delta}-th key is scored, the
   * keys within {@code radius} of the best sample refine it, {@code margin} is added; one pass, no
   * rescale unless a tile beats the reference by more than {@code guard}. Float32-exact.
   *
   * @param delta sampling stride, &gt;= 1 (the note: 8-16)
   * @param radius refinement radius in keys, &gt;= 0 (the note: 32-64)
   * @param margin safety margin added to the estimate, finite and &gt;= 0 (the note: 1-2)
   * @param guard a tile whose max beats the reference by more than this rescales, in [1, 60]
   */
  record Sampled(int delta, int radius, float margin, float guard) implements ModeConfig {
    /** The note's stride 16, radius 32, margin 2, and the guard 20 (exp(20) = 4.9e8 cannot overflow). */
    public static final int DEFAULT_DELTA = 16;
    public static final int DEFAULT_RADIUS = 32;
    public static final float DEFAULT_MARGIN = 2f;
    public static final float DEFAULT_GUARD = 20f;

    public Sampled {
      if (delta < 1) {
        throw new IllegalArgumentException("delta must be >= 1: " + delta);
      }
      if (radius < 0) {
        throw new IllegalArgumentException("radius must be >= 0: " + radius);
      }
      if (!(margin >= 0 && margin < Float.POSITIVE_INFINITY)) {
        throw new IllegalArgumentException("margin must be finite and >= 0: " + margin);
      }
      if (!(guard >= 1 && guard <= 60)) {
        throw new IllegalArgumentException("guard must be in [1, 60]: " + guard);
      }
    }

    /** The note's defaults. */
    public Sampled() {
      this(DEFAULT_DELTA, DEFAULT_RADIUS, DEFAULT_MARGIN, DEFAULT_GUARD);
    }

    @Override
    public AttentionMode mode() {
      return AttentionMode.SAMPLED;
    }

    @Override
    public boolean readsSamples() {
      return true;
    }

    @Override
    public java.util.Map<String, Object> parameters() {
      java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
      m.put("delta", delta);
      m.put("radius", radius);
      m.put("margin", margin);
      return m;
    }

    @Override
    public String label(String spelled) {
      return "sampled delta=" + delta + " r=" + radius + " margin=" + trim(margin);
    }
  }

  /**
   * Opens tiles best-first by a certified upper bound of their scores and stops when the mass that
   * could remain unread is at most {@code epsilon} times the mass read, or, with an output-error
   * target, when the bound on {@code ||out_h - exact_h|| / ||exact_h||} is at most {@code maxError}
   * for every head. Exactly one of the two is set (the other 0).
   *
   * @param epsilon relative mass tolerance, finite and &gt; 0, or 0 with a target
   * @param maxError the output-error target in (0, 1), or 0 for a mass tolerance
   */
  record Certified(double epsilon, double maxError) implements ModeConfig {
    public Certified {
      if (maxError != 0) {
        if (!(maxError > 0 && maxError < 1)) {
          throw new IllegalArgumentException("max error must be in (0, 1): " + maxError);
        }
        if (epsilon != 0) {
          throw new IllegalArgumentException("epsilon and max error are alternatives: " + epsilon + ", " + maxError);
        }
      } else if (!(epsilon > 0 && epsilon < Double.POSITIVE_INFINITY)) {
        throw new IllegalArgumentException("epsilon must be finite and > 0: " + epsilon);
      }
    }

    /** With an output-error target instead of a mass tolerance. */
    public boolean outputTarget() {
      return maxError > 0;
    }

    @Override
    public AttentionMode mode() {
      return AttentionMode.CERTIFIED;
    }

    @Override
    public boolean hasErrorBound() {
      return true;
    }

    @Override
    public java.util.Map<String, Object> parameters() {
      return outputTarget() ? java.util.Map.of() : java.util.Map.of("epsilon", epsilon);
    }

    @Override
    public String label(String spelled) {
      return outputTarget() ? "certified maxError=" + spelledOr(spelled, maxError)
          : "certified eps=" + spelledOr(spelled, epsilon);
    }

    @Override
    public String pointLabel(String spelled) {
      return "\u03b5=" + spelledOr(spelled, outputTarget() ? maxError : epsilon);
    }
  }

  /**
   * The note's top-k: the certified order, stopped at a budget; the bound is a-posteriori. Exactly
   * one budget is set (the others 0).
   *
   * @param tiles tiles per KV head to open (first and last always included), &gt; 0
   * @param share share of the context's tiles to open, in (0, 1]
   * @param bytes K+V bytes per call to read (at least the kept tiles), &gt; 0
   */
  record Budgeted(int tiles, double share, long bytes) implements ModeConfig {
    public Budgeted {
      int set = (tiles != 0 ? 1 : 0) + (share != 0 ? 1 : 0) + (bytes != 0 ? 1 : 0);
      if (set != 1) {
        throw new IllegalArgumentException("budgeted needs exactly one budget (tiles, share or bytes)");
      }
      if (tiles < 0) {
        throw new IllegalArgumentException("budget tiles must be > 0: " + tiles);
      }
      if (share != 0 && !(share > 0 && share <= 1)) {
        throw new IllegalArgumentException("budget share must be in (0, 1]: " + share);
      }
      if (bytes < 0) {
        throw new IllegalArgumentException("budget bytes must be > 0: " + bytes);
      }
    }

    /**
     * A budget from its CLI spelling: a positive integer is tiles per KV head ({@code "8"}), a
     * number followed by {@code %} a share of the tiles in (0, 100] ({@code "5%"}, {@code "12.5%"}).
     *
     * @throws IllegalArgumentException naming the malformed or out-of-range budget
     */
    public static Budgeted parse(String budget) {
      String s = java.util.Objects.requireNonNull(budget, "budget").trim();
      try {
        if (s.endsWith("%")) {
          double pct = Double.parseDouble(s.substring(0, s.length() - 1).trim());
          if (!(pct > 0 && pct <= 100)) {
            throw new IllegalArgumentException("budget share must be in (0%, 100%]: " + budget);
          }
          return new Budgeted(0, pct / 100, 0);
        }
        int tiles = Integer.parseInt(s);
        if (tiles <= 0) {
          throw new IllegalArgumentException("budget tiles must be > 0: " + budget);
        }
        return new Budgeted(tiles, 0, 0);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("budget must be a tile count or a percentage: " + budget);
      }
    }

    /** Tiles per KV head a call may open, given the context's tiles and the K+V bytes of one tile. */
    @Override
    public int tileBudget(int totalTiles, long tileBytes, int kvHeads) {
      if (tiles > 0) {
        return tiles;
      }
      if (share > 0) {
        return (int) Math.ceil(share * totalTiles);
      }
      return (int) Math.max(1, bytes / (tileBytes * kvHeads));
    }

    @Override
    public AttentionMode mode() {
      return AttentionMode.BUDGETED;
    }

    @Override
    public boolean hasErrorBound() {
      return true;
    }

    /** The budget as the CLI spells it: {@code "12"} (tiles), {@code "5%"} (share), {@code "65536"} (bytes). */
    public String spelling() {
      if (tiles > 0) {
        return String.valueOf(tiles);
      }
      return share > 0 ? java.math.BigDecimal.valueOf(share).movePointRight(2).stripTrailingZeros().toPlainString() + "%"
          : String.valueOf(bytes);
    }

    @Override
    public java.util.Map<String, Object> parameters() {
      return bytes > 0 ? java.util.Map.of("budgetBytes", bytes) : java.util.Map.of("tiles", spelling());
    }

    @Override
    public String label(String spelled) {
      String p = spelled != null ? spelled : spelling();
      return "budgeted " + (bytes > 0 ? p + " bytes" : share > 0 ? p : p + " tiles");
    }

    @Override
    public String pointLabel(String spelled) {
      return spelled != null ? spelled : spelling();
    }
  }

  /**
   * Opens the tiles the bounds rank highest exactly, estimates the rest from a seeded stratified
   * random sample of tiles and stops when the upper end of a confidence interval on each head's
   * output error meets {@code maxError}; the interval holds at level {@code confidence}, not always.
   *
   * @param maxError target in (0, 1)
   * @param confidence level of the interval, in (0, 1)
   * @param seed seed of the tile sample; a fixed seed gives fixed bits
   */
  record Estimated(double maxError, double confidence, long seed) implements ModeConfig {
    /** Default confidence level of the interval. */
    public static final double DEFAULT_CONFIDENCE = 0.99;
    /** Default seed of the sample. */
    public static final long DEFAULT_SEED = 0x5eedL;

    public Estimated {
      if (!(maxError > 0 && maxError < 1)) {
        throw new IllegalArgumentException("max error must be in (0, 1): " + maxError);
      }
      if (!(confidence > 0 && confidence < 1)) {
        throw new IllegalArgumentException("confidence must be in (0, 1): " + confidence);
      }
    }

    @Override
    public AttentionMode mode() {
      return AttentionMode.ESTIMATED;
    }

    @Override
    public boolean hasErrorBound() {
      return true;
    }

    @Override
    public java.util.Map<String, Object> parameters() {
      java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
      m.put("confidence", confidence);
      m.put("seed", seed);
      return m;
    }

    @Override
    public String label(String spelled) {
      return "estimated maxError=" + spelledOr(spelled, maxError) + " confidence=" + trim(confidence);
    }

    @Override
    public String pointLabel(String spelled) {
      return "E=" + spelledOr(spelled, maxError);
    }
  }

  /**
   * For evaluation only: the oracle the certified mode is measured against. The same traversal and
   * stopping rule as {@code Certified(epsilon, 0)}, but each tile's bound is its true max score (the
   * best any tile-level bound can do); it scores every key to find the maxima. Reported as certified.
   *
   * @param epsilon relative mass tolerance, finite and &gt; 0
   */
  record CertifiedOracle(double epsilon) implements ModeConfig {
    public CertifiedOracle {
      if (!(epsilon > 0 && epsilon < Double.POSITIVE_INFINITY)) {
        throw new IllegalArgumentException("epsilon must be finite and > 0: " + epsilon);
      }
    }

    @Override
    public AttentionMode mode() {
      return AttentionMode.CERTIFIED;
    }

    @Override
    public boolean hasErrorBound() {
      return true;
    }

    @Override
    public java.util.Map<String, Object> parameters() {
      return java.util.Map.of("epsilon", epsilon);
    }

    @Override
    public String label(String spelled) {
      return "certified oracle eps=" + spelledOr(spelled, epsilon);
    }

    @Override
    public String pointLabel(String spelled) {
      return "\u03b5=" + spelledOr(spelled, epsilon);
    }
  }

  /**
   * The one parser of a mode's name and parameters (the CLI's {@code --mode} and its flags, and the
   * examples' options): {@code name} as {@link AttentionMode#parse}; each mode takes only its own
   * parameters from {@code p}. Every parameter in {@code p} is validated whatever the mode, so a
   * typo fails even when the mode would ignore it.
   *
   * @throws IllegalArgumentException for an unknown name or an invalid parameter
   */
  static ModeConfig parse(String name, Parameters p) {
    Parameters.validate(p);
    return p.of(AttentionMode.parse(name));
  }

  /**
   * Every mode's parameters as a front end collects them (flags with defaults); {@link #of} picks the
   * ones a mode uses.
   *
   * @param epsilon certified's mass tolerance (used unless {@code maxError} is set)
   * @param maxError certified's output-error target when &gt; 0; estimated's target (0: 1e-2)
   * @param confidence estimated's level
   * @param seed estimated's seed
   * @param budget budgeted's budget
   * @param sampled sampled's stride, radius, margin and guard
   */
  record Parameters(double epsilon, double maxError, double confidence, long seed, Budgeted budget,
      Sampled sampled) {

    /** Estimated's target when none is given. */
    public static final double DEFAULT_ESTIMATED_MAX_ERROR = 1e-2;

    /** Certified epsilon 1e-3, no target, 5 % of the tiles, the note's sampled defaults. */
    public static Parameters defaults() {
      return new Parameters(1e-3, 0, Estimated.DEFAULT_CONFIDENCE, Estimated.DEFAULT_SEED,
          new Budgeted(0, 0.05, 0), new Sampled());
    }

    public Parameters {
      java.util.Objects.requireNonNull(budget, "budget");
      java.util.Objects.requireNonNull(sampled, "sampled");
    }

    /** The configuration of {@code mode} from these parameters. */
    public ModeConfig of(AttentionMode mode) {
      return switch (mode) {
        case EXACT -> Exact.INSTANCE;
        case SAMPLED -> sampled;
        case CERTIFIED -> maxError > 0 ? new Certified(0, maxError) : new Certified(epsilon, 0);
        case BUDGETED -> budget;
        case ESTIMATED -> new Estimated(maxError > 0 ? maxError : DEFAULT_ESTIMATED_MAX_ERROR, confidence, seed);
      };
    }

    static void validate(Parameters p) {
      for (AttentionMode m : AttentionMode.values()) {
        p.of(m);
      }
    }
  }
}
