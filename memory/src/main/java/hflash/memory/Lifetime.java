package hflash.memory;

import java.lang.foreign.Arena;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A cache's close-and-pin protocol: {@link #markClosed()} flips the closed flag once; the memory
 * (the owner's pages, then its arena) is handed back once, when the flag is set and no reader
 * {@link #pin() pinned} it any more, from whichever thread ends last. Thread-safe.
 */
final class Lifetime {

  private final Object owner; // named in the closed message
  private final Arena arena;
  private final Runnable beforeArenaClose; // hands back what lives outside the arena (a sequence's pages)
  private final AtomicBoolean closed = new AtomicBoolean();
  private final AtomicInteger pins = new AtomicInteger(); // decodes reading now
  private final AtomicBoolean released = new AtomicBoolean(); // memory handed back (once)

  Lifetime(Object owner, Arena arena, Runnable beforeArenaClose) {
    this.owner = owner;
    this.arena = arena;
    this.beforeArenaClose = beforeArenaClose;
  }

  boolean isClosed() {
    return closed.get();
  }

  void ensureOpen() {
    if (closed.get()) {
      throw closedException(null);
    }
  }

  /** Sets the closed flag; false if it was already set. */
  boolean markClosed() {
    return closed.compareAndSet(false, true);
  }

  /** After {@link #markClosed()}: frees the memory now unless a reader still holds a pin. */
  void releaseIfUnpinned() {
    if (pins.get() == 0) {
      release();
    }
  }

  /** See {@code KvCacheInternals.pin}. */
  void pin() {
    pins.incrementAndGet();
    if (closed.get()) {
      unpin();
      throw closedException(null);
    }
  }

  /** Ends a {@link #pin()}; the last one after a close frees the memory. */
  void unpin() {
    if (pins.decrementAndGet() == 0 && closed.get()) {
      release();
    }
  }

  private void release() {
    if (released.compareAndSet(false, true)) {
      if (beforeArenaClose != null) {
        beforeArenaClose.run();
      }
      arena.close();
    }
  }

  /** FFM's "Already closed" becomes ours only if our arena really is closed; other bugs pass. */
  IllegalStateException translate(IllegalStateException e) {
    return arena.scope().isAlive() ? e : closedException(e);
  }

  IllegalStateException closedException(Throwable cause) {
    return new IllegalStateException("KvCache is closed: " + owner, cause);
  }
}
