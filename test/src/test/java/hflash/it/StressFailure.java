package hflash.it;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** One failure of a stress test, with everything needed to replay it: where (round, thread) and what. */
record StressFailure(String where, String what) {
  @Override
  public String toString() {
    return where + ": " + what;
  }

  /**
   * Waits for a round's workers in order, each within what is left of {@code deadlineSeconds}; a
   * worker that threw adds its failure, the first one past the deadline adds a failure with every
   * thread's stack (a deadlock shows there) and ends the wait.
   */
  static void awaitRound(List<Future<?>> futures, int round, long deadlineSeconds, List<StressFailure> failures)
      throws InterruptedException {
    for (int i = 0; i < futures.size(); i++) {
      try {
        futures.get(i).get(deadlineSeconds, TimeUnit.SECONDS);
      } catch (TimeoutException e) {
        failures.add(new StressFailure("round " + round + " worker " + i, "did not finish within "
            + deadlineSeconds + " s (deadlock?); threads:\n" + threadDump()));
        return;
      } catch (ExecutionException e) {
        failures.add(new StressFailure("round " + round + " worker " + i, "threw " + e.getCause()));
      }
    }
  }

  private static String threadDump() {
    StringBuilder b = new StringBuilder();
    for (ThreadInfo t : ManagementFactory.getThreadMXBean().dumpAllThreads(false, false)) {
      b.append(t);
    }
    return b.toString();
  }
}
