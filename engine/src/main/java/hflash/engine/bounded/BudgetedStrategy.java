package hflash.engine.bounded;

import hflash.engine.ModeConfig;
import hflash.engine.pass.ModeStrategy;
import hflash.engine.pass.Tiles;

/**
 * Budgeted mode: the traversal order of {@link BoundedTraversal} with the cheaper ball bounds,
 * stopped when the plan's tile budget is chosen; the chosen tiles are read in index order and the
 * bound is reported a posteriori.
 */
public final class BudgetedStrategy implements ModeStrategy<ModeConfig.Budgeted> {

  private final BoundedTraversal traversal;

  public BudgetedStrategy(BoundedTraversal traversal) {
    this.traversal = traversal;
  }

  @Override
  public void run(ModeConfig.Budgeted config, Tiles tiles, int kh, int from, int to) {
    traversal.run(tiles, kh, config, tiles.plan().tileBudget());
  }
}
