package hflash.engine;

import java.util.Objects;

/**
 * What a decode call computes: a {@link ModeConfig} (one record per mode, each validating its own
 * parameters) and, in exact mode only, an optional {@link SinkWindow} (StreamingLLM-style sinks plus
 * the most recent keys). Immutable; validated once at construction and reused for every call (no
 * allocation per call). Build with the static factories, or from a {@link ModeConfig}.
 *
 * <p>The accessors {@link #epsilon()}, {@link #delta()} and the like are the flat view older callers
 * and the wire format of the cluster module use: each returns the mode's value, or the neutral value
 * (0, or the sampled defaults) for a mode that has no such parameter.
 */
public final class AttentionConfig {

  /** Default confidence level of the estimated mode's interval. */
  public static final double DEFAULT_CONFIDENCE = ModeConfig.Estimated.DEFAULT_CONFIDENCE;
  /** Default seed of the estimated mode's sample. */
  public static final long DEFAULT_SEED = ModeConfig.Estimated.DEFAULT_SEED;
  /** Default stride, radius, margin of the note, and the guard (exp(20) = 4.9e8 cannot overflow). */
  public static final int DEFAULT_DELTA = ModeConfig.Sampled.DEFAULT_DELTA;
  public static final int DEFAULT_RADIUS = ModeConfig.Sampled.DEFAULT_RADIUS;
  public static final float DEFAULT_MARGIN = ModeConfig.Sampled.DEFAULT_MARGIN;
  public static final float DEFAULT_GUARD = ModeConfig.Sampled.DEFAULT_GUARD;

  private static final AttentionConfig EXACT = new AttentionConfig(ModeConfig.Exact.INSTANCE, null);
  private static final ModeConfig.Sampled SAMPLED_DEFAULTS = new ModeConfig.Sampled();

  private final ModeConfig modeConfig;
  private final SinkWindow sinkWindow; // null: every key

  /**
   * A mode with an optional sinks + window restriction.
   *
   * @param modeConfig the mode and its parameters
   * @param sinkWindow null for every key; otherwise exact mode only
   */
  public AttentionConfig(ModeConfig modeConfig, SinkWindow sinkWindow) {
    this.modeConfig = Objects.requireNonNull(modeConfig, "mode");
    if (sinkWindow != null && !(modeConfig instanceof ModeConfig.Exact)) {
      throw new IllegalArgumentException("a window (sinks + recent keys) is only supported in exact mode: "
          + modeConfig.id());
    }
    this.sinkWindow = sinkWindow;
  }

  /** A mode over every key. */
  public static AttentionConfig of(ModeConfig modeConfig) {
    return modeConfig instanceof ModeConfig.Exact ? EXACT : new AttentionConfig(modeConfig, null);
  }

  /**
   * The flat form older callers and the cluster's wire format use: builds the mode's record from
   * the parameters that mode has; a parameter the mode does not have must be neutral where it could
   * be mistaken for a request (an output-error target outside certified and estimated, a window
   * outside exact).
   */
  public AttentionConfig(AttentionMode mode, double epsilon, int budgetTiles, double budgetShare,
      long budgetBytes, int delta, int radius, float margin, float guard, int sinks, int window,
      double maxError, double confidence, long seed) {
    this(flat(mode, epsilon, budgetTiles, budgetShare, budgetBytes, delta, radius, margin, guard, maxError,
        confidence, seed), window > 0 ? new SinkWindow(sinks, window) : checkNoSinks(sinks, window));
  }

  /** The flat form without an output-error target. */
  public AttentionConfig(AttentionMode mode, double epsilon, int budgetTiles, double budgetShare,
      long budgetBytes, int delta, int radius, float margin, float guard, int sinks, int window) {
    this(mode, epsilon, budgetTiles, budgetShare, budgetBytes, delta, radius, margin, guard, sinks, window, 0, 0, 0);
  }

  private static SinkWindow checkNoSinks(int sinks, int window) {
    if (sinks < 0 || window < 0) {
      throw new IllegalArgumentException("sinks and window must be >= 0: " + sinks + ", " + window);
    }
    return null;
  }

