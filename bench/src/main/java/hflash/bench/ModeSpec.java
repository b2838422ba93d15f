package hflash.bench;

import hflash.engine.AttentionConfig;
import hflash.engine.AttentionMode;
import hflash.engine.ModeConfig;
import java.util.Locale;

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

  /** "certified eps=1e-3", "budgeted 5%", "sampled delta=16 r=32 margin=2", "exact". */
  public String label() {
    return switch (config.mode()) {
      case EXACT -> "exact";
      case SAMPLED -> "sampled delta=" + config.delta() + " r=" + config.radius() + " margin=" + trim(config.margin());
      case CERTIFIED -> config.outputTarget() ? "certified maxError=" + param : "certified eps=" + param;
      case BUDGETED -> "budgeted " + (budgetBytes > 0 ? param + " bytes" : tilesShare > 0 ? param : param + " tiles");
      case ESTIMATED -> "estimated maxError=" + param + " confidence=" + trim(config.confidence());
    };
  }

  /** Epsilon of a certified mode, else NaN. */
  public double epsilon() {
    return config.mode() == AttentionMode.CERTIFIED && !config.outputTarget() ? config.epsilon() : Double.NaN;
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
    return config.modeConfig() instanceof ModeConfig.Budgeted b ? b.tileBudget(totalTiles, tileBytes, kvHeads) : -1;
  }

  public static String trim(double v) {
    if (v == Math.rint(v) && Math.abs(v) < 1e9) {
      return String.valueOf((long) v);
    }
    return String.valueOf(v).toLowerCase(Locale.ROOT);
  }
}
