package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class WorkerPoolSpinTest {

  @Test
  void spinBudgetIsParsedAndChecked() {
    assertEquals(50_000L, WorkerPool.spinNanos(null));
    assertEquals(0L, WorkerPool.spinNanos("0"));
    assertEquals(200_000L, WorkerPool.spinNanos(" 200 "));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> WorkerPool.spinNanos("-1"));
    assertTrue(e.getMessage().contains("hflash.spinMicros"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> WorkerPool.spinNanos("fast"));
    assertTrue(e.getMessage().contains("fast"), e.getMessage());
  }

  @Test
  void jobsAfterTheWorkersParkedStillRunEveryIndex() throws Exception {
    try (WorkerPool pool = new WorkerPool(3, "spin-test")) {
      for (int round = 0; round < 5; round++) {
        AtomicIntegerArray hits = new AtomicIntegerArray(3);
        pool.run(hits::incrementAndGet, 3);
        for (int i = 0; i < 3; i++) {
          assertEquals(1, hits.get(i), "index " + i + " in round " + round);
        }
        Thread.sleep(2); // past the spin budget: the workers park and must be woken by the next job
      }
    }
  }
}