  private static ModeConfig flat(AttentionMode mode, double epsilon, int budgetTiles, double budgetShare,
      long budgetBytes, int delta, int radius, float margin, float guard, double maxError, double confidence,
      long seed) {
    Objects.requireNonNull(mode, "mode");
    if (maxError != 0 && mode != AttentionMode.CERTIFIED && mode != AttentionMode.ESTIMATED) {
      throw new IllegalArgumentException("an output-error target needs certified or estimated mode: " + mode.id());
    }
    return switch (mode) {
      case EXACT -> ModeConfig.Exact.INSTANCE;
      case SAMPLED -> new ModeConfig.Sampled(delta, radius, margin, guard);
      case CERTIFIED -> new ModeConfig.Certified(epsilon, maxError);
      case BUDGETED -> new ModeConfig.Budgeted(budgetTiles, budgetShare, budgetBytes);
      case ESTIMATED -> new ModeConfig.Estimated(maxError, confidence, seed);
    };
  }

  /** The mode and its parameters. */
  public ModeConfig modeConfig() {
    return modeConfig;
  }

  /** The sinks + window restriction, or null when every key is attended. */
  public SinkWindow sinkWindow() {
    return sinkWindow;
  }

  /**
   * StreamingLLM-style attention in exact mode: every call attends to the first {@code sinks}
   * positions and the last {@code window} positions only (window &gt;= 1). The cache keeps
   * everything; what is read is the sinks and the window.
   */
  public static AttentionConfig streaming(int sinks, int window) {
    return new AttentionConfig(ModeConfig.Exact.INSTANCE, new SinkWindow(sinks, window));
  }

  /**
   * Query rows a prefill call computes together against each K/V tile: {@link
   * DecodeAttention#PREFILL_BLOCK_ROWS} for exact attention over every key (the tiled prefill), 1
   * otherwise (the other modes and a window prefill row by row, each row a decode call).
   */
  public int prefillBlockRows() {
    return modeConfig.isExact() && sinkWindow == null ? TiledPrefill.BLOCK_ROWS : 1;
  }

  /** Whether this config restricts the keys to sinks plus a recent window. */
  public boolean windowed() {
    return sinkWindow != null;
  }

  /** Exact online softmax. */
  public static AttentionConfig exact() {
    return EXACT;
  }

  /** The note's sampled max with its default stride 16, radius 32, margin 2. */
  public static AttentionConfig sampled() {
    return sampled(DEFAULT_DELTA, DEFAULT_RADIUS, DEFAULT_MARGIN);
  }

  /** Sampled max with explicit stride, refinement radius and margin; guard 20. */
  public static AttentionConfig sampled(int delta, int radius, float margin) {
    return of(new ModeConfig.Sampled(delta, radius, margin, DEFAULT_GUARD));
  }

  /** Certified mode with relative mass tolerance {@code epsilon}. */
  public static AttentionConfig certified(double epsilon) {
    return of(new ModeConfig.Certified(epsilon, 0));
  }

  /**
   * Certified mode with an output-error target: stops when, for every head, the certified bound on
   * {@code ||out_h - exact_h||} is at most {@code maxError} times {@code ||exact_h||} (the bound uses
   * each skipped node's value ball, see docs/HIERARCHICAL.md). {@code maxError} in (0, 1).
   */
  public static AttentionConfig certifiedMaxError(double maxError) {
    if (!(maxError > 0 && maxError < 1)) {
      throw new IllegalArgumentException("max error must be in (0, 1): " + maxError);
    }
    return of(new ModeConfig.Certified(0, maxError));
  }

  /** Whether this is certified with an output-error target instead of a mass share. */
  public boolean outputTarget() {
    return modeConfig instanceof ModeConfig.Certified c && c.outputTarget();
  }

  /** Estimated mode with target {@code maxError}, confidence 0.99 and the default seed. */
  public static AttentionConfig estimated(double maxError) {
    return estimated(maxError, DEFAULT_CONFIDENCE, DEFAULT_SEED);
  }

  /**
   * Estimated mode: the tiles the bounds rank highest are read exactly, the rest estimated from a
   * seeded stratified sample; stops when, at the given confidence, every head's error
   * {@code ||out_h - exact_h|| / ||exact_h||} is at most {@code maxError} (docs/HIERARCHICAL.md).
   */
  public static AttentionConfig estimated(double maxError, double confidence, long seed) {
    return of(new ModeConfig.Estimated(maxError, confidence, seed));
  }

  /** Budgeted mode opening {@code tiles} tiles per KV head (first and last always included). */
  public static AttentionConfig budgetedTiles(int tiles) {
    if (tiles <= 0) {
      throw new IllegalArgumentException("budget tiles must be > 0: " + tiles);
    }
    return of(new ModeConfig.Budgeted(tiles, 0, 0));
  }

