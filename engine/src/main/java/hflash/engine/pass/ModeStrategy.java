package hflash.engine.pass;

import hflash.engine.ModeConfig;

/**
 * What a decode pass does with the tiles of one KV head: one implementation per mode, each in its
 * own package ({@code hflash.engine.exact}, {@code .sampled}, {@code .bounded}, {@code .estimated}),
 * chosen in one place by the engine. A strategy knows nothing about threads: the engine's
 * {@link TilePlan} gives each worker its KV heads and tile ranges, and {@link Tiles} does the reads.
 * Instances hold per-worker scratch and are never shared between threads.
 *
 * @param <C> the mode's configuration record
 */
public interface ModeStrategy<C extends ModeConfig> {

  /**
   * Runs the mode for KV head kh's group over the plan's tiles {@code [from, to)} (a split-K range
   * for exact mode, every tile for the others), leaving the group's online-softmax state in the
   * worker's state and its per-head bounds in the report.
   */
  void run(C config, Tiles tiles, int kh, int from, int to);
}
