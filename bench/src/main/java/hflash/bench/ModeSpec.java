package hflash.bench;

import hflash.engine.AttentionConfig;
import hflash.engine.AttentionMode;
import hflash.engine.ModeConfig;

/**
 * One attention mode with its validated parameters, built once from the command line and reused for
 * every decode call.
 *
 * @param config the engine configuration (mode and parameters)
 * @param param the parameter as the user gave it, for labels and JSON ("1e-3", "5%", "12", "64K"); "" for exact
 * @param tilesShare budgeted with a share budget: the share in (0, 1], else 0
 * @param tilesCount budgeted with a tile budget: tiles per KV head, else 0
 * @param budgetBytes budgeted with a byte budget: K+V bytes per call, else 0
 */
public record ModeSpec(AttentionConfig config, String param, double tilesShare, int tilesCount, long budgetBytes) {

  public static final ModeSpec EXACT = new ModeSpec(AttentionConfig.exact(), "", 0, 0, 0);

  public AttentionMode mode() {
    return config.mode();
  }

  /** This spec's typed parameter with {@code c} (the same configuration, from the engine's parser). */
  public ModeSpec with(AttentionConfig c) {
    return new ModeSpec(c, param, tilesShare, tilesCount, budgetBytes);
  }

  /** The lower-case mode name: exact, sampled, certified or budgeted. */
  public String id() {
    return config.mode().id();
  }

  /** "certified eps=1e-3", "budgeted 5%", "sampled delta=16 r=32 margin=2", "exact" (the engine's label, with the parameter as typed). */
  public String label() {
    return config.modeConfig().label(spelled());
  }

  /** The main parameter alone for a plot's point ("\u03b5=1e-3", "5%", "E=1e-2"); "" for exact and sampled. */
  public String pointLabel() {
    return config.modeConfig().pointLabel(spelled());
  }

  /**
   * The mode's parameters by their JSON names (the engine's), a budget as it was typed: epsilon;
   * tiles or budgetBytes; confidence and seed; delta, radius and margin; none for exact.
   */
  public java.util.Map<String, Object> parameters() {
    java.util.Map<String, Object> m = new java.util.LinkedHashMap<>(config.modeConfig().parameters());
    if (m.containsKey("tiles") && !param.isEmpty()) {
      m.put("tiles", param);
    }
    return m;
  }

  /** Whether this is the exact reference mode. */
  public boolean isExact() {
    return config.modeConfig().isExact();
  }

  /** The budget as typed, with " bytes" for a byte budget ("5%", "12", "64K bytes"); null without a budget. */
  public String budgetSpelling() {
    if (tileBudget(1, 1, 1) < 0) {
      return null;
    }
    return budgetBytes > 0 ? param + " bytes" : param;
  }

  private String spelled() {
    return param.isEmpty() ? null : param;
  }

  /** Epsilon of a certified mode (a mass tolerance), else NaN. */
  public double epsilon() {
    return config.epsilon() > 0 ? config.epsilon() : Double.NaN;
  }

  /** The output-error target ({@code --max-error}), else NaN. */
  public double maxError() {
    return config.maxError() > 0 ? config.maxError() : Double.NaN;
  }

  /**
   * Tiles per KV head a budgeted call over {@code totalTiles} tiles may open (the engine's rule:
   * a count as is, a share rounded up, bytes divided by one tile of K and V for every KV head, at
   * least 1); -1 for the other modes.
   */
  public int tileBudget(int totalTiles, long tileBytes, int kvHeads) {
    return config.modeConfig().tileBudget(totalTiles, tileBytes, kvHeads);
  }

  /** {@code v} as labels print it: without a trailing ".0". */
  public static String trim(double v) {
    return ModeConfig.trim(v);
  }
}
