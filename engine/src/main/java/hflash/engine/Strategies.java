package hflash.engine;

import hflash.engine.bounded.BoundedTraversal;
import hflash.engine.bounded.BudgetedStrategy;
import hflash.engine.bounded.CertifiedStrategy;
import hflash.engine.bounded.OracleStrategy;
import hflash.engine.estimated.EstimatedStrategy;
import hflash.engine.exact.ExactStrategy;
import hflash.engine.pass.Tiles;
import hflash.engine.sampled.SampledStrategy;
import hflash.memory.KvCacheLayout;
import hflash.tiles.TileKernels;

/**
 * The one place a mode's strategy is chosen: one worker's strategies, each created on its first
 * call (the bounded and estimated scratch is large), and the dispatch from a {@link ModeConfig}
 * record to the strategy that runs it.
 */
final class Strategies {

  private final TileKernels kernels;
  private final KvCacheLayout layout;
  private final int numHeads;
  private final int group;
  private ExactStrategy exact;
  private SampledStrategy sampled;
  private BoundedTraversal bounded; // shared by certified, budgeted and the oracle
  private CertifiedStrategy certified;
  private BudgetedStrategy budgeted;
  private OracleStrategy oracle;
  private EstimatedStrategy estimated;

  Strategies(TileKernels kernels, KvCacheLayout layout, int numHeads, int group) {
    this.kernels = kernels;
    this.layout = layout;
    this.numHeads = numHeads;
    this.group = group;
  }

  /** Runs {@code mode} for KV head kh over the plan's tiles [from, to) on the worker's {@code tiles}. */
  void run(ModeConfig mode, Tiles tiles, int kh, int from, int to) {
    switch (mode) {
      case ModeConfig.Exact c -> {
        if (exact == null) {
          exact = new ExactStrategy();
        }
        exact.run(c, tiles, kh, from, to);
      }
      case ModeConfig.Sampled c -> {
        if (sampled == null) {
          sampled = new SampledStrategy(numHeads);
        }
        sampled.run(c, tiles, kh, from, to);
      }
      case ModeConfig.Certified c -> {
        if (certified == null) {
          certified = new CertifiedStrategy(bounded());
        }
        certified.run(c, tiles, kh, from, to);
      }
      case ModeConfig.Budgeted c -> {
        if (budgeted == null) {
          budgeted = new BudgetedStrategy(bounded());
        }
        budgeted.run(c, tiles, kh, from, to);
      }
      case ModeConfig.CertifiedOracle c -> {
        if (oracle == null) {
          oracle = new OracleStrategy(bounded());
        }
        oracle.run(c, tiles, kh, from, to);
      }
      case ModeConfig.Estimated c -> {
        if (estimated == null) {
          estimated = new EstimatedStrategy(kernels, layout, group);
        }
        estimated.run(c, tiles, kh, from, to);
      }
    }
  }

  private BoundedTraversal bounded() {
    if (bounded == null) {
      bounded = new BoundedTraversal(kernels, layout, group);
    }
    return bounded;
  }
}
