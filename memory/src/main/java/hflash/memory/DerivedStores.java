package hflash.memory;

import java.lang.foreign.MemorySegment;

/**
 * What a cache derives from its stored keys and values and keeps current on every append and
 * truncate: the sample store (every {@link KvCache#SAMPLE_STRIDE}-th key, for the sampled mode) and
 * the key and value summaries of each tile and block (for the bounded and estimated modes).
 */
final class DerivedStores {

  private final KvCacheLayout layout;
  private final Placement at;
  final TileSummaries summaries; // per-tile key/value bounds, current with the lengths
  final ValueSummaries valueSummaries; // per-tile value balls, current with the lengths
  final boolean sampled; // keeps the sample store (false: a sequence whose pages hold none)
  private final boolean[] rebuild; // (layers) a sequence's open tile whose lo/hi a truncate left to the next append

  DerivedStores(Placement at, TileSummaries summaries, ValueSummaries valueSummaries, boolean sampled) {
    this.layout = at.layout;
    this.at = at;
    this.summaries = summaries;
    this.valueSummaries = valueSummaries;
    this.sampled = sampled;
    this.rebuild = new boolean[layout.layers()];
  }

  /**
   * After positions {@code [position0, position0 + count)} of the layer were written: lo/hi and the
   * sample for every new position; centroid, radius and vmax for every tile that became full.
   */
  void update(int layer, int position0, int count) {
    int tt = layout.tileTokens();
    int d = layout.headDim();
    MemorySegment keys = at.keys;
    MemorySegment samples = at.samples;
    if (rebuild[layer]) { // the page is this sequence's own now: the append made it writable
      rebuild[layer] = false;
      rebuildOpenTile(layer, position0);
    }
    for (int h = 0; h < layout.kvHeads(); h++) {
      for (int pos = position0; pos < position0 + count; pos++) {
        summaries.addKey(at, layer, h, pos);
        if (pos % KvCache.SAMPLE_STRIDE == 0 && layout.dtype().quantized() && sampled) {
          int p = pos / KvCache.SAMPLE_STRIDE / KvCache.SAMPLE_PHASES;
          QuantBlocks.copyKey(layout.dtype(), d, keys, at.tileOffset(layer, h, pos / tt), pos % tt, samples,
              at.sampleBlockOffset(layer, h, pos / KvCache.SAMPLE_STRIDE % KvCache.SAMPLE_PHASES,
                  p / TileLayout.KEY_BLOCK),
              p % TileLayout.KEY_BLOCK);
        } else if (pos % KvCache.SAMPLE_STRIDE == 0 && sampled) {
          int i = pos / KvCache.SAMPLE_STRIDE;
          int bytes = layout.dtype().bytes();
          for (int c = 0; c < d; c++) {
            MemorySegment.copy(keys, at.keyOffset(layer, h, pos, c), samples, at.sampleOffset(layer, h, i, c), bytes);
          }
        }
        if ((pos + 1) % tt == 0) {
          summaries.complete(at, layer, h, pos / tt);
          valueSummaries.complete(at, layer, h, pos / tt);
        }
      }
    }
  }

  /** A fork's pending rebuilds are its parent's (their pages hold the same summaries). */
  void copyPending(DerivedStores parent) {
    System.arraycopy(parent.rebuild, 0, rebuild, 0, rebuild.length);
  }

  /**
   * After a layer was shortened to {@code length}: lo/hi of its open tile over what is left. A
   * sequence whose open tile is in a page another sequence shares must not write it (the other
   * still holds the longer data): it marks the layer, and its next append, which copies the page
   * first, rebuilds them. Until then the open tile's lo/hi are too wide, never too narrow, and no
   * reader uses an open tile's summaries (the engine scores the open tile's keys).
   */
  void truncated(int layer, int length) {
    if (length % layout.tileTokens() == 0) {
      rebuild[layer] = false; // no open tile: the next append starts a fresh one
    } else if (at.pages != null && at.pages.isSharedAt(length)) {
      rebuild[layer] = true;
    } else {
      rebuild[layer] = false;
      rebuildOpenTile(layer, length);
    }
  }

  private void rebuildOpenTile(int layer, int length) {
    for (int h = 0; h < layout.kvHeads(); h++) {
      summaries.rebuildOpenTile(at, layer, h, length);
    }
  }
}
