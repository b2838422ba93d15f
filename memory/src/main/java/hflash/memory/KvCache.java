package hflash.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import hflash.memory.internal.KvCacheInternals;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

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
 * <p><b>Sequences.</b> A cache made by {@link PagePool#newSequence()} keeps its tiles and samples in
 * the pool's pages through a page table (its tile offsets), shares them with its forks
 * ({@link #fork()}, copy-on-write) and holds only its summaries itself; everything else in this
 * class reads the same. Its append, truncate, fork and close take the sequence's lock (so appends
 * to different layers of one sequence run one after the other); different sequences are
 * independent, also when they share pages (docs/MEMORY.md section 8).
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
    KvCacheInternals.install(new KvCacheInternals.Access() {
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
        return cache.sampleBlockOffset(layer, kvHead, phase, block);
      }

      @Override
      public long tileOffset(KvCache cache, int layer, int kvHead, int tile) {
        return cache.tileOffset(layer, kvHead, tile);
      }

      @Override
      public void pin(KvCache cache) {
        cache.pin();
      }

      @Override
      public void unpin(KvCache cache) {
        cache.unpin();
      }
    });
  }

  private final KvCacheLayout layout;
  private final Arena arena;
  private final MemorySegment keys; // (layers, kvHeads, tiles) of K tiles in TileLayout order, LE dtype
  private final MemorySegment values; // (layers, kvHeads, tiles) of V tiles in TileLayout order, LE dtype
  private final MemorySegment keysView; // read-only view of keys handed to borrowers
  private final MemorySegment valuesView; // read-only view of values handed to borrowers
  private final int[] lengths; // (layers): positions stored per layer, each in [0, capacity]
  /** Every SAMPLE_STRIDE-th key is also kept in {@link #samples()}, for sampled-max estimates. */
  public static final int SAMPLE_STRIDE = 8;
  /**
   * The store keeps its samples in two phases: phase 0 holds keys {@code 0, 16, 32, ...} (sample
   * {@code i} even), phase 1 keys {@code 8, 24, 40, ...}. A stride of 16 (the sampled mode's
   * default) then reads phase 0 only: half the store's bytes.
   */
  public static final int SAMPLE_PHASES = 2;

  private final TileSummaries summaries; // per-tile key/value bounds, current with lengths
  private final ValueSummaries valueSummaries; // per-tile value balls, current with lengths
  private final MemorySegment samples; // (layers, kvHeads, phases, phaseBlocks) blocks of 32 samples in K-block order, dtype
  private final MemorySegment samplesView;
  private final MemorySegment summariesView;
  private final AtomicBoolean closed = new AtomicBoolean();
  private final PageTable pages; // a sequence of a PagePool: tiles and samples in pool pages; null: flat
  private final AtomicInteger pins = new AtomicInteger(); // decodes reading now (see pin())
  private final boolean sampled; // keeps the sample store (false: a sequence whose pages hold none)
  private final AtomicBoolean released = new AtomicBoolean(); // memory handed back (once)
  private final HadamardRotation rotation; // applied to K and V rows before they are stored; null: none
  private final float[][] rotated; // (layers, kvHeads * headDim): one rotated row per layer (appends of
  // different layers may run in parallel), null without a rotation

  private KvCache(KvCacheLayout layout, HadamardRotation rotation) {
    this(layout, rotation, null);
  }

  /** A flat cache (pages == null) or a sequence over {@code pages}' pool. */
  private KvCache(KvCacheLayout layout, HadamardRotation rotation, PageTable pages) {
    this.layout = layout;
    this.rotation = rotation;
    this.pages = pages;
    this.sampled = pages == null || pages.pool.hasSamples();
    this.rotated = rotation == null ? null : new float[layout.layers()][layout.kvHeads() * layout.headDim()];
    this.lengths = new int[layout.layers()];
    Arena a = Arena.ofShared();
    try {
      if (pages == null) {
        // 64-byte alignment: a tile row never straddles a cache line more than it must
        MemorySegment k = HugePages.allocate(a, layout.segmentBytes(), 64);
        MemorySegment v = HugePages.allocate(a, layout.segmentBytes(), 64);
        this.keys = k;
        this.values = v;
        this.keysView = k.asReadOnly();
        this.valuesView = v.asReadOnly();
        this.samples = a.allocate(Math.multiplyExact((long) layout.layers() * layout.kvHeads()
            * SAMPLE_PHASES * samplePhaseBlocks(layout), (long) TileLayout.KEY_BLOCK * layout.rowBytes()), 64);
        this.samplesView = samples.asReadOnly();
      } else { // the pool's segments: this sequence's tiles and samples are where its page table says
        PagePool pool = pages.pool;
        this.keys = pool.keys();
        this.values = pool.values();
        this.keysView = pool.keysView();
        this.valuesView = pool.valuesView();
        this.samples = pool.samples();
        this.samplesView = pool.samplesView();
      }
      this.summaries = new TileSummaries(layout, a);
      this.valueSummaries = new ValueSummaries(layout, a);
      this.summariesView = summaries.data().asReadOnly();
    } catch (RuntimeException | Error e) {
      a.close();
      throw e;
    }
    this.arena = a;
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
    return new KvCache(layout, rotation);
  }

  /** A new, empty sequence over {@code table}'s pool (see {@link PagePool#newSequence()}). */
  static KvCache paged(PageTable table) {
    PagePool pool = table.pool;
    KvCache c = new KvCache(pool.layout(), pool.rotation(), table);
    try {
      pool.opened(c, c.summaryBytes());
    } catch (RuntimeException e) {
      c.close();
      throw e;
    }
    return c;
  }

  /** Bytes of this cache's own summary records (for a sequence: all it keeps outside the pool's pages). */
  private long summaryBytes() {
    return summaries.bytesReserved() + valueSummaries.bytesReserved();
  }

  /**
   * A new sequence with this one's contents: it shares every page (one more reference each, no
   * bytes copied) and gets a copy of the tile summaries; lengths and rotation are the same. Either
   * sequence's first write into a page they still share copies that page first (copy-on-write),
   * so neither ever sees the other's later appends. Only a full pool can make a later append fail.
   *
   * @throws IllegalStateException if closed, or this is not a sequence of a {@link PagePool}
   */
  public KvCache fork() {
    if (pages == null) {
      throw new IllegalStateException("fork needs a sequence of a PagePool, not a flat KvCache: " + this);
    }
    synchronized (pages) {
      ensureOpen();
      KvCache child = new KvCache(layout, rotation, pages.share());
      try {
        MemorySegment.copy(summaries.data(), 0, child.summaries.data(), 0, summaries.bytesReserved());
        valueSummaries.copyTo(child.valueSummaries);
        System.arraycopy(lengths, 0, child.lengths, 0, lengths.length);
        pages.pool.opened(child, child.summaryBytes());
      } catch (RuntimeException | Error e) {
        child.close();
        throw e;
      }
      return child;
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
      int[] ids = new int[pages.count()];
      for (int i = 0; i < ids.length; i++) {
        ids[i] = pages.page(i);
      }
      return ids;
    }
  }

  /**
   * Byte offset of tile {@code tile} of (layer, kvHead) in {@link #keys()} and in {@link #values()}:
   * {@link KvCacheLayout#tileOffset} for a flat cache, the page table's page for a sequence. For the
   * kernels: no state or range check (the engine validated the call), the tile must be stored.
   */
  long tileOffset(int layer, int kvHead, int tile) {
    return pages == null ? layout.tileOffset(layer, kvHead, tile) : pages.tileOffset(layer, kvHead, tile);
  }

  /**
   * Marks a reader (a decode call) that must not see this cache's memory freed: until the matching
   * {@link #unpin()}, a {@link #close()} from another thread marks the cache closed but hands its
   * memory (its arena, its pages) back only when the last pin ends. Thread-safe.
   *
   * @throws IllegalStateException if already closed
   */
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
      long tileBytes = l.tileTokens() * l.rowBytes(); // whole tiles, wherever src keeps them
      for (int t = 0; t < l.tileCount(n); t++) {
        MemorySegment.copy(src.keys, src.tileOffset(layer, kvHead, t), dst.keys, t * tileBytes, tileBytes);
        MemorySegment.copy(src.values, src.tileOffset(layer, kvHead, t), dst.values, t * tileBytes, tileBytes);
      }
      dst.updateSummaries(0, 0, n);
      dst.lengths[0] = n;
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
    Checks.index("layer", layer, layout.layers());
    return lengths[layer];
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
    if (pages != null) {
      append(layer, 1, k, v, false);
      return;
    }
    validate(layer, 1, k, v, false);
    store(layer, 1, k, v);
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
    if (pages != null) {
      append(layer, count, k, v, true);
      return;
    }
    validate(layer, count, k, v, true);
    store(layer, count, k, v);
  }

  /** A sequence's append: validated, then its pages made writable (all or nothing), then stored. */
  private void append(int layer, int count, float[] k, float[] v, boolean batched) {
    synchronized (pages) {
      validate(layer, count, k, v, batched);
      pages.prepareWrite(lengths[layer], count, "append of " + count + " positions at " + lengths[layer]
          + " (layer=" + layer + ")");
      store(layer, count, k, v);
    }
  }

  /**
   * Shortens every layer to at most {@code n} positions ({@code length = min(length, n)}). Stored
   * bytes past the new length are left as they are and are never read.
   *
   * @throws IllegalArgumentException if n is negative
   */
  public void truncate(int n) {
    if (pages != null) {
      synchronized (pages) {
        ensureOpen();
        checkTruncateLength(n);
        for (int layer = 0; layer < lengths.length; layer++) {
          truncateLayer(layer, n);
        }
        releaseUnused();
      }
      return;
    }
    ensureOpen();
    checkTruncateLength(n);
    for (int layer = 0; layer < lengths.length; layer++) {
      truncateLayer(layer, n);
    }
  }

  /** A sequence hands back the pages past its longest layer. */
  private void releaseUnused() {
    int longest = 0;
    for (int len : lengths) {
      longest = Math.max(longest, len);
    }
    int pt = pages.pool.pageTokens();
    pages.shrink((longest + pt - 1) / pt);
  }

  private void truncateLayer(int layer, int n) {
    if (n < lengths[layer]) {
      lengths[layer] = n;
      for (int h = 0; h < layout.kvHeads(); h++) {
        summaries.rebuildOpenTile(this, layer, h, n);
      }
    }
  }

  /** Shortens {@code layer} to at most {@code n} positions. */
  public void truncate(int layer, int n) {
    if (pages != null) {
      synchronized (pages) {
        ensureOpen();
        Checks.index("layer", layer, layout.layers());
        checkTruncateLength(n);
        truncateLayer(layer, n);
        releaseUnused();
      }
      return;
    }
    ensureOpen();
    Checks.index("layer", layer, layout.layers());
    checkTruncateLength(n);
    truncateLayer(layer, n);
  }

  /**
   * The per-tile summaries (see {@link TileSummaries}); tiles below {@code length(layer) / T} are
   * complete. Borrowed: valid until {@link #close()}.
   */
  TileSummaries tileSummaries() {
    ensureOpen();
    return summaries;
  }

  /**
   * The per-tile value balls (see {@link ValueSummaries}), valid for the same complete tiles as
   * {@link #tileSummaries()}. Borrowed: valid until {@link #close()}.
   */
  ValueSummaries valueSummaries() {
    ensureOpen();
    return valueSummaries;
  }

  /**
   * Blocks of 32 samples per (layer, kvHead) and phase: {@code ceil(ceil(ceil(capacity / 8) / 2) / 32)}.
   */
  public static int samplePhaseBlocks(KvCacheLayout layout) {
    int rows = (layout.capacity() + SAMPLE_STRIDE - 1) / SAMPLE_STRIDE;
    int phaseRows = (rows + SAMPLE_PHASES - 1) / SAMPLE_PHASES;
    return (phaseRows + TileLayout.KEY_BLOCK - 1) / TileLayout.KEY_BLOCK;
  }

  /**
   * Byte offset in {@link #samples()} of block {@code b} of a phase: phase samples {@code 32b ..
   * 32b+31}, where phase sample {@code p} is store sample {@code i = 2p + phase}, i.e. key
   * {@code 8 i}; laid out like a 32-key K block (column-major), so the score kernel reads it
   * directly.
   */
  long sampleBlockOffset(int layer, int kvHead, int phase, int b) {
    if (pages != null) {
      return pages.sampleBlockOffset(layer, kvHead, phase, b);
    }
    return ((((long) layer * layout.kvHeads() + kvHead) * SAMPLE_PHASES + phase) * samplePhaseBlocks(layout) + b)
        * TileLayout.KEY_BLOCK * layout.rowBytes();
  }

  /** Byte offset in {@link #samples()} of element {@code c} of store sample {@code i} (key {@code 8 i}). */
  private long sampleOffset(int layer, int kvHead, int i, int c) {
    int p = i / SAMPLE_PHASES;
    return sampleBlockOffset(layer, kvHead, i % SAMPLE_PHASES, p / TileLayout.KEY_BLOCK)
        + (long) TileLayout.keyIndex(p % TileLayout.KEY_BLOCK, c, layout.headDim(), layout.dtype())
        * layout.dtype().bytes();
  }

  /** Element {@code c} of sample {@code i} (key {@code 8 i}) as stored; a slow path for tests. */
  float sample(int layer, int kvHead, int i, int c) {
    ensureOpen();
    checkSampled();
    Checks.index("kvHead", kvHead, layout.kvHeads());
    Checks.index("sample", i, (length(layer) + SAMPLE_STRIDE - 1) / SAMPLE_STRIDE);
    Checks.index("channel", c, layout.headDim());
    if (layout.dtype().quantized()) {
      int p = i / SAMPLE_PHASES;
      return QuantBlocks.key(layout.dtype(), layout.headDim(), samples,
          sampleBlockOffset(layer, kvHead, i % SAMPLE_PHASES, p / TileLayout.KEY_BLOCK), p % TileLayout.KEY_BLOCK, c);
    }
    return layout.dtype().read(samples, sampleOffset(layer, kvHead, i, c));
  }

  /**
   * The sample store: key {@code i * SAMPLE_STRIDE} of every (layer, kvHead), in the cache's dtype,
   * in two phases (see {@link #SAMPLE_PHASES}) of blocks of 32 laid out like K blocks
   * ({@link #sampleBlockOffset}). Read-only and borrowed: valid until {@link #close()}.
   */
  MemorySegment samples() {
    ensureOpen();
    checkSampled();
    return samplesView;
  }

  /** Read-only view of the summary records, for the kernels. */
  MemorySegment summaries() {
    ensureOpen();
    return summariesView;
  }

  /** The whole K segment, read-only and borrowed: valid until {@link #close()}. */
  public MemorySegment keys() {
    ensureOpen();
    return keysView;
  }

  /** The whole V segment, read-only and borrowed: valid until {@link #close()}. */
  public MemorySegment values() {
    ensureOpen();
    return valuesView;
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
    return tile(keysView, layer, kvHead, tile);
  }

  /** The V twin of {@link #keyTile}. */
  public MemorySegment valueTile(int layer, int kvHead, int tile) {
    return tile(valuesView, layer, kvHead, tile);
  }

  /**
   * Element {@code c} of the stored (rounded; for q8_0/q4_0 dequantized) key at {@code pos}; a slow
   * path for tests.
   */
  public float key(int layer, int kvHead, int pos, int c) {
    return element(keys, layer, kvHead, pos, c);
  }

  /** Element {@code c} of the stored (rounded) value at {@code pos}; a slow path for tests. */
  public float value(int layer, int kvHead, int pos, int c) {
    return element(values, layer, kvHead, pos, c);
  }

  /** K plus V bytes of the stored positions over all layers. */
  public long bytesUsed() {
    ensureOpen();
    long positions = 0;
    for (int len : lengths) {
      positions += len;
    }
    return positions * 2L * layout.kvHeads() * layout.rowBytes();
  }

  /**
   * K plus V bytes allocated: {@code 2 * layout().segmentBytes()} (summaries not included); for a
   * sequence, the K and V bytes of the pages it holds (shared ones included).
   */
  public long bytesReserved() {
    ensureOpen();
    if (pages != null) {
      synchronized (pages) {
        return 2L * pages.count() * pages.pool.pageTokens() * layout.kvHeads() * layout.layers() * layout.rowBytes();
      }
    }
    return 2L * layout.segmentBytes();
  }

  /** True once {@link #close()} has been called. Thread-safe. */
  public boolean isClosed() {
    return closed.get();
  }

  /** Throws {@code IllegalStateException("KvCache is closed: ...")} if closed. */
  public void ensureOpen() {
    if (closed.get()) {
      throw closedException(null);
    }
  }

  /**
   * Frees the memory (a sequence: releases its page references and its summaries). Idempotent and
   * thread-safe. A decode that {@link #pin pinned} the cache keeps the memory until it ends.
   */
  @Override
  public void close() {
    if (pages != null) {
      synchronized (pages) { // not in the middle of an append or a fork of this sequence
        if (!closed.compareAndSet(false, true)) {
          return;
        }
      }
    } else if (!closed.compareAndSet(false, true)) {
      return;
    }
    if (pins.get() == 0) {
      release();
    }
  }

  /** Hands the memory back, once: after close, when no pin is left. */
  private void release() {
    if (released.compareAndSet(false, true)) {
      if (pages != null) {
        synchronized (pages) {
          pages.releaseAll();
        }
        pages.pool.closed(this, summaryBytes());
      }
      arena.close();
    }
  }

  @Override
  public String toString() {
    return "KvCache[layers=" + layout.layers() + ", kvHeads=" + layout.kvHeads() + ", headDim="
        + layout.headDim() + ", capacity=" + layout.capacity() + ", dtype=" + layout.dtype().id()
        + ", tileTokens=" + layout.tileTokens() + "]";
  }

  // ---- append internals -------------------------------------------------------------------

  /** Every check of an append, in the documented order; throws before anything is written. */
  private void validate(int layer, int count, float[] k, float[] v, boolean batched) {
    ensureOpen();
    Checks.index("layer", layer, layout.layers());
    if (count < 0) {
      throw new IllegalArgumentException("count must be >= 0: " + count);
    }
    checkShape("k", k, count, batched);
    checkShape("v", v, count, batched);
    int length = lengths[layer];
    int capacity = layout.capacity();
    if (count > capacity - length) {
      if (length == capacity) {
        throw new IllegalStateException(
            "cache is full: capacity " + capacity + " (layer=" + layer + ")");
      }
      throw new IllegalStateException("batch exceeds capacity: " + length + "+" + count + ">"
          + capacity + " (layer=" + layer + ")");
    }
    checkValues("k", k, layer, length);
    checkValues("v", v, layer, length);
    if (rotation != null) { // a rotated value can reach sqrt(d) times the largest input: check what is stored
      checkRotated("k", k, layer, length);
      checkRotated("v", v, layer, length);
    }
  }

  private void checkRotated(String name, float[] x, int layer, int position0) {
    int row = layout.kvHeads() * layout.headDim();
    float[] y = rotated[layer];
    for (int r = 0; r * row < x.length; r++) {
      rotateRow(x, r * row, y);
      float limit = layout.dtype().overflowLimit();
      for (int i = 0; i < row; i++) {
        if (!(Math.abs(y[i]) < limit)) {
          throw new IllegalArgumentException("value out of " + layout.dtype().id() + " range after rotation at "
              + name + "[" + (r * row + i) + "]=" + y[i] + " (layer=" + layer + ", position=" + (position0 + r) + ")");
        }
      }
    }
  }

  /** y = the kvHeads head rows of x[from ..] each rotated. */
  private void rotateRow(float[] x, int from, float[] y) {
    System.arraycopy(x, from, y, 0, y.length);
    for (int h = 0; h < layout.kvHeads(); h++) {
      rotation.rotate(y, h * layout.headDim());
    }
  }

  private void checkShape(String name, float[] x, int count, boolean batched) {
    if (x == null) {
      throw new IllegalArgumentException(name + " must not be null");
    }
    long expected = (long) count * layout.kvHeads() * layout.headDim();
    if (x.length != expected) {
      String what = batched ? "count*kvHeads*headDim" : "kvHeads*headDim";
      throw new IllegalArgumentException(
          name + " length differs from " + what + ": " + x.length + "!=" + expected);
    }
  }

  /**
   * One branch-free pass: the max of |x| is NaN or &ge; limit iff some element is not
   * representable (Math.max propagates NaN). C2 can vectorize this reduction; only a failure pays
   * for the second pass that finds the first bad index for the message.
   */
  private void checkValues(String name, float[] x, int layer, int position0) {
    float limit = layout.dtype().overflowLimit();
    float maxAbs = 0f;
    for (float e : x) {
      maxAbs = Math.max(maxAbs, Math.abs(e));
    }
    if (maxAbs < limit) {
      return;
    }
    int row = layout.kvHeads() * layout.headDim();
    for (int i = 0; i < x.length; i++) {
      if (!(Math.abs(x[i]) < limit)) {
        String problem = Float.isFinite(x[i])
            ? "value out of " + layout.dtype().id() + " range"
            : "non-finite value";
        throw new IllegalArgumentException(problem + " at " + name + "[" + i + "]=" + x[i]
            + " (layer=" + layer + ", position=" + (position0 + i / row) + ")");
      }
    }
    throw new AssertionError("max |x| not representable but no element is: " + maxAbs);
  }

  /** Writes validated rows at the layer's current length, then publishes the new length. */
  private void store(int layer, int count, float[] k, float[] v) {
    int position0 = lengths[layer];
    try {
      if (rotation == null) {
        writeRows(keys, true, layer, position0, count, k);
        writeRows(values, false, layer, position0, count, v);
      } else {
        float[] y = rotated[layer];
        for (int t = 0; t < count; t++) {
          rotateRow(k, t * y.length, y);
          writeRows(keys, true, layer, position0 + t, 1, y);
          rotateRow(v, t * y.length, y);
          writeRows(values, false, layer, position0 + t, 1, y);
        }
      }
      updateSummaries(layer, position0, count);
    } catch (IllegalStateException e) {
      throw translate(e);
    }
    lengths[layer] = position0 + count;
  }

  /** lo/hi for every new position; centroid, radius and vmax for every tile that became full. */
  private void updateSummaries(int layer, int position0, int count) {
    int tt = layout.tileTokens();
    int d = layout.headDim();
    for (int h = 0; h < layout.kvHeads(); h++) {
      for (int pos = position0; pos < position0 + count; pos++) {
        summaries.addKey(this, layer, h, pos);
        if (pos % SAMPLE_STRIDE == 0 && layout.dtype().quantized() && sampled) {
          int p = pos / SAMPLE_STRIDE / SAMPLE_PHASES;
          QuantBlocks.copyKey(layout.dtype(), d, keys, tileOffset(layer, h, pos / tt), pos % tt,
              samples, sampleBlockOffset(layer, h, pos / SAMPLE_STRIDE % SAMPLE_PHASES, p / TileLayout.KEY_BLOCK),
              p % TileLayout.KEY_BLOCK);
        } else if (pos % SAMPLE_STRIDE == 0 && sampled) {
          int i = pos / SAMPLE_STRIDE;
          int bytes = layout.dtype().bytes();
          for (int c = 0; c < d; c++) {
            MemorySegment.copy(keys, keyOffset(layer, h, pos, c), samples,
                sampleOffset(layer, h, i, c), bytes);
          }
        }
        if ((pos + 1) % tt == 0) {
          summaries.complete(this, layer, h, pos / tt);
          valueSummaries.complete(this, layer, h, pos / tt);
        }
      }
    }
  }

  /**
   * x is (count, kvHeads, headDim); row (t, h) goes to position position0 + t of (layer, h) in
   * {@link TileLayout} order: a K row is written with a stride of 32 elements (one column of its
   * key block), a V row as one contiguous run per 32-channel block.
   */
  private void writeRows(MemorySegment seg, boolean isKey, int layer, int position0, int count,
      float[] x) {
    int kvHeads = layout.kvHeads();
    int d = layout.headDim();
    int tileTokens = layout.tileTokens();
    if (layout.dtype().quantized()) {
      writeQuantRows(seg, isKey, layer, position0, count, x);
      return;
    }
    long bytes = layout.dtype().bytes();
    boolean paired = TileLayout.paired(layout.dtype());
    int src = 0;
    for (int t = 0; t < count; t++) {
      int pos = position0 + t;
      int j = pos % tileTokens;
      for (int h = 0; h < kvHeads; h++) {
        long tileBase = tileOffset(layer, h, pos / tileTokens);
        if (isKey) {
          long at = tileBase + TileLayout.keyIndex(j, 0, d, layout.dtype()) * bytes;
          for (int c = 0; c < d; c++) {
            layout.dtype().write(seg, at + c * TileLayout.KEY_BLOCK * bytes, x[src + c]);
          }
        } else {
          for (int c0 = 0; c0 < d; c0 += TileLayout.CHANNEL_BLOCK) {
            int w = TileLayout.valueBlockWidth(c0 / TileLayout.CHANNEL_BLOCK, d);
            long at = tileBase + TileLayout.valueIndex(j, c0, d, tileTokens, layout.dtype()) * bytes;
            writeRow(seg, at, x, src + c0, w, w == TileLayout.CHANNEL_BLOCK && paired);
          }
        }
        src += d;
      }
    }
  }

  /** The block-dtype twin of {@link #writeRows}: each head row quantized block by block (QuantBlocks). */
  private void writeQuantRows(MemorySegment seg, boolean isKey, int layer, int position0, int count,
      float[] x) {
    DType t = layout.dtype();
    int d = layout.headDim();
    int tileTokens = layout.tileTokens();
    int src = 0;
    for (int r = 0; r < count; r++) {
      int pos = position0 + r;
      for (int h = 0; h < layout.kvHeads(); h++) {
        long tile = tileOffset(layer, h, pos / tileTokens);
        if (isKey) {
          QuantBlocks.quantizeKey(t, d, x, src, seg, tile, pos % tileTokens);
        } else {
          QuantBlocks.quantizeValue(t, d, tileTokens, x, src, seg, tile, pos % tileTokens);
        }
        src += d;
      }
    }
  }

  /** n values from x[src] into a V row at dst; {@code paired}: a full 32-wide 16-bit run, pair-wise. */
  private void writeRow(MemorySegment seg, long dst, float[] x, int src, int n, boolean paired) {
    if (paired) {
      for (int c = 0; c < n; c++) {
        short h = layout.dtype() == DType.F16 ? Float.floatToFloat16(x[src + c]) : DType.toBf16(x[src + c]);
        seg.set(DType.I16_LE, dst + 2L * TileLayout.lane(c, true), h);
      }
      return;
    }
    switch (layout.dtype()) {
      // bulk copy: no conversion needed, the JDK copies (and byte-swaps if big-endian) in one go
      case F32 -> MemorySegment.copy(x, src, seg, DType.F32_LE, dst, n);
      case BF16 -> {
        for (int c = 0; c < n; c++) {
          seg.set(DType.I16_LE, dst + 2L * c, DType.toBf16(x[src + c]));
        }
      }
      case F16 -> {
        // Float.floatToFloat16 is an intrinsic (vcvtps2ph on F16C hardware)
        for (int c = 0; c < n; c++) {
          seg.set(DType.I16_LE, dst + 2L * c, Float.floatToFloat16(x[src + c]));
        }
      }
      case Q8_0, Q4_0 -> throw new AssertionError("block dtypes are written by writeQuantRows");
    }
  }

  // ---- read internals ---------------------------------------------------------------------

  private void checkSampled() {
    if (!sampled) {
      throw new UnsupportedOperationException("no key samples: the pool's pages of " + pages.pool.pageTokens()
          + " positions are not a multiple of " + PagePool.SAMPLE_SPAN + " (the sampled mode needs them): " + this);
    }
  }

  /** Byte offset in keys of channel c of position pos (16-bit and f32 dtypes). */
  private long keyOffset(int layer, int kvHead, int pos, int c) {
    if (pages == null) {
      return layout.keyOffset(layer, kvHead, pos, c);
    }
    int tt = layout.tileTokens();
    return tileOffset(layer, kvHead, pos / tt)
        + (long) TileLayout.keyIndex(pos % tt, c, layout.headDim(), layout.dtype()) * layout.dtype().bytes();
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

  private MemorySegment tile(MemorySegment seg, int layer, int kvHead, int tile) {
    ensureOpen();
    Checks.index("layer", layer, layout.layers());
    Checks.index("kvHead", kvHead, layout.kvHeads());
    int length = lengths[layer];
    int tiles = layout.tileCount(length);
    if (tile < 0 || tile >= tiles) {
      throw new IndexOutOfBoundsException("tile out of range [0, " + tiles + "): " + tile
          + " (layer=" + layer + ", length=" + length + ")");
    }
    return seg.asSlice(tileOffset(layer, kvHead, tile), layout.tileTokens() * layout.rowBytes());
  }

  private float element(MemorySegment seg, int layer, int kvHead, int pos, int c) {
    ensureOpen();
    Checks.index("layer", layer, layout.layers());
    Checks.index("kvHead", kvHead, layout.kvHeads());
    int length = lengths[layer];
    if (pos < 0 || pos >= length) {
      throw new IndexOutOfBoundsException(
          "position out of range [0, " + length + "): " + pos + " (layer=" + layer + ")");
    }
    Checks.index("channel", c, layout.headDim());
    try {
      return seg == keys ? storedKey(layer, kvHead, pos, c) : storedValue(layer, kvHead, pos, c);
    } catch (IllegalStateException e) {
      throw translate(e);
    }
  }

  // ---- lifecycle internals ----------------------------------------------------------------

  private void checkTruncateLength(int n) {
    if (n < 0) {
      throw new IllegalArgumentException("truncate length must be >= 0: " + n);
    }
  }

  /** FFM's "Already closed" becomes ours only if our arena really is closed; other bugs pass. */
  private IllegalStateException translate(IllegalStateException e) {
    return arena.scope().isAlive() ? e : closedException(e);
  }

  private IllegalStateException closedException(Throwable cause) {
    return new IllegalStateException("KvCache is closed: " + this, cause);
  }
}
