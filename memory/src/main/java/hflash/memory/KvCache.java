package hflash.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import hflash.memory.internal.KvCacheInternals;

/**
 * Off-heap key/value cache for decode attention, laid out as described by {@link KvCacheLayout}.
 *
 * <p><b>Ownership.</b> Each cache owns exactly one {@link Arena#ofShared() shared arena} (shared
 * because worker threads read it); it is the only object that closes it. Every segment it hands out
 * ({@link #keys()}, {@link #values()}, {@link #keyTile}, {@link #valueTile}) is a borrowed,
 * read-only view: valid until {@link #close()}, never closed by the borrower, and any access
 * through it after close throws {@link IllegalStateException}. If construction fails after the
 * arena was created, the arena is closed before the exception propagates.
 *
 * <p><b>Lifecycle.</b> {@link #close()} is idempotent and terminal. After it, every method except
 * {@link #layout()}, {@link #isClosed()}, {@link #close()} and {@link #toString()} throws
 * {@code IllegalStateException("KvCache is closed: ...")}, from any thread. A reader that
 * {@link #pin pinned} the cache (every decode call does) keeps its memory until it unpins: a close
 * from another thread meanwhile marks the cache closed and frees the memory after the last pin.
 * Anything else racing with close fails with an {@code IllegalStateException}, never a JVM crash.
 *
 * <p><b>Sequences.</b> A cache made by {@link PagePool#newSequence()} keeps its tiles, samples and
 * tile summaries in the pool's pages through a page table (its tile offsets) and shares them with
 * its forks ({@link #fork()}, copy-on-write); everything else in this class reads the same. Its
 * append, truncate, fork and close take the sequence's lock (so appends to different layers of one
 * sequence run one after the other); different sequences are independent, also when they share
 * pages (docs/MEMORY.md section 8).
 *
 * <p><b>Threads.</b> Appends and truncates of one layer must not run concurrently with each other
 * or with a decode that reads that layer; the caller orders them (a decode loop does naturally).
 * Different layers have disjoint state, so appends to different layers may run in parallel.
 * {@link #truncate(int)} touches every layer. Readers in other threads see an append only after a
 * happens-before edge (e.g. handing work to a thread pool). {@link #close()} and {@link #isClosed()}
 * are thread-safe.
 *
 * <p><b>Validation.</b> {@link #append} checks everything (state, layer, shapes, room, every value)
 * before it writes a byte, so a rejected append leaves the cache unchanged.
 */
public final class KvCache implements AutoCloseable {

  static { // the engine reaches the derived stores through hflash.memory.internal, not this API
    KvCacheInternals.install(new InternalsBridge());
  }

  private final KvCacheLayout layout;
  private final Lifetime life; // closed flag, pins, the one release of the memory
  /** Every SAMPLE_STRIDE-th key is also kept in {@link #samples()}, for sampled-max estimates. */
  public static final int SAMPLE_STRIDE = 8;
  /**
   * The store keeps its samples in two phases: phase 0 holds keys {@code 0, 16, 32, ...} (sample
   * {@code i} even), phase 1 keys {@code 8, 24, 40, ...}. A stride of 16 (the sampled mode's
   * default) then reads phase 0 only: half the store's bytes.
   */
  public static final int SAMPLE_PHASES = 2;

  private final CacheData data; // lengths, tiles, appends, samples and summaries
  private final MemorySegment summariesView;
  private final PageTable pages; // a sequence of a PagePool: tiles and samples in pool pages; null: flat
  private final HadamardRotation rotation; // applied to K and V rows before they are stored; null: none

  /** A flat cache (pages == null) or a sequence over {@code pages}' pool. */
  private KvCache(KvCacheLayout layout, HadamardRotation rotation, PageTable pages) {
    this.layout = layout;
    this.rotation = rotation;
    this.pages = pages;
    Arena a = Arena.ofShared();
    try {
      Placement at = pages == null ? Placement.flat(layout, a) : Placement.paged(layout, pages);
      // a sequence's summaries live in the pool's pages with its tiles (shared by forks, copied on write)
      TileSummaries summaries = pages == null ? new TileSummaries(layout, a) : pages.pool.tileSummaries(pages);
      ValueSummaries values = pages == null ? new ValueSummaries(layout, a) : pages.pool.valueSummaries(pages);
      this.data = new CacheData(at, new Appender(at, rotation), new DerivedStores(at, summaries, values,
          pages == null || pages.pool.hasSamples()));
      this.summariesView = pages == null ? summaries.data().asReadOnly() : pages.pool.summariesView();
    } catch (RuntimeException | Error e) {
      a.close();
      throw e;
    }
    this.life = new Lifetime(this, a, pages == null ? null : this::releasePages);
  }

