package hflash.engine.bounded;

import hflash.engine.ModeConfig;
import hflash.engine.pass.ModeStrategy;
import hflash.engine.pass.Tiles;

/**
 * The certified mode's oracle (evaluation only): the certified traversal and stopping rule with
 * each tile's true max score as its bound, which scores every key to find them.
 */
public final class OracleStrategy implements ModeStrategy<ModeConfig.CertifiedOracle> {

  private final BoundedTraversal traversal;

  public OracleStrategy(BoundedTraversal traversal) {
    this.traversal = traversal;
  }

  @Override
  public void run(ModeConfig.CertifiedOracle config, Tiles tiles, int kh, int from, int to) {
    traversal.run(tiles, kh, config, 0);
  }
}
