package hflash.engine.bounded;

import hflash.engine.ModeConfig;
import hflash.engine.pass.ModeStrategy;
import hflash.engine.pass.Tiles;

/**
 * Certified mode: the best-first traversal of {@link BoundedTraversal}, stopped when the mass that
 * could remain unread is at most epsilon times the mass read (or, with an output-error target, when
 * the output bound meets it); falls back to scoring every K when the bounds cannot rule out most of
 * the cache.
 */
public final class CertifiedStrategy implements ModeStrategy<ModeConfig.Certified> {

  private final BoundedTraversal traversal;

  public CertifiedStrategy(BoundedTraversal traversal) {
    this.traversal = traversal;
  }

  @Override
  public void run(ModeConfig.Certified config, Tiles tiles, int kh, int from, int to) {
    traversal.run(tiles, kh, config, 0);
  }
}