  /**
   * Allocates a zero-filled cache with every layer empty. The memory is reserved and touched up
   * front: {@link #bytesReserved()} bytes.
   *
   * @throws IllegalArgumentException if layout is null
   * @throws OutOfMemoryError if the native allocation fails (nothing is leaked)
   */
  public static KvCache allocate(KvCacheLayout layout) {
    return allocate(layout, null);
  }

  /**
   * As {@link #allocate(KvCacheLayout)}, with every K and V head row rotated by {@code rotation}
   * before it is stored (and quantized): the cache then holds {@code R k} and {@code R v}, and
   * {@link #key}, {@link #value}, the tiles, samples and summaries are all in the rotated basis. A
   * reader rotates q the same way and its output back: {@code DecodeAttention} does both when
   * {@link #rotation()} is set. Null means no rotation.
   *
   * @throws IllegalArgumentException if layout is null or the rotation's head dim differs from the layout's
   */
  public static KvCache allocate(KvCacheLayout layout, HadamardRotation rotation) {
    if (layout == null) {
      throw new IllegalArgumentException("layout must not be null");
    }
    if (rotation != null && rotation.headDim() != layout.headDim()) {
      throw new IllegalArgumentException("rotation head dim differs from headDim: " + rotation.headDim() + "!="
          + layout.headDim());
    }
    return new KvCache(layout, rotation, null);
  }

  /** A new, empty sequence over {@code table}'s pool (see {@link PagePool#newSequence()}). */
  static KvCache paged(PageTable table) {
    return opened(new KvCache(table.pool.layout(), table.pool.rotation(), table), null);
  }

  /** Registers a new sequence with its pool (with {@code parent}'s lengths if not null); closes it on failure. */
  private static KvCache opened(KvCache c, CacheData parent) {
    try {
      if (parent != null) {
        c.data.copyLengths(parent);
      }
      c.pages.pool.opened(c);
    } catch (RuntimeException | Error e) {
      c.close();
      throw e;
    }
    return c;
  }

  /**
   * A new sequence with this one's contents: it shares every page (one more reference each, no
   * bytes copied, the tile summaries included: they live in the pages); lengths and rotation are
   * the same. Either sequence's first write into a page they still share copies that page first
   * (copy-on-write, summaries too), so neither ever sees the other's later appends. Only a full pool
   * can make a later append fail.
   *
   * @throws IllegalStateException if closed, or this is not a sequence of a {@link PagePool}
   */
  public KvCache fork() {
    if (pages == null) {
      throw new IllegalStateException("fork needs a sequence of a PagePool, not a flat KvCache: " + this);
    }
    synchronized (pages) {
      ensureOpen();
      return opened(new KvCache(layout, rotation, pages.share()), data);
    }
  }

  /** The pool this sequence's pages come from, or null for a flat cache. */
  public PagePool pool() {
    return pages == null ? null : pages.pool;
  }

  /**
   * Pool pages this sequence holds, in position order ({@code pageIds()[i]} holds positions
   * {@code [i * pageTokens, (i + 1) * pageTokens)}); empty for a flat cache. A snapshot: two
   * sequences share a page exactly when both hold its id.
   */
  public int[] pageIds() {
    if (pages == null) {
      return new int[0];
    }
    synchronized (pages) {
      ensureOpen();
      return pages.ids();
    }
  }

  /** See {@code KvCacheInternals.pin}: a close meanwhile frees nothing until the last unpin. */
  void pin() {
    life.pin();
  }

  /** Ends a {@link #pin()}; the last one after a close frees the memory. */
  void unpin() {
    life.unpin();
  }

  /** The rotation applied to stored K and V rows, or null; available after close. */
  public HadamardRotation rotation() {
    return rotation;
  }

  /**
   * A one-layer, one-KV-head cache holding the stored positions of {@code (layer, kvHead)} of
   * {@code src}, byte for byte (same dtype, head dim, tile size; capacity = the layer's length), with
   * its summaries and samples rebuilt. Unlike re-appending the values read back, this keeps a block
   * dtype's blocks exactly: requantizing dequantized values may pick other scales.
   *
   * @throws IllegalStateException if src is closed
   * @throws IndexOutOfBoundsException if layer or kvHead is out of range
   * @throws IllegalArgumentException if the layer is empty
   */
  public static KvCache headCopy(KvCache src, int layer, int kvHead) {
    int n = src.length(layer);
    Checks.index("kvHead", kvHead, src.layout.kvHeads());
    Checks.positive("length", n);
    KvCacheLayout l = src.layout;
    KvCache dst = allocate(new KvCacheLayout(1, 1, l.headDim(), n, l.dtype(), l.tileTokens()), src.rotation);
    try {
      dst.data.copyHead(src.data, layer, kvHead, n);
      return dst;
    } catch (RuntimeException | Error e) {
      dst.close();
      throw e;
    }
  }

