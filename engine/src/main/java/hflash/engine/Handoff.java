package hflash.engine;

import hflash.memory.KvCacheLayout;
import hflash.tiles.TileKernels;
import java.util.concurrent.CancellationException;

/**
 * The bounded hand-off between the two units of a pipeline (the CPU mirror of the Ascend
 * schedule, where a K unit and a V unit share no buffer; docs/ascend.md):
 * unit 1 (the K side: scores, max, exp, the running sum, and in the bounded modes the bounds and
 * the plan) fills one of two slots (ping-pong) with a tile's weights and each head's rescale
 * factor; unit 2 (the V side) rescales the accumulators and adds {@code p . V}. Single producer,
 * single consumer; a full hand-off makes unit 1 wait (back-pressure), an empty one unit 2.
 *
 * <p>Unit 2 applies exactly the operations the serial loop would, in the same order, on the same
 * accumulator, so a pipelined call returns the serial scheduler's bits. If either unit fails, the
 * other stops waiting and ends with {@link Aborted}; {@link DecodeAttention} rethrows the original.
 */
final class Handoff {

  /** Test-only: called at every hand-off point when set, to shake thread interleavings. */
  static volatile Runnable testDelay;

  private final float[][] weights; // (2 slots)(g, tileTokens)
  private final float[][] alphas; // (2 slots)(g)
  private final int[] kvHead = new int[2];
  private final int[] tile = new int[2];
  private final int[] count = new int[2];
  private volatile long produced;
  private volatile long consumed;
  private volatile boolean finished;
  volatile Throwable failure; // the first failure of either unit
  private final DecodeAttention.CancelFlag cancel;

  Handoff(int group, int tileTokens, DecodeAttention.CancelFlag cancel) {
    this.weights = new float[][] {new float[group * tileTokens], new float[group * tileTokens]};
    this.alphas = new float[][] {new float[group], new float[group]};
    this.cancel = cancel;
  }

  void reset() {
    produced = 0;
    consumed = 0;
    finished = false;
    failure = null;
  }

  // ------------------------------------------------------------------------------ unit 1

  /** Waits for a free slot; returns its weight buffer (unit 1 scores into it). */
  float[] freeWeights() {
    while (produced - consumed >= 2) {
      await();
    }
    return weights[(int) (produced & 1)];
  }

  /** The rescale factors of the free slot (valid after {@link #freeWeights()}). */
  float[] freeAlphas() {
    return alphas[(int) (produced & 1)];
  }

  /** Publishes the free slot: tile t of KV head kh, with n keys. */
  void publish(int kh, int t, int n) {
    int slot = (int) (produced & 1);
    kvHead[slot] = kh;
    tile[slot] = t;
    count[slot] = n;
    delay();
    produced = produced + 1; // volatile write (single writer): publishes the slot's contents
  }

  /** Waits until unit 2 has applied every published slot (the accumulators are complete). */
  void drain() {
    while (consumed != produced) {
      await();
    }
  }

  /** No more slots will come. */
  void finish() {
    finished = true;
  }

  // ------------------------------------------------------------------------------ unit 2

  /**
   * Unit 2's loop: applies every slot to {@code state}'s accumulators until unit 1 finishes.
   * Counts V bytes and tiles on {@code counters}.
   */
  void consume(Call call, TileKernels kernels, KvCacheLayout layout, int g,
      AttentionState state, TileLoop counters) {
    int d = layout.headDim();
    int tileTokens = layout.tileTokens();
    while (true) {
      while (consumed == produced) {
        if (finished && consumed == produced) {
          return;
        }
        await();
      }
      int slot = (int) (consumed & 1);
      int h0 = kvHead[slot] * g;
      float[] a = alphas[slot];
      for (int i = 0; i < g; i++) {
        if (a[i] != 1f) {
          kernels.scale(state.acc, (h0 + i) * d, d, a[i]);
        }
      }
      TileLoop.accumulateTile(kernels, layout, call, kvHead[slot], tile[slot], count[slot],
          weights[slot], g, counters.tileAcc, state.acc);
      counters.kvBytes += (long) count[slot] * layout.rowBytes();
      counters.fmas += (long) count[slot] * g * d;
      counters.tilesRead++;
      delay();
      consumed = consumed + 1; // volatile write (single writer): frees the slot
    }
  }

  // ------------------------------------------------------------------------------ common

  private void await() {
    if (failure != null) {
      throw new Aborted();
    }
    cancel.check();
    Thread.onSpinWait();
    Thread.yield();
  }

  private static void delay() {
    Runnable r = testDelay;
    if (r != null) {
      r.run();
    }
  }

  /** Ends the other unit after one failed; carries no information of its own. */
  static final class Aborted extends CancellationException {
    private static final long serialVersionUID = 1L;

    Aborted() {
      super("pipeline unit aborted because the other unit failed");
    }
  }
}
