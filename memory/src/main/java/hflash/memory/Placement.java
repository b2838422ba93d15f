package hflash.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Where one cache's bytes are: the byte offset of every K/V tile and sample block, either by the
 * layout's formula (a flat {@link KvCache}, its own segments) or through a page table (a sequence
 * of a {@link PagePool}, the pool's segments), and the stored elements read back through them.
 * Nothing here checks state or ranges: {@link KvCache} validated the call.
 */
final class Placement {

  final KvCacheLayout layout;
  final PageTable pages; // null: flat
  final MemorySegment keys; // (layers, kvHeads, tiles) of K tiles in TileLayout order, LE dtype; or the pool's
  final MemorySegment values;
  final MemorySegment samples; // blocks of 32 samples in K-block order; or the pool's
  final MemorySegment keysView; // read-only views handed to borrowers
  final MemorySegment valuesView;
  final MemorySegment samplesView;
  private final int samplePhaseBlocks; // of a flat cache

  private Placement(KvCacheLayout layout, PageTable pages, MemorySegment keys, MemorySegment values,
      MemorySegment samples, MemorySegment keysView, MemorySegment valuesView, MemorySegment samplesView) {
    this.layout = layout;
    this.pages = pages;
    this.keys = keys;
    this.values = values;
    this.samples = samples;
    this.keysView = keysView;
    this.valuesView = valuesView;
    this.samplesView = samplesView;
    this.samplePhaseBlocks = KvCache.samplePhaseBlocks(layout);
  }

  /** A flat cache's own K, V and sample segments, allocated (zeroed) from {@code arena}. */
  static Placement flat(KvCacheLayout layout, Arena arena) {
    // 64-byte alignment: a tile row never straddles a cache line more than it must
    MemorySegment k = HugePages.allocate(arena, layout.segmentBytes(), 64);
    MemorySegment v = HugePages.allocate(arena, layout.segmentBytes(), 64);
    MemorySegment s = arena.allocate(Math.multiplyExact((long) layout.layers() * layout.kvHeads()
        * KvCache.SAMPLE_PHASES * KvCache.samplePhaseBlocks(layout),
        (long) TileLayout.KEY_BLOCK * layout.rowBytes()), 64);
    return new Placement(layout, null, k, v, s, k.asReadOnly(), v.asReadOnly(), s.asReadOnly());
  }

  /** A sequence's: the pool's segments and views, its tiles where its page table says. */
  static Placement paged(KvCacheLayout layout, PageTable pages) {
    PagePool p = pages.pool;
    return new Placement(layout, pages, p.keys(), p.values(), p.samples(), p.keysView(), p.valuesView(),
        p.samplesView());
  }

  /** Byte offset of tile {@code tile} of (layer, kvHead) in {@link #keys} and in {@link #values}. */
  long tileOffset(int layer, int kvHead, int tile) {
    return pages == null ? layout.tileOffset(layer, kvHead, tile) : pages.tileOffset(layer, kvHead, tile);
  }

  /** Byte offset in keys of channel c of position pos (16-bit and f32 dtypes). */
  long keyOffset(int layer, int kvHead, int pos, int c) {
    if (pages == null) {
      return layout.keyOffset(layer, kvHead, pos, c);
    }
    int tt = layout.tileTokens();
    return tileOffset(layer, kvHead, pos / tt)
        + (long) TileLayout.keyIndex(pos % tt, c, layout.headDim(), layout.dtype()) * layout.dtype().bytes();
  }

  /** Byte offset in {@link #samples} of block {@code b} of a phase (KvCacheInternals.sampleBlockOffset says how). */
  long sampleBlockOffset(int layer, int kvHead, int phase, int b) {
    if (pages != null) {
      return pages.sampleBlockOffset(layer, kvHead, phase, b);
    }
    return ((((long) layer * layout.kvHeads() + kvHead) * KvCache.SAMPLE_PHASES + phase) * samplePhaseBlocks + b)
        * TileLayout.KEY_BLOCK * layout.rowBytes();
  }

  /** Byte offset in {@link #samples} of element {@code c} of store sample {@code i} (key {@code 8 i}). */
  long sampleOffset(int layer, int kvHead, int i, int c) {
    int p = i / KvCache.SAMPLE_PHASES;
    return sampleBlockOffset(layer, kvHead, i % KvCache.SAMPLE_PHASES, p / TileLayout.KEY_BLOCK)
        + (long) TileLayout.keyIndex(p % TileLayout.KEY_BLOCK, c, layout.headDim(), layout.dtype())
        * layout.dtype().bytes();
  }

  /** Channel c of the stored key at pos, wherever its tile is; no length check (summaries, tests). */
  float storedKey(int layer, int kvHead, int pos, int c) {
    if (pages == null) {
      return layout.readKey(keys, layer, kvHead, pos, c);
    }
    DType t = layout.dtype();
    int tt = layout.tileTokens();
    long tile = tileOffset(layer, kvHead, pos / tt);
    if (t.quantized()) {
      return QuantBlocks.key(t, layout.headDim(), keys, tile, pos % tt, c);
    }
    return t.read(keys, tile + (long) TileLayout.keyIndex(pos % tt, c, layout.headDim(), t) * t.bytes());
  }

  /** The V twin of {@link #storedKey}. */
  float storedValue(int layer, int kvHead, int pos, int c) {
    if (pages == null) {
      return layout.readValue(values, layer, kvHead, pos, c);
    }
    DType t = layout.dtype();
    int tt = layout.tileTokens();
    long tile = tileOffset(layer, kvHead, pos / tt);
    if (t.quantized()) {
      return QuantBlocks.value(t, layout.headDim(), tt, values, tile, pos % tt, c);
    }
    return t.read(values, tile + (long) TileLayout.valueIndex(pos % tt, c, layout.headDim(), tt, t) * t.bytes());
  }

  /** Copies the whole stored tiles of (layer, kvHead) up to position n into a one-head flat cache's segments. */
  void copyHead(int layer, int kvHead, int n, Placement dst) {
    long tileBytes = layout.tileTokens() * layout.rowBytes(); // whole tiles, wherever they are kept
    for (int t = 0; t < layout.tileCount(n); t++) {
      MemorySegment.copy(keys, tileOffset(layer, kvHead, t), dst.keys, t * tileBytes, tileBytes);
      MemorySegment.copy(values, tileOffset(layer, kvHead, t), dst.values, t * tileBytes, tileBytes);
    }
  }

  /** Element {@code c} of store sample {@code i} (key {@code 8 i}) as stored. */
  float sample(int layer, int kvHead, int i, int c) {
    if (layout.dtype().quantized()) {
      int p = i / KvCache.SAMPLE_PHASES;
      return QuantBlocks.key(layout.dtype(), layout.headDim(), samples,
          sampleBlockOffset(layer, kvHead, i % KvCache.SAMPLE_PHASES, p / TileLayout.KEY_BLOCK),
          p % TileLayout.KEY_BLOCK, c);
    }
    return layout.dtype().read(samples, sampleOffset(layer, kvHead, i, c));
  }
}
