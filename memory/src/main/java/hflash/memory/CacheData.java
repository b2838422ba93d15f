package hflash.memory;

import java.lang.foreign.MemorySegment;

/**
 * What a {@link KvCache} holds, apart from its lifecycle: the lengths, where the tiles are
 * ({@link Placement}), the append path ({@link Appender}) and the derived stores
 * ({@link DerivedStores}), with the range checks of every read. {@code KvCache} checks the state,
 * takes a sequence's lock and translates a closed arena's errors; this class does the rest.
 */
final class CacheData {

  final KvCacheLayout layout;
  final int[] lengths; // (layers): positions stored per layer, each in [0, capacity]
  final Placement at; // where each tile and sample block is (flat, or through the page table)
  final Appender appender; // checks and writes rows
  final DerivedStores derived; // samples and summaries, current with the lengths

  CacheData(Placement at, Appender appender, DerivedStores derived) {
    this.layout = at.layout;
    this.lengths = new int[layout.layers()];
    this.at = at;
    this.appender = appender;
    this.derived = derived;
  }

  int length(int layer) {
    Checks.index("layer", layer, layout.layers());
    return lengths[layer];
  }

  /** Writes validated rows at the layer's current length, then publishes the new length. */
  void store(int layer, int count, float[] k, float[] v) {
    int position0 = lengths[layer];
    appender.write(layer, position0, count, k, v);
    derived.update(layer, position0, count);
    lengths[layer] = position0 + count;
  }

  /** Every layer (layer -1) or one to at most n positions; a sequence then hands back its unused pages. */
  void truncate(int layer, int n) {
    if (layer >= 0) {
      Checks.index("layer", layer, layout.layers());
    }
    if (n < 0) {
      throw new IllegalArgumentException("truncate length must be >= 0: " + n);
    }
    for (int l = Math.max(0, layer); l < (layer >= 0 ? layer + 1 : lengths.length); l++) {
      if (n < lengths[l]) {
        lengths[l] = n;
        derived.truncated(l, n);
      }
    }
    if (at.pages != null) {
      at.pages.shrinkTo(lengths);
    }
  }

  /** The whole tile of (layer, kvHead) as a slice of {@code view}, after the range checks. */
  MemorySegment tile(MemorySegment view, int layer, int kvHead, int tile) {
    Checks.index("layer", layer, layout.layers());
    Checks.index("kvHead", kvHead, layout.kvHeads());
    int length = lengths[layer];
    int tiles = layout.tileCount(length);
    if (tile < 0 || tile >= tiles) {
      throw new IndexOutOfBoundsException("tile out of range [0, " + tiles + "): " + tile
          + " (layer=" + layer + ", length=" + length + ")");
    }
    return view.asSlice(at.tileOffset(layer, kvHead, tile), layout.tileTokens() * layout.rowBytes());
  }

  /** Channel c of the stored key (or value) at pos, after the range checks. */
  float element(boolean key, int layer, int kvHead, int pos, int c) {
    Checks.index("layer", layer, layout.layers());
    Checks.index("kvHead", kvHead, layout.kvHeads());
    int length = lengths[layer];
    if (pos < 0 || pos >= length) {
      throw new IndexOutOfBoundsException(
          "position out of range [0, " + length + "): " + pos + " (layer=" + layer + ")");
    }
    Checks.index("channel", c, layout.headDim());
    return key ? at.storedKey(layer, kvHead, pos, c) : at.storedValue(layer, kvHead, pos, c);
  }

  /** Element c of sample i (key {@code 8 i}), after the range checks. */
  float sample(int layer, int kvHead, int i, int c) {
    Checks.index("kvHead", kvHead, layout.kvHeads());
    Checks.index("sample", i, (length(layer) + KvCache.SAMPLE_STRIDE - 1) / KvCache.SAMPLE_STRIDE);
    Checks.index("channel", c, layout.headDim());
    return at.sample(layer, kvHead, i, c);
  }

  /** A fork's start: the parent's lengths and its pending rebuilds of open tiles. */
  void copyLengths(CacheData parent) {
    System.arraycopy(parent.lengths, 0, lengths, 0, lengths.length);
    derived.copyPending(parent.derived);
  }

  /** Throws if the pages keep no key samples (the sampled mode needs them). */
  void checkSampled(KvCache owner) {
    if (!derived.sampled) {
      throw new UnsupportedOperationException("no key samples: the pool's pages of " + at.pages.pool.pageTokens()
          + " positions are not a multiple of " + PagePool.SAMPLE_SPAN + " (the sampled mode needs them): " + owner);
    }
  }

  /** Fills this one-head flat cache with the stored tiles of (layer, kvHead) of src, then its derived stores. */
  void copyHead(CacheData src, int layer, int kvHead, int n) {
    src.at.copyHead(layer, kvHead, n, at);
    derived.update(0, 0, n);
    lengths[0] = n;
  }

  /** K plus V bytes of the stored positions over all layers. */
  long bytesUsed() {
    long positions = 0;
    for (int len : lengths) {
      positions += len;
    }
    return positions * 2L * layout.kvHeads() * layout.rowBytes();
  }
}
