package hflash.engine;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;

/**
 * A fixed set of daemon worker threads that run task indices {@code 1 .. count-1} of a job while
 * the calling thread runs index 0. Dispatch allocates nothing: the job is a field, workers wait for
 * a generation counter to move (spinning briefly, then parking), and the last one to finish wakes
 * the caller. One job at a time; {@link DecodeAttention} guarantees that.
 *
 * <p>A task's exception is caught on its worker and rethrown by {@link #run} on the caller after
 * all tasks of the job have ended, so no worker is left inside a job when {@code run} returns.
 */
final class WorkerPool implements AutoCloseable {

  /**
   * How long a waiting thread spins before it parks, in nanoseconds ({@code -Dhflash.spinMicros},
   * default 50 us). Spinning makes back-to-back calls start without a wake-up, but a runtime does
   * other work between two attention calls (projections, MLP on its own threads): every spun
   * microsecond then takes a core from that work. 20,000 pause instructions (0.35-0.44 ms on a
   * Zen 5) cost a Jlama layer more than the wake-up they saved; 50 us covers a wake-up's latency.
   */
  static final long SPIN_NANOS = spinNanos(System.getProperty("hflash.spinMicros"));

  static long spinNanos(String micros) {
    if (micros == null) {
      return 50_000L;
    }
    long us;
    try {
      us = Long.parseLong(micros.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("hflash.spinMicros must be a whole number of microseconds: " + micros);
    }
    if (us < 0 || us > 1_000_000) {
      throw new IllegalArgumentException("hflash.spinMicros must be in [0, 1000000]: " + us);
    }
    return us * 1000L;
  }

  /** Spins (checking the clock every 64 pauses) until {@code SPIN_NANOS} have passed since {@code start}. */
  private static boolean spinOn(int spin, long start) {
    if ((spin & 63) != 0) {
      return true;
    }
    return System.nanoTime() - start < SPIN_NANOS;
  }

  private final Thread[] workers; // worker i runs task index i + 1
  private final AtomicInteger pending = new AtomicInteger();
  private volatile int generation;
  private volatile int count;
  private volatile IntConsumer job;
  private volatile Thread caller;
  private volatile Throwable failure;
  private volatile boolean closed;

  WorkerPool(int threads, String name) {
    workers = new Thread[threads - 1];
    for (int i = 0; i < workers.length; i++) {
      int index = i + 1;
      workers[i] = Thread.ofPlatform().daemon().name(name + "-" + index).unstarted(() -> loop(index));
      workers[i].start();
    }
  }

  int size() {
    return workers.length + 1;
  }

  /** Runs {@code task.accept(i)} for {@code i < count}, index 0 on the calling thread. */
  void run(IntConsumer task, int count) {
    if (closed) {
      throw new IllegalStateException("worker pool is closed");
    }
    assert count >= 1 && count <= size();
    if (count == 1) {
      task.accept(0);
      return;
    }
    this.job = task;
    this.count = count;
    this.failure = null;
    this.caller = Thread.currentThread();
    pending.set(count - 1);
    generation++; // publishes job, count and caller to the workers
    for (int i = 0; i < count - 1; i++) {
      LockSupport.unpark(workers[i]);
    }
    Throwable own = null;
    try {
      task.accept(0);
    } catch (Throwable t) {
      own = t;
    }
    awaitWorkers();
    this.job = null;
    Throwable t = own != null ? own : failure;
    if (t != null) {
      if (own != null && failure != null && failure != own) {
        own.addSuppressed(failure);
      }
      sneakyThrow(t);
    }
  }

  private void awaitWorkers() {
    long start = System.nanoTime();
    boolean spinning = SPIN_NANOS > 0;
    for (int spin = 1; pending.get() != 0; spin++) {
      if (spinning && (spinning = spinOn(spin, start))) {
        Thread.onSpinWait();
      } else {
        LockSupport.park(this);
      }
    }
  }

  private void loop(int index) {
    int seen = 0;
    while (true) {
      long start = System.nanoTime();
      boolean spinning = SPIN_NANOS > 0;
      for (int spin = 1; generation == seen && !closed; spin++) {
        if (spinning && (spinning = spinOn(spin, start))) {
          Thread.onSpinWait();
        } else {
          LockSupport.park(this);
        }
      }
      if (closed) {
        return;
      }
      seen = generation;
      if (index < count) {
        try {
          job.accept(index);
        } catch (Throwable t) {
          failure = t;
        }
        if (pending.decrementAndGet() == 0) {
          LockSupport.unpark(caller);
        }
      }
    }
  }

  @Override
  public void close() {
    closed = true;
    for (Thread w : workers) {
      LockSupport.unpark(w);
    }
    for (Thread w : workers) {
      try {
        w.join(1000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }

  @SuppressWarnings("unchecked")
  private static <T extends Throwable> void sneakyThrow(Throwable t) throws T {
    throw (T) t;
  }
}
