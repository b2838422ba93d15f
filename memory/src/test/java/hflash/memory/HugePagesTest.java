package hflash.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** Huge-page buffers behave like arena allocations: zeroed, aligned, owned by the arena. */
class HugePagesTest {

  @Test
  void largeBufferIsZeroedWritableAlignedAndFreedWithItsArena() {
    long bytes = HugePages.MIN_BYTES + 4096 + 12;
    MemorySegment s;
    try (Arena arena = Arena.ofShared()) {
      s = HugePages.allocate(arena, bytes, 64);
      assertEquals(bytes, s.byteSize());
      assertEquals(0, s.address() % 64);
      if (HugePages.available()) { // surefire runs with native access on Linux: the mmap path
        assertEquals(0, s.address() % (2 << 20), "huge-page buffers start on a 2 MiB boundary");
      }
      for (long at = 0; at < bytes; at += 1 << 16) {
        assertEquals(0, s.get(ValueLayout.JAVA_BYTE, at));
      }
      s.set(ValueLayout.JAVA_LONG_UNALIGNED, bytes - 8, 0x1234_5678_9abcL);
      assertEquals(0x1234_5678_9abcL, s.get(ValueLayout.JAVA_LONG_UNALIGNED, bytes - 8));
      assertThrows(IndexOutOfBoundsException.class, () -> s.get(ValueLayout.JAVA_BYTE, bytes));
    }
    assertThrows(IllegalStateException.class, () -> s.get(ValueLayout.JAVA_BYTE, 0));
  }

  @Test
  void smallBufferIsAPlainArenaAllocation() {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment s = HugePages.allocate(arena, 1000, 128);
      assertEquals(1000, s.byteSize());
      assertEquals(0, s.address() % 128);
      assertTrue(s.scope().isAlive());
    }
  }
}
