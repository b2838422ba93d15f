package hflash.engine;

import java.util.concurrent.CancellationException;

/**
 * The hand-off between the two units of one pipeline of a batched exact decode ({@link
 * BatchedDecode} with {@link Scheduler#PIPELINE}), the cascade's form of {@link Handoff}: unit 1
 * (the K side, a {@link CascadeLane}) scores a tile for all the rows of a work unit, folds the
 * scores into its running max and sum, and publishes the weights with each row's rescale factor;
 * unit 2 (the V side, another lane) rescales its accumulators and adds {@code P . V}. At the end of
 * a unit's pass unit 1 publishes the rows' final max and sum, and unit 2 merges each row into its
 * sequence's partial state. Two slots (ping-pong), single producer, single consumer; a full
 * hand-off makes unit 1 wait, an empty one unit 2.
 *
 * <p>Unit 2 applies exactly the operations the serial cascade would, in the same order, on the same
 * kind of accumulator, so one pipeline returns the serial cascade's bits.
 */
final class CascadeHandoff {

  /** One published step: a tile's weights, or the end of a pass. */
  static final class Slot {
    final float[] weights; // (rows, sStride) p_j = exp(s_j - m') of the tile
    final float[] alphas; // (rows) accumulator rescale factor of each row (1 when none)
    final float[] m; // (rows) end of pass: each row's final max
    final float[] l; // (rows) end of pass: each row's final sum
    boolean end; // true: end of a pass (m, l, members valid); false: a tile
    int rows;
    int count; // keys of the tile
    long offset; // byte offset of the tile's V rows in the pool's V segment
    boolean micro; // true: accumulate on the prefill micro-kernels
    int[] members; // end of pass: members[from .. to) own rows (i - from) * g ..
    int from;
    int to;
    int kvHead;

    Slot(int rows, int sStride) {
      weights = new float[rows * sStride];
      alphas = new float[rows];
      m = new float[rows];
      l = new float[rows];
    }
  }

  private final Slot[] slots;
  private final DecodeAttention.CancelFlag cancel;
  private volatile long produced;
  private volatile long consumed;
  private volatile boolean finished;
  volatile Throwable failure; // the first failure of either unit

  CascadeHandoff(int rows, int sStride, DecodeAttention.CancelFlag cancel) {
    this.slots = new Slot[] {new Slot(rows, sStride), new Slot(rows, sStride)};
    this.cancel = cancel;
  }

  void reset() {
    produced = 0;
    consumed = 0;
    finished = false;
    failure = null;
  }

  /** Unit 1: waits for a free slot and returns it. */
  Slot free() {
    while (produced - consumed >= 2) {
      await();
    }
    return slots[(int) (produced & 1)];
  }

  /** Unit 1: publishes the slot {@link #free()} returned. */
  void publish() {
    produced = produced + 1; // volatile write (single writer): publishes the slot's contents
  }

  /** Unit 1: no more slots will come. */
  void finish() {
    finished = true;
  }

  /** Unit 2: the next published slot, or null when unit 1 finished and every slot was consumed. */
  Slot next() {
    while (consumed == produced) {
      if (finished && consumed == produced) {
        return null;
      }
      await();
    }
    return slots[(int) (consumed & 1)];
  }

  /** Unit 2: the slot {@link #next()} returned is applied and may be reused. */
  void release() {
    consumed = consumed + 1; // volatile write (single writer)
  }

  private void await() {
    if (failure != null) {
      throw new Aborted();
    }
    cancel.check();
    Thread.onSpinWait();
    Thread.yield();
  }

  /** Ends the other unit after one failed; carries no information of its own. */
  static final class Aborted extends CancellationException {
    private static final long serialVersionUID = 1L;

    Aborted() {
      super("pipeline unit aborted because the other unit failed");
    }
  }
}
