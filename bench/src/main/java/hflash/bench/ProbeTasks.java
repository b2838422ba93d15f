package hflash.bench;

import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

/** The join shared by the stream and compute probes: one task per thread, each returning a sum. */
public final class ProbeTasks {

  private ProbeTasks() {}

  /**
   * Waits for every part and returns the total of their sums; {@code what} names the probe in the
   * exception when a part fails or the wait is interrupted.
   */
  public static double join(List<? extends Future<? extends Number>> parts, String what) {
    double sum = 0;
    try {
      for (Future<? extends Number> f : parts) {
        sum += f.get().doubleValue();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(what + " interrupted", e);
    } catch (ExecutionException e) {
      throw new IllegalStateException(what + " failed: " + e.getCause(), e.getCause());
    }
    return sum;
  }
}