  /**
   * Bytes one position takes in one layer, everything a cache of this layout keeps per position:
   * {@code kvHeads * (2 rowBytes + rowBytes / SAMPLE_STRIDE + recordBytes * (1 + 1/16) / tileTokens)}
   * (K and V rows, the sample store, the tile and block summaries). Padding to whole tiles aside,
   * {@code layers * capacity} times this is what {@link #allocate} reserves.
   */
  public static double bytesPerPosition(KvCacheLayout layout) {
    double row = layout.rowBytes();
    double summaries = TileSummaries.recordBytes(layout.headDim(), layout.dtype())
        * (1 + 1.0 / TileSummaries.BLOCK_TILES) / layout.tileTokens();
    return layout.kvHeads() * (2 * row + row / SAMPLE_STRIDE + summaries);
  }

  /** The layout; available after close. */
  public KvCacheLayout layout() {
    return layout;
  }

  /** Positions stored for {@code layer}, in {@code [0, capacity]}. */
  public int length(int layer) {
    ensureOpen();
    return data.length(layer);
  }

  /**
   * Appends one position to {@code layer}: writes {@code k} and {@code v} at {@code length(layer)},
   * rounded to the dtype (quantized block by block for q8_0/q4_0, see {@link QuantBlocks}), then
   * increments the length. Allocation-free.
   *
   * @param k (kvHeads, headDim), row-major
   * @param v (kvHeads, headDim), row-major
   * @throws IllegalStateException if closed or the layer is full
   * @throws IndexOutOfBoundsException if layer is out of range
   * @throws IllegalArgumentException if k or v is null, has the wrong length, holds a non-finite
   *     value or one that overflows the dtype
   */
  public void append(int layer, float[] k, float[] v) {
    append(layer, 1, k, v, false);
  }

  /**
   * Appends {@code count} consecutive positions to {@code layer} (prefill), all or nothing: the
   * same rules as {@link #append(int, float[], float[])}, checked for every row before any write.
   *
   * @param count positions to append, &ge; 0 (0 is a validated no-op)
   * @param k (count, kvHeads, headDim), row-major
   * @param v (count, kvHeads, headDim), row-major
   */
  public void append(int layer, int count, float[] k, float[] v) {
    append(layer, count, k, v, true);
  }

  /** A flat cache's append, or a sequence's under its lock. */
  private void append(int layer, int count, float[] k, float[] v, boolean batched) {
    if (pages == null) {
      appendLocked(layer, count, k, v, batched);
      return;
    }
    synchronized (pages) {
      appendLocked(layer, count, k, v, batched);
    }
  }

  /** Validated, a sequence's pages made writable (all or nothing), then stored and the length published. */
  private void appendLocked(int layer, int count, float[] k, float[] v, boolean batched) {
    ensureOpen();
    data.appender.validate(data.lengths, layer, count, k, v, batched);
    if (pages != null) {
      pages.prepareWrite(data.lengths[layer], count, "append of " + count + " positions at " + data.lengths[layer]
          + " (layer=" + layer + ")");
    }
    try {
      data.store(layer, count, k, v);
    } catch (IllegalStateException e) {
      throw life.translate(e);
    }
  }

  /**
   * Shortens every layer to at most {@code n} positions ({@code length = min(length, n)}). Stored
   * bytes past the new length are left as they are and are never read.
   *
   * @throws IllegalArgumentException if n is negative
   */
  public void truncate(int n) {
    if (pages == null) {
      ensureOpen();
      data.truncate(-1, n);
      return;
    }
    synchronized (pages) { // then hands back the pages past the longest layer
      ensureOpen();
      data.truncate(-1, n);
    }
  }

  /** Shortens {@code layer} to at most {@code n} positions. */
  public void truncate(int layer, int n) {
    if (pages == null) {
      ensureOpen();
      data.truncate(layer, n);
      return;
    }
    synchronized (pages) {
      ensureOpen();
      data.truncate(layer, n);
    }
  }

  /**
   * The per-tile summaries (see {@link TileSummaries}); tiles below {@code length(layer) / T} are
   * complete. Borrowed: valid until {@link #close()}.
   */
  TileSummaries tileSummaries() {
    ensureOpen();
    return data.derived.summaries;
  }

  /**
   * The per-tile value balls (see {@link ValueSummaries}), valid for the same complete tiles as
   * {@link #tileSummaries()}. Borrowed: valid until {@link #close()}.
   */
  ValueSummaries valueSummaries() {
    ensureOpen();
    return data.derived.valueSummaries;
  }

  /**
   * Blocks of 32 samples per (layer, kvHead) and phase: {@code ceil(ceil(ceil(capacity / 8) / 2) / 32)}.
   */
  public static int samplePhaseBlocks(KvCacheLayout layout) {
    int rows = (layout.capacity() + SAMPLE_STRIDE - 1) / SAMPLE_STRIDE;
    int phaseRows = (rows + SAMPLE_PHASES - 1) / SAMPLE_PHASES;
    return (phaseRows + TileLayout.KEY_BLOCK - 1) / TileLayout.KEY_BLOCK;
  }

