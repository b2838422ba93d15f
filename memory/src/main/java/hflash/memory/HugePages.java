package hflash.memory;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * Large off-heap buffers backed by transparent huge pages where the OS allows it.
 *
 * <p>Why: a decode step streams the whole KV cache. With 4 KiB pages the hardware prefetchers stop
 * at every page boundary and every 4 KiB costs a TLB walk; the C yardstick
 * ({@code ../shared/tools/readbw.c}) asks for huge pages with {@code madvise(MADV_HUGEPAGE)}, and
 * on Linux machines whose THP mode is {@code madvise} (the default of many distributions) a plain
 * {@link Arena#allocate} never gets them. So on Linux, when this module may call native code
 * ({@code --enable-native-access}), {@link #allocate} maps anonymous memory with {@code mmap}, 2 MiB
 * aligned, advises huge pages before the first touch, touches every page (as the zeroing of
 * {@code Arena.allocate} does) and ties the mapping's {@code munmap} to the arena. Anywhere else, or when any step fails, it falls back to {@code arena.allocate}: same
 * contents (zeros), same lifetime, only the page size differs. {@code -Dhflash.hugePages=false}
 * turns it off.
 */
public final class HugePages {

  /** Below this a buffer is allocated plainly: huge pages only pay for streams of many MiB. */
  public static final long MIN_BYTES = 8L << 20;

  private static final long HUGE = 2L << 20;
  private static final int PROT_READ_WRITE = 0x3;
  private static final int MAP_PRIVATE_ANONYMOUS = 0x22;
  private static final int MADV_HUGEPAGE = 14;

  private static final Optional<Native> NATIVE = Native.load();

  private HugePages() {}

  /** True when {@link #allocate} can ask for huge pages in this JVM. */
  public static boolean available() {
    return NATIVE.isPresent();
  }

  /**
   * A zeroed segment of {@code bytes} bytes, aligned to at least {@code alignment}, owned by
   * {@code arena}; backed by huge pages when available and {@code bytes >= MIN_BYTES}.
   */
  public static MemorySegment allocate(Arena arena, long bytes, long alignment) {
    if (bytes >= MIN_BYTES && alignment <= HUGE && NATIVE.isPresent()) {
      MemorySegment s = NATIVE.get().map(arena, bytes);
      if (s != null) {
        return s;
      }
    }
    return arena.allocate(bytes, alignment);
  }

  private record Native(MethodHandle mmap, MethodHandle munmap, MethodHandle madvise) {

    static Optional<Native> load() {
      try {
        if (!Boolean.parseBoolean(System.getProperty("hflash.hugePages", "true"))
            || !System.getProperty("os.name", "").startsWith("Linux")
            || !HugePages.class.getModule().isNativeAccessEnabled()) {
          return Optional.empty();
        }
        Linker linker = Linker.nativeLinker();
        var libc = linker.defaultLookup();
        MethodHandle mmap = linker.downcallHandle(libc.find("mmap").orElseThrow(),
            FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
        MethodHandle munmap = linker.downcallHandle(libc.find("munmap").orElseThrow(),
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
        MethodHandle madvise = linker.downcallHandle(libc.find("madvise").orElseThrow(),
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
        return Optional.of(new Native(mmap, munmap, madvise));
      } catch (RuntimeException | LinkageError e) {
        return Optional.empty();
      }
    }

    /** The mapping, or null when the OS refuses (then the caller allocates plainly). */
    MemorySegment map(Arena arena, long bytes) {
      try {
        long length = Math.addExact(bytes, HUGE); // room to align the start to 2 MiB
        MemorySegment base = (MemorySegment) mmap.invokeExact(MemorySegment.NULL, length,
            PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0L);
        if (base.address() == -1L || base.address() == 0L) {
          return null;
        }
        long start = (base.address() + HUGE - 1) & -HUGE;
        int ignored = (int) madvise.invokeExact(MemorySegment.ofAddress(start), bytes, MADV_HUGEPAGE);
        // advice refused (THP off): the mapping is still good memory with small pages
        long baseAddress = base.address();
        MemorySegment s = MemorySegment.ofAddress(start).reinterpret(bytes, arena, x -> unmap(baseAddress, length));
        // touch every page now, as Arena.allocate's zeroing does: memory shortage shows here, at
        // allocation, and no decode call pays page faults later
        s.fill((byte) 0);
        return s;
      } catch (Throwable e) {
        return null;
      }
    }

    private void unmap(long address, long length) {
      try {
        int ignored = (int) munmap.invokeExact(MemorySegment.ofAddress(address), length);
      } catch (Throwable e) {
        throw new IllegalStateException("munmap failed", e);
      }
    }
  }
}
