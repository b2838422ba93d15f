package hflash.memory;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Owner/borrower rules: use after close throws from every thread; close is idempotent. */
class KvCacheLifetimeTest {

  private static final KvCacheLayout LAYOUT = new KvCacheLayout(2, 2, 4, 8, DType.BF16, 32);
  private static final String CLOSED = "KvCache is closed: KvCache[layers=2, kvHeads=2, headDim=4,"
      + " capacity=8, dtype=bf16, tileTokens=32]";

  /** Every state-touching call of the public API, by name. */
  private static Map<String, Executable> calls(KvCache cache) {
    Map<String, Executable> m = new LinkedHashMap<>();
    m.put("append", () -> cache.append(0, new float[8], new float[8]));
    m.put("appendBatch", () -> cache.append(0, 1, new float[8], new float[8]));
    m.put("length", () -> cache.length(0));
    m.put("truncate", () -> cache.truncate(0));
    m.put("truncateLayer", () -> cache.truncate(0, 0));
    m.put("keys", cache::keys);
    m.put("values", cache::values);
    m.put("keyTile", () -> cache.keyTile(0, 0, 0));
    m.put("valueTile", () -> cache.valueTile(0, 0, 0));
    m.put("key", () -> cache.key(0, 0, 0, 0));
    m.put("value", () -> cache.value(0, 0, 0, 0));
    m.put("bytesUsed", cache::bytesUsed);
    m.put("bytesReserved", cache::bytesReserved);
    m.put("ensureOpen", cache::ensureOpen);
    return m;
  }

  private static KvCache closedCache() {
    KvCache cache = KvCache.allocate(LAYOUT);
    cache.append(0, new float[8], new float[8]);
    cache.close();
    return cache;
  }

  @Test
  void everyAccessAfterCloseThrowsOnTheOwnerThread() {
    KvCache cache = closedCache();
    for (Map.Entry<String, Executable> call : calls(cache).entrySet()) {
      var e = assertThrows(IllegalStateException.class, call.getValue(), call.getKey());
      assertEquals(CLOSED, e.getMessage(), call.getKey());
    }
  }

  @Test
  void everyAccessAfterCloseThrowsOnAnotherThread() throws InterruptedException {
    KvCache cache = closedCache();
    for (Map.Entry<String, Executable> call : calls(cache).entrySet()) {
      Throwable t = runOnAnotherThread(call.getValue());
      assertInstanceOf(IllegalStateException.class, t, call.getKey());
      assertEquals(CLOSED, t.getMessage(), call.getKey());
    }
  }

  @Test
  void closeIsIdempotentAndLayoutSurvives() {
    KvCache cache = KvCache.allocate(LAYOUT);
    assertFalse(cache.isClosed());
    cache.close();
    assertTrue(cache.isClosed());
    assertDoesNotThrow(cache::close);
    assertTrue(cache.isClosed());
    assertEquals(LAYOUT, cache.layout());
    assertEquals(CLOSED.substring("KvCache is closed: ".length()), cache.toString());
  }

  @Test
  void closeFromAnotherThreadIsSeenByTheOwner() throws InterruptedException {
    KvCache cache = KvCache.allocate(LAYOUT);
    assertEquals(null, runOnAnotherThread(cache::close));
    assertTrue(cache.isClosed());
    assertThrows(IllegalStateException.class, () -> cache.length(0));
  }

  @Test
  void borrowedViewsAreValidUntilCloseAndThrowAfter() throws InterruptedException {
    KvCache cache = KvCache.allocate(LAYOUT);
    float[] k = {1, 2, 3, 4, 5, 6, 7, 8};
    cache.append(1, k, k);
    MemorySegment keys = cache.keys();
    MemorySegment values = cache.values();
    MemorySegment tile = cache.keyTile(1, 1, 0);
    // head 1 of the row is {5, 6, 7, 8}; inside a tile, channel c of key 0 is at
    // TileLayout.keyIndex(0, c, 4, BF16) = 32 * c elements (key 0 is lane 0 paired or not)
    long kTileOff = 2L * TileLayout.keyIndex(0, 1, 4, DType.BF16);
    long kTileOff2 = 2L * TileLayout.keyIndex(0, 2, 4, DType.BF16);
    assertEquals(64, kTileOff);
    // valid while open, on this thread and on another one (the arena is shared)
    assertEquals(5f, DType.BF16.read(keys, LAYOUT.keyOffset(1, 1, 0, 0)));
    assertEquals(8f, DType.BF16.read(values, LAYOUT.valueOffset(1, 1, 0, 3)));
    assertEquals(6f, DType.BF16.read(tile, kTileOff));
    assertEquals(null,
        runOnAnotherThread(() -> assertEquals(7f, DType.BF16.read(tile, kTileOff2))));
    cache.close();
    assertThrows(IllegalStateException.class, () -> keys.get(ValueLayout.JAVA_BYTE, 0));
    assertThrows(IllegalStateException.class, () -> DType.BF16.read(tile, 0));
    assertInstanceOf(IllegalStateException.class,
        runOnAnotherThread(() -> values.get(ValueLayout.JAVA_BYTE, 0)));
  }

  @Test
  void tryWithResourcesCloses() {
    KvCache escaped;
    try (var cache = KvCache.allocate(LAYOUT)) {
      escaped = cache;
      assertNotNull(cache.keys());
    }
    assertTrue(escaped.isClosed());
  }

  /** Runs {@code call} on a fresh thread; returns what it threw, or null. */
  private static Throwable runOnAnotherThread(Executable call) throws InterruptedException {
    AtomicReference<Throwable> thrown = new AtomicReference<>();
    Thread t = new Thread(() -> {
      try {
        call.execute();
      } catch (Throwable e) {
        thrown.set(e);
      }
    }, "kvcache-lifetime-test");
    t.start();
    t.join();
    return thrown.get();
  }
}