  /** Element {@code c} of sample {@code i} (key {@code 8 i}) as stored; a slow path for tests. */
  float sample(int layer, int kvHead, int i, int c) {
    ensureOpen();
    data.checkSampled(this);
    return data.sample(layer, kvHead, i, c);
  }

  /** Where this cache's tiles and samples are (for {@link InternalsBridge}); no state check. */
  Placement placement() {
    return data.at;
  }

  /** The sample store's read-only view, for {@link InternalsBridge}. */
  MemorySegment samples() {
    ensureOpen();
    data.checkSampled(this);
    return data.at.samplesView;
  }

  /** The summary records' read-only view, for {@link InternalsBridge}. */
  MemorySegment summaries() {
    ensureOpen();
    return summariesView;
  }

  /** The whole K segment, read-only and borrowed: valid until {@link #close()}. */
  public MemorySegment keys() {
    ensureOpen();
    return data.at.keysView;
  }

  /** The whole V segment, read-only and borrowed: valid until {@link #close()}. */
  public MemorySegment values() {
    ensureOpen();
    return data.at.valuesView;
  }

  /**
   * Tile {@code tile} of K for (layer, kvHead): a read-only, borrowed view of the whole tile,
   * {@code tileTokens * rowBytes()} bytes in {@link TileLayout} order, of which positions
   * {@code [tile*tileTokens, min(length, (tile+1)*tileTokens))} are stored.
   *
   * @throws IndexOutOfBoundsException if layer, kvHead or tile is out of range; tile's range is
   *     {@code [0, tileCount(length(layer)))}
   */
  public MemorySegment keyTile(int layer, int kvHead, int tile) {
    ensureOpen();
    return data.tile(data.at.keysView, layer, kvHead, tile);
  }

  /** The V twin of {@link #keyTile}. */
  public MemorySegment valueTile(int layer, int kvHead, int tile) {
    ensureOpen();
    return data.tile(data.at.valuesView, layer, kvHead, tile);
  }

  /**
   * Element {@code c} of the stored (rounded; for q8_0/q4_0 dequantized) key at {@code pos}; a slow
   * path for tests.
   */
  public float key(int layer, int kvHead, int pos, int c) {
    return element(true, layer, kvHead, pos, c);
  }

  /** Element {@code c} of the stored (rounded) value at {@code pos}; a slow path for tests. */
  public float value(int layer, int kvHead, int pos, int c) {
    return element(false, layer, kvHead, pos, c);
  }

  /** K plus V bytes of the stored positions over all layers. */
  public long bytesUsed() {
    ensureOpen();
    return data.bytesUsed();
  }

  /**
   * K plus V bytes allocated: {@code 2 * layout().segmentBytes()} (summaries not included); for a
   * sequence, the K and V bytes of the pages it holds (shared ones included).
   */
  public long bytesReserved() {
    ensureOpen();
    if (pages != null) {
      synchronized (pages) {
        return pages.kvBytes();
      }
    }
    return 2L * layout.segmentBytes();
  }

  /** True once {@link #close()} has been called. Thread-safe. */
  public boolean isClosed() {
    return life.isClosed();
  }

  /** Throws {@code IllegalStateException("KvCache is closed: ...")} if closed. */
  public void ensureOpen() {
    life.ensureOpen();
  }

  /**
   * Frees the memory (a sequence: releases its page references). Idempotent and
   * thread-safe. A decode that {@link #pin pinned} the cache keeps the memory until it ends.
   */
  @Override
  public void close() {
    if (pages != null) {
      synchronized (pages) { // not in the middle of an append or a fork of this sequence
        if (!life.markClosed()) {
          return;
        }
      }
    } else if (!life.markClosed()) {
      return;
    }
    life.releaseIfUnpinned();
  }

  /** A sequence's part of the release, before its arena closes: its page references, its place in the pool. */
  private void releasePages() {
    synchronized (pages) {
      pages.releaseAll();
    }
    pages.pool.closed(this);
  }

  @Override
  public String toString() {
    return "KvCache[layers=" + layout.layers() + ", kvHeads=" + layout.kvHeads() + ", headDim="
        + layout.headDim() + ", capacity=" + layout.capacity() + ", dtype=" + layout.dtype().id()
        + ", tileTokens=" + layout.tileTokens() + "]";
  }

  private float element(boolean key, int layer, int kvHead, int pos, int c) {
    ensureOpen();
    try {
      return data.element(key, layer, kvHead, pos, c);
    } catch (IllegalStateException e) {
      throw life.translate(e);
    }
  }
}