  /** Budgeted mode opening a share (0, 1] of the tiles. */
  public static AttentionConfig budgetedShare(double share) {
    if (!(share > 0 && share <= 1)) {
      throw new IllegalArgumentException("budget share must be in (0, 1]: " + share);
    }
    return of(new ModeConfig.Budgeted(0, share, 0));
  }

  /** Budgeted mode reading at most {@code bytes} of K and V per call (at least the kept tiles). */
  public static AttentionConfig budgetedBytes(long bytes) {
    if (bytes <= 0) {
      throw new IllegalArgumentException("budget bytes must be > 0: " + bytes);
    }
    return of(new ModeConfig.Budgeted(0, 0, bytes));
  }

  /**
   * The one parser of {@code --mode} and its parameters, for every front end: see
   * {@link ModeConfig#parse}.
   */
  public static AttentionConfig parse(String mode, ModeConfig.Parameters parameters) {
    return of(ModeConfig.parse(mode, parameters));
  }

  /**
   * {@code mode} with its default parameters ({@link ModeConfig.Parameters#defaults}): the note's
   * sampled defaults, certified epsilon 1e-3, budgeted 5 % of the tiles, estimated max error 1e-2.
   */
  public static AttentionConfig defaults(AttentionMode mode) {
    return parse(mode.id(), ModeConfig.Parameters.defaults());
  }

  // ------------------------------------------------------------------------- the flat view

  /** The mode. */
  public AttentionMode mode() {
    return modeConfig.mode();
  }

  /** Certified's mass tolerance; 0 otherwise (and with an output-error target). */
  public double epsilon() {
    return switch (modeConfig) {
      case ModeConfig.Certified c -> c.epsilon();
      case ModeConfig.CertifiedOracle o -> o.epsilon();
      default -> 0;
    };
  }

  /** Budgeted's tile count; 0 otherwise. */
  public int budgetTiles() {
    return modeConfig instanceof ModeConfig.Budgeted b ? b.tiles() : 0;
  }

  /** Budgeted's share; 0 otherwise. */
  public double budgetShare() {
    return modeConfig instanceof ModeConfig.Budgeted b ? b.share() : 0;
  }

  /** Budgeted's bytes; 0 otherwise. */
  public long budgetBytes() {
    return modeConfig instanceof ModeConfig.Budgeted b ? b.bytes() : 0;
  }

  private ModeConfig.Sampled sampledOrDefaults() {
    return modeConfig instanceof ModeConfig.Sampled s ? s : SAMPLED_DEFAULTS;
  }

  /** Sampled's stride; the default otherwise. */
  public int delta() {
    return sampledOrDefaults().delta();
  }

  /** Sampled's radius; the default otherwise. */
  public int radius() {
    return sampledOrDefaults().radius();
  }

  /** Sampled's margin; the default otherwise. */
  public float margin() {
    return sampledOrDefaults().margin();
  }

  /** Sampled's guard; the default otherwise. */
  public float guard() {
    return sampledOrDefaults().guard();
  }

  /** The always-attended first positions of a windowed config; 0 otherwise. */
  public int sinks() {
    return sinkWindow == null ? 0 : sinkWindow.sinks();
  }

  /** The recent positions of a windowed config; 0 (every key) otherwise. */
  public int window() {
    return sinkWindow == null ? 0 : sinkWindow.window();
  }

  /** Certified's or estimated's output-error target; 0 otherwise. */
  public double maxError() {
    return switch (modeConfig) {
      case ModeConfig.Certified c -> c.maxError();
      case ModeConfig.Estimated e -> e.maxError();
      default -> 0;
    };
  }

  /** Estimated's confidence level; 0 otherwise. */
  public double confidence() {
    return modeConfig instanceof ModeConfig.Estimated e ? e.confidence() : 0;
  }

  /** Estimated's seed; 0 otherwise. */
  public long seed() {
    return modeConfig instanceof ModeConfig.Estimated e ? e.seed() : 0;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof AttentionConfig c && modeConfig.equals(c.modeConfig)
        && Objects.equals(sinkWindow, c.sinkWindow);
  }

  @Override
  public int hashCode() {
    return modeConfig.hashCode() * 31 + Objects.hashCode(sinkWindow);
  }

  @Override
  public String toString() {
    return "AttentionConfig[" + modeConfig + (sinkWindow == null ? "" : ", " + sinkWindow) + "]";
  }
}
