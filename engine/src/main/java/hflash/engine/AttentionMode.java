package hflash.engine;

import java.util.Locale;

/**
 * How a decode call computes attention. Every mode returns the same kind of output and report;
 * see docs/HIERARCHICAL.md for the bounds and how each maps onto the design note's stages.
 */
public enum AttentionMode {
  /** Online softmax over every key (FlashAttention/FlashDecoding); float32-exact. */
  EXACT,
  /**
   * The note's estimator (stride-delta samples, refinement within +-r, margin delta) fixes the
   * softmax reference; one pass, no rescale unless a tile beats it by more than the guard G.
   * Float32-exact on every input.
   */
  SAMPLED,
  /**
   * Opens tiles best-first by a certified upper bound of their scores and stops when the mass
   * that could remain unread is at most epsilon times the mass read; returns a bound on the error.
   */
  CERTIFIED,
  /** The note's top-k: the same order, stopped at a tile or byte budget; the bound is a-posteriori. */
  BUDGETED,
  /**
   * Opens the tiles the bounds rank highest exactly, estimates the rest from a seeded stratified
   * random sample of tiles (unbiased for the unopened mass and value sum) and stops when the upper
   * end of a confidence interval on each head's output error meets the target; the interval holds
   * at a stated confidence level, not always (docs/HIERARCHICAL.md).
   */
  ESTIMATED;

  /** The CLI spelling: lower case. */
  public String id() {
    return name().toLowerCase(Locale.ROOT);
  }

  /**
   * Parses a mode name, case-insensitively.
   *
   * @throws IllegalArgumentException for an unknown name, listing the known ones
   */
  public static AttentionMode parse(String name) {
    if (name != null) {
      for (AttentionMode m : values()) {
        if (m.id().equalsIgnoreCase(name.trim())) {
          return m;
        }
      }
    }
    StringBuilder known = new StringBuilder();
    for (AttentionMode m : values()) {
      known.append(known.isEmpty() ? "" : ", ").append(m.id());
    }
    throw new IllegalArgumentException("unknown mode: " + name + " (expected " + known + ")");
  }
}
