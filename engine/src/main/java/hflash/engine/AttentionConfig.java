package hflash.engine;

import java.util.Objects;

/**
 * A mode and its parameters, validated once at construction and reused for every call (no
 * allocation per call). Build with the static factories.
 *
 * @param mode the mode
 * @param epsilon CERTIFIED: stop when the unread mass bound is at most epsilon times the read mass
 *     (0 when {@code maxError} is set)
 * @param budgetTiles BUDGETED: tiles per KV head to open (0 when another budget is set)
 * @param budgetShare BUDGETED: share of the tiles to open, in (0, 1] (0 when unused)
 * @param budgetBytes BUDGETED: K+V bytes per call to read (0 when unused)
 * @param delta SAMPLED: sampling stride, &gt;= 1 (the note: 8-16)
 * @param radius SAMPLED: refinement radius in keys, &gt;= 0 (the note: 32-64)
 * @param margin SAMPLED: safety margin added to the estimate, &gt;= 0 (the note: 1-2)
 * @param guard SAMPLED: a tile whose max beats the reference by more than this rescales, in [1, 60]
 * @param sinks EXACT with a window: the first {@code sinks} positions are always attended (&gt;= 0)
 * @param window EXACT: attend only to the last {@code window} positions plus the sinks (0 = all)
 * @param maxError CERTIFIED, instead of epsilon: stop when the bound on
 *     {@code ||out_h - exact_h|| / ||exact_h||} is at most maxError for every head (0 = unused);
 *     ESTIMATED: the same, for the upper end of the confidence interval
 * @param confidence ESTIMATED: level of the interval, in (0, 1) (0 for the other modes)
 * @param seed ESTIMATED: seed of the tile sample; a fixed seed gives fixed bits
 */
