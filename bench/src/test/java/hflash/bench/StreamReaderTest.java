package hflash.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Every streaming reader of the bandwidth probe sums what a plain double loop sums. */
class StreamReaderTest {

  @Test
  void everyReaderSumsWhatTheScalarLoopSums() {
    List<StreamReader> readers = StreamProbe.streamReaders();
    assertFalse(readers.isEmpty());
    assertEquals("scalar", readers.get(readers.size() - 1).name());
    var f32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    try (Arena arena = Arena.ofConfined()) {
      for (int n : new int[] {0, 1, 63, 64, 65, 4099, (1 << 18) + 67}) {
        MemorySegment seg = arena.allocate(4L * n + 4, 64);
        double expected = 0;
        for (int i = 0; i <= n; i++) {
          float x = (i % 13) * 0.25f;
          seg.set(f32, 4L * i, x);
          expected += i >= 1 ? x : 0;
        }
        for (StreamReader r : readers) {
          // offset 4: unaligned starts must work; sums of multiples of 0.25 are exact in double
          assertEquals(expected, r.sum(seg, 4, n), 1e-9 * Math.max(1, expected), r.name() + " n=" + n);
        }
      }
    }
  }
}
