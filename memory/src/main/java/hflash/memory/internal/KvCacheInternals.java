package hflash.memory.internal;

import hflash.memory.KvCache;
import hflash.memory.TileSummaries;
import hflash.memory.ValueSummaries;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * The engine's access to a {@link KvCache}'s derived stores (key samples, tile summaries, value
 * balls) and to its plumbing (tile offsets through the page table, the pins a decode call holds),
 * none of which is part of the cache's public API. This package is exported to
 * {@code hflash.engine} only. Every view is borrowed: valid until the cache is closed.
 */
public final class KvCacheInternals {

  /** Implemented by {@link KvCache}, which installs it when its class is initialised. */
  public interface Access {
    MemorySegment samples(KvCache cache);

    MemorySegment summaries(KvCache cache);

    TileSummaries tileSummaries(KvCache cache);

    ValueSummaries valueSummaries(KvCache cache);

    long sampleBlockOffset(KvCache cache, int layer, int kvHead, int phase, int block);

    long tileOffset(KvCache cache, int layer, int kvHead, int tile);

    void pin(KvCache cache);

    void unpin(KvCache cache);
  }

  private static volatile Access access;

  private KvCacheInternals() {}

  /** Called once, by {@link KvCache}'s static initialiser. */
  public static void install(Access a) {
    if (access != null) {
      throw new IllegalStateException("KvCache access is already installed");
    }
    access = Objects.requireNonNull(a, "access");
  }

  private static Access access() {
    Access a = access;
    if (a == null) { // a cache exists, so its class was initialised; guard against misuse anyway
      throw new IllegalStateException("KvCache access is not installed");
    }
    return a;
  }

  /**
   * The sample store: key {@code i * SAMPLE_STRIDE} of every (layer, kvHead), in the cache's dtype,
   * in two phases of blocks of 32 laid out like K blocks ({@link #sampleBlockOffset}). Read-only.
   */
  public static MemorySegment samples(KvCache cache) {
    return access().samples(cache);
  }

  /** Read-only view of the key-summary records, for the kernels. */
  public static MemorySegment summaries(KvCache cache) {
    return access().summaries(cache);
  }

  /** The per-tile key summaries; tiles below {@code length(layer) / T} are complete. */
  public static TileSummaries tileSummaries(KvCache cache) {
    return access().tileSummaries(cache);
  }

  /** The per-tile value balls, valid for the same complete tiles as the key summaries. */
  public static ValueSummaries valueSummaries(KvCache cache) {
    return access().valueSummaries(cache);
  }

  /**
   * Byte offset in {@link #samples} of block {@code block} of a phase: phase samples
   * {@code 32b .. 32b+31}, where phase sample {@code p} is store sample {@code i = 2p + phase}, i.e.
   * key {@code 8 i}; laid out like a 32-key K block (column-major), so the score kernel reads it.
   */
  public static long sampleBlockOffset(KvCache cache, int layer, int kvHead, int phase, int block) {
    return access().sampleBlockOffset(cache, layer, kvHead, phase, block);
  }

  /**
   * Byte offset of tile {@code tile} of (layer, kvHead) in the cache's keys and values:
   * {@code KvCacheLayout.tileOffset} for a flat cache, the page table's page for a sequence. For the
   * kernels: no state or range check (the engine validated the call), the tile must be stored.
   */
  public static long tileOffset(KvCache cache, int layer, int kvHead, int tile) {
    return access().tileOffset(cache, layer, kvHead, tile);
  }

  /**
   * Marks a reader (a decode call) that must not see the cache's memory freed: until the matching
   * {@link #unpin}, a {@code close()} from another thread marks the cache closed but hands its
   * memory (its arena, its pages) back only when the last pin ends. Thread-safe.
   *
   * @throws IllegalStateException if already closed
   */
  public static void pin(KvCache cache) {
    access().pin(cache);
  }

  /** Ends a {@link #pin}; the last one after a close frees the memory. */
  public static void unpin(KvCache cache) {
    access().unpin(cache);
  }
}
