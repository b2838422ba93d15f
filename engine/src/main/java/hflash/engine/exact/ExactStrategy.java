package hflash.engine.exact;

import hflash.engine.ModeConfig;
import hflash.engine.pass.ModeStrategy;
import hflash.engine.pass.TilePlan;
import hflash.engine.pass.Tiles;

/**
 * Exact mode: the online softmax over the plan's tiles (FlashAttention/FlashDecoding). For each
 * tile: scores of the group's heads, the running max/sum update with the rescale of the old
 * accumulators, then p.V (see {@link hflash.engine.AttentionState}). With sinks + window the plan
 * maps virtual tiles to the sink and window tiles, and the keys of a read tile that fall between
 * the two get score -inf (weight 0); every read tile holds at least one attended key. With a
 * coarse (native) kernel the unmasked tiles go to it in runs ({@link Tiles#decodeRun}).
 */
public final class ExactStrategy implements ModeStrategy<ModeConfig.Exact> {

  @Override
  public void run(ModeConfig.Exact config, Tiles tiles, int kh, int from, int to) {
    if (!tiles.coarse()) {
      for (int vt = from; vt < to; vt++) {
        tile(tiles, kh, vt);
      }
      return;
    }
    // runs of tiles with no masked key go to the coarse kernel; a tile the window cuts goes tile by tile
    TilePlan plan = tiles.plan();
    int tileTokens = tiles.layout().tileTokens();
    int run = from;
    for (int vt = from; vt < to; vt++) {
      int first = plan.tile(vt) * tileTokens;
      if (plan.masksAny(first, Math.min(first + tileTokens, tiles.keys()))) {
        tiles.decodeRun(kh, run, vt);
        tile(tiles, kh, vt);
        run = vt + 1;
      }
    }
    tiles.decodeRun(kh, run, to);
  }

  /** One virtual tile: scores, the window's mask, the online-softmax update, p.V. */
  private static void tile(Tiles tiles, int kh, int vt) {
    TilePlan plan = tiles.plan();
    int tileTokens = tiles.layout().tileTokens();
    int g = tiles.group();
    int t = plan.tile(vt);
    int count = tiles.score(kh, t);
    if (plan.windowed()) {
      float[] s = tiles.weights();
      int first = t * tileTokens;
      for (int j = 0; j < count; j++) {
        if (!plan.attended(first + j)) {
          for (int i = 0; i < g; i++) {
            s[i * tileTokens + j] = Float.NEGATIVE_INFINITY;
          }
        }
      }
    }
    tiles.absorbAndAccumulate(kh, t, count);
  }
}
