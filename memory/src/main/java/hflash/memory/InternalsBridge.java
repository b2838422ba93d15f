package hflash.memory;

import hflash.memory.internal.KvCacheInternals;
import java.lang.foreign.MemorySegment;

/**
 * The engine's way in to a cache's derived stores and plumbing: {@link KvCache} installs one of
 * these into {@link KvCacheInternals} when its class is initialised, so none of it is public API.
 */
final class InternalsBridge implements KvCacheInternals.Access {

  @Override
  public MemorySegment samples(KvCache cache) {
    return cache.samples();
  }

  @Override
  public MemorySegment summaries(KvCache cache) {
    return cache.summaries();
  }

  @Override
  public TileSummaries tileSummaries(KvCache cache) {
    return cache.tileSummaries();
  }

  @Override
  public ValueSummaries valueSummaries(KvCache cache) {
    return cache.valueSummaries();
  }

  @Override
  public long sampleBlockOffset(KvCache cache, int layer, int kvHead, int phase, int block) {
    return cache.placement().sampleBlockOffset(layer, kvHead, phase, block);
  }

  @Override
  public long tileOffset(KvCache cache, int layer, int kvHead, int tile) {
    return cache.placement().tileOffset(layer, kvHead, tile);
  }

  @Override
  public void pin(KvCache cache) {
    cache.pin();
  }

  @Override
  public void unpin(KvCache cache) {
    cache.unpin();
  }
}