public record AttentionConfig(AttentionMode mode, double epsilon, int budgetTiles,
    double budgetShare, long budgetBytes, int delta, int radius, float margin, float guard,
    int sinks, int window, double maxError, double confidence, long seed) {

  /** Default confidence level of the estimated mode's interval. */
  public static final double DEFAULT_CONFIDENCE = 0.99;
  /** Default seed of the estimated mode's sample. */
  public static final long DEFAULT_SEED = 0x5eedL;

  /** The configuration without an output-error target ({@code maxError = 0}). */
  public AttentionConfig(AttentionMode mode, double epsilon, int budgetTiles, double budgetShare,
      long budgetBytes, int delta, int radius, float margin, float guard, int sinks, int window) {
    this(mode, epsilon, budgetTiles, budgetShare, budgetBytes, delta, radius, margin, guard, sinks,
        window, 0, 0, 0);
  }

  /** Default stride, radius, margin of the note, and the guard (exp(20) = 4.9e8 cannot overflow). */
  public static final int DEFAULT_DELTA = 16;
  public static final int DEFAULT_RADIUS = 32;
  public static final float DEFAULT_MARGIN = 2f;
  public static final float DEFAULT_GUARD = 20f;

  private static final AttentionConfig EXACT = new AttentionConfig(AttentionMode.EXACT, 0, 0, 0,
      0, DEFAULT_DELTA, DEFAULT_RADIUS, DEFAULT_MARGIN, DEFAULT_GUARD, 0, 0);

  /** Validates every parameter the mode uses. */
  public AttentionConfig {
    Objects.requireNonNull(mode, "mode");
    if (mode == AttentionMode.ESTIMATED) {
      if (!(maxError > 0 && maxError < 1)) {
        throw new IllegalArgumentException("max error must be in (0, 1): " + maxError);
      }
      if (!(confidence > 0 && confidence < 1)) {
        throw new IllegalArgumentException("confidence must be in (0, 1): " + confidence);
      }
    } else if (maxError != 0) {
      if (mode != AttentionMode.CERTIFIED) {
        throw new IllegalArgumentException("an output-error target needs certified or estimated mode: " + mode.id());
      }
      if (!(maxError > 0 && maxError < 1)) {
        throw new IllegalArgumentException("max error must be in (0, 1): " + maxError);
      }
      if (epsilon != 0) {
        throw new IllegalArgumentException("epsilon and max error are alternatives: " + epsilon + ", " + maxError);
      }
    } else if (mode == AttentionMode.CERTIFIED && !(epsilon > 0 && epsilon < Double.POSITIVE_INFINITY)) {
      throw new IllegalArgumentException("epsilon must be finite and > 0: " + epsilon);
    }
    if (mode == AttentionMode.BUDGETED) {
      int set = (budgetTiles != 0 ? 1 : 0) + (budgetShare != 0 ? 1 : 0) + (budgetBytes != 0 ? 1 : 0);
      if (set != 1) {
        throw new IllegalArgumentException("budgeted needs exactly one budget (tiles, share or bytes)");
      }
      if (budgetTiles < 0) {
        throw new IllegalArgumentException("budget tiles must be > 0: " + budgetTiles);
      }
      if (budgetShare != 0 && !(budgetShare > 0 && budgetShare <= 1)) {
        throw new IllegalArgumentException("budget share must be in (0, 1]: " + budgetShare);
      }
      if (budgetBytes < 0) {
        throw new IllegalArgumentException("budget bytes must be > 0: " + budgetBytes);
      }
    }
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
    if (sinks < 0 || window < 0) {
      throw new IllegalArgumentException("sinks and window must be >= 0: " + sinks + ", " + window);
    }
    if (window > 0 && mode != AttentionMode.EXACT) {
      throw new IllegalArgumentException("a window (sinks + recent keys) is only supported in exact mode: " + mode.id());
    }
  }

  /**
   * StreamingLLM-style attention in exact mode: every call attends to the first {@code sinks}
   * positions and the last {@code window} positions only (window &gt;= 1). The cache keeps
   * everything; what is read is the sinks and the window.
   */
  public static AttentionConfig streaming(int sinks, int window) {
    if (window < 1) {
      throw new IllegalArgumentException("window must be >= 1: " + window);
    }
    return new AttentionConfig(AttentionMode.EXACT, 0, 0, 0, 0, DEFAULT_DELTA, DEFAULT_RADIUS,
        DEFAULT_MARGIN, DEFAULT_GUARD, sinks, window);
  }

  /** Whether this config restricts the keys to sinks plus a recent window. */
  public boolean windowed() {
    return window > 0;
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
    return new AttentionConfig(AttentionMode.SAMPLED, 0, 0, 0, 0, delta, radius, margin,
        DEFAULT_GUARD, 0, 0);
  }

  /** Certified mode with relative mass tolerance {@code epsilon}. */
  public static AttentionConfig certified(double epsilon) {
    return new AttentionConfig(AttentionMode.CERTIFIED, epsilon, 0, 0, 0, DEFAULT_DELTA,
        DEFAULT_RADIUS, DEFAULT_MARGIN, DEFAULT_GUARD, 0, 0);
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
    return new AttentionConfig(AttentionMode.CERTIFIED, 0, 0, 0, 0, DEFAULT_DELTA, DEFAULT_RADIUS,
        DEFAULT_MARGIN, DEFAULT_GUARD, 0, 0, maxError, 0, 0);
  }

  /** Whether this is certified with an output-error target instead of a mass share. */
  public boolean outputTarget() {
    return maxError > 0 && mode == AttentionMode.CERTIFIED;
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
    return new AttentionConfig(AttentionMode.ESTIMATED, 0, 0, 0, 0, DEFAULT_DELTA, DEFAULT_RADIUS,
        DEFAULT_MARGIN, DEFAULT_GUARD, 0, 0, maxError, confidence, seed);
  }

  /** Budgeted mode opening {@code tiles} tiles per KV head (first and last always included). */
  public static AttentionConfig budgetedTiles(int tiles) {
    if (tiles <= 0) {
      throw new IllegalArgumentException("budget tiles must be > 0: " + tiles);
    }
    return new AttentionConfig(AttentionMode.BUDGETED, 0, tiles, 0, 0, DEFAULT_DELTA,
        DEFAULT_RADIUS, DEFAULT_MARGIN, DEFAULT_GUARD, 0, 0);
  }

  /** Budgeted mode opening a share (0, 1] of the tiles. */
  public static AttentionConfig budgetedShare(double share) {
    if (!(share > 0 && share <= 1)) {
      throw new IllegalArgumentException("budget share must be in (0, 1]: " + share);
    }
    return new AttentionConfig(AttentionMode.BUDGETED, 0, 0, share, 0, DEFAULT_DELTA,
        DEFAULT_RADIUS, DEFAULT_MARGIN, DEFAULT_GUARD, 0, 0);
  }

  /** Budgeted mode reading at most {@code bytes} of K and V per call (at least the kept tiles). */
  public static AttentionConfig budgetedBytes(long bytes) {
    if (bytes <= 0) {
      throw new IllegalArgumentException("budget bytes must be > 0: " + bytes);
    }
    return new AttentionConfig(AttentionMode.BUDGETED, 0, 0, 0, bytes, DEFAULT_DELTA,
        DEFAULT_RADIUS, DEFAULT_MARGIN, DEFAULT_GUARD, 0, 0);
  }

  /** Tiles per KV head a budgeted call may open, given the total and the bytes of one tile. */
  int tileBudget(int totalTiles, long tileBytes, int kvHeads) {
    if (budgetTiles > 0) {
      return budgetTiles;
    }
    if (budgetShare > 0) {
      return (int) Math.ceil(budgetShare * totalTiles);
    }
    return (int) Math.max(1, budgetBytes / (tileBytes * kvHeads));
  }
}
