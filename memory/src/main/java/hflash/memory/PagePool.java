package hflash.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;

/**
 * A pool of fixed-size pages that many sequences share: the paged KV cache of vLLM's
 * PagedAttention (block tables, reference-counted blocks, copy-on-write forks), laid out so that
 * every tile the engine reads is still one contiguous run in one segment.
 *
 * <p><b>Pages.</b> A page holds {@link #pageTokens()} consecutive positions of one sequence, for
 * every layer and KV head: their K tiles, their V tiles, their key samples (the sampled mode's
 * store) and the summaries of their tiles (and of each block of 16 tiles whose last tile is in the
 * page) that the bounded and estimated modes read. {@code pageTokens} is a whole number of tiles,
 * so no tile straddles two pages; when it is also a whole number of sample blocks (512 positions:
 * 32 samples of each of the two phases of every 8th key) the pages keep the samples too
 * ({@link #hasSamples()}), else the sequences cannot run the sampled mode (smaller pages share
 * prompts at a finer grain). One arena owns four segments, K, V, samples and summaries, each
 * {@code pages} equal slots; page {@code p} is slot {@code p} of all four:
 *
 * <pre>
 *   K/V tile (layer, kvHead, tile i of the page) at  p * pageKvBytes + ((layer * kvHeads + kvHead) * tilesPerPage + i) * tileBytes
 *   sample block (layer, kvHead, phase, block b)  at  p * pageSampleBytes + (((layer * kvHeads + kvHead) * 2 + phase) * blocksPerPage + b) * 32 * rowBytes
 * </pre>
 *
 * K and V use the same offset in their own segment, exactly as in a flat {@link KvCache}. A page's
 * summary slot holds its key records ({@link TileSummaries}) then its value records
 * ({@link ValueSummaries}), each ordered (layer, kvHead, index) as in a flat cache.
 *
 * <p><b>Sequences.</b> {@link #newSequence()} returns a {@link KvCache} whose tiles live in pages
 * through a page table: the whole {@code KvCache} contract (appends, lengths, truncate, close, the
 * decode engine in every mode) plus {@link KvCache#fork()}. Its tile summaries are in its pages,
 * so a fork shares them with the pages (nothing copied) and a copy-on-write copies them with the
 * page; a sequence keeps no memory outside its pages ({@link #stats()} counts whole pages), see
 * docs/MEMORY.md section 8.
 *
 * <p><b>Threads.</b> Every method of the pool is thread-safe. Page allocation, reference counts and
 * {@link #stats()} are guarded by one lock held only for bookkeeping (never while page bytes are
 * copied). What may run at once on sequences is stated in {@link KvCache}.
 *
 * <p><b>Ownership.</b> The pool owns the arena; {@link #close()} closes every sequence still open
 * and then frees the pages. Closing the pool while a decode reads one of its sequences is a
 * caller error (the decode fails with an {@link IllegalStateException}).
 */
public final class PagePool implements AutoCloseable {

  /** Positions a sample block spans: 32 samples of each phase of every 8th key. */
  public static final int SAMPLE_SPAN = TileLayout.KEY_BLOCK * KvCache.SAMPLE_STRIDE * KvCache.SAMPLE_PHASES;

  private final KvCacheLayout layout; // of one sequence: capacity = the longest a sequence may grow
  private final HadamardRotation rotation;
  private final int pageTokens;
  private final int tilesPerPage;
  private final int sampleBlocksPerPage;
  private final int pageCount;
  private final long tileBytes;
  private final long pageKvBytes; // bytes of one page in the K segment (the same in V)
  private final long pageSampleBytes;
  private final long pageSummaryBytes; // one page's slot of tile and block summaries (keys, then values)
  private final long valueSummaryBase; // where the value summaries start inside the slot
  private final Arena arena;
  private final MemorySegment keys; // (pages, layers, kvHeads, tilesPerPage) tiles
  private final MemorySegment values;
  private final MemorySegment samples; // (pages, layers, kvHeads, phases, blocksPerPage) sample blocks
  private final MemorySegment summaries; // (pages) slots of TileSummaries then ValueSummaries records
  private final MemorySegment summariesView;
  private final MemorySegment keysView;
  private final MemorySegment valuesView;
  private final MemorySegment samplesView;

  // guarded by this
  private final int[] refs; // (pages) sequences holding each page; 0 = free
  private final ArrayDeque<Integer> free = new ArrayDeque<>();
  private int shared; // pages with refs > 1
  private final Set<KvCache> open = Collections.newSetFromMap(new IdentityHashMap<>());
  private boolean closed;

  private PagePool(KvCacheLayout layout, int pageTokens, int pages, HadamardRotation rotation) {
    this.layout = layout;
    this.rotation = rotation;
    this.pageTokens = pageTokens;
    this.pageCount = pages;
    this.tilesPerPage = pageTokens / layout.tileTokens();
    this.sampleBlocksPerPage = pageTokens % SAMPLE_SPAN == 0 ? pageTokens / SAMPLE_SPAN : 0; // 0: no sample store
    this.tileBytes = layout.tileTokens() * layout.rowBytes();
    long heads = (long) layout.layers() * layout.kvHeads();
    this.pageKvBytes = Math.multiplyExact(heads * tilesPerPage, tileBytes);
    this.pageSampleBytes = Math.multiplyExact(heads * KvCache.SAMPLE_PHASES * sampleBlocksPerPage,
        TileLayout.KEY_BLOCK * layout.rowBytes());
    this.valueSummaryBase = align(TileSummaries.slotBytes(layout, tilesPerPage));
    this.pageSummaryBytes = summaryBytes(layout, pageTokens);
    this.refs = new int[pages];
    for (int p = 0; p < pages; p++) {
      free.add(p);
    }
    Arena a = Arena.ofShared();
    try {
      this.keys = HugePages.allocate(a, Math.multiplyExact(pageKvBytes, (long) pages), 64);
      this.values = HugePages.allocate(a, Math.multiplyExact(pageKvBytes, (long) pages), 64);
      this.samples = a.allocate(Math.max(1, Math.multiplyExact(pageSampleBytes, (long) pages)), 64);
      this.summaries = a.allocate(Math.multiplyExact(pageSummaryBytes, (long) pages), 64);
    } catch (RuntimeException | Error e) {
      a.close();
      throw e;
    }
    this.arena = a;
    this.keysView = keys.asReadOnly();
    this.valuesView = values.asReadOnly();
    this.samplesView = samples.asReadOnly();
    this.summariesView = summaries.asReadOnly();
  }

  private static long align(long bytes) {
    return Math.addExact(bytes, 63) & -64L;
  }

  /** One page's slot of summaries: its tiles' and blocks' key records, then their value records, 64-byte aligned. */
  private static long summaryBytes(KvCacheLayout layout, int pageTokens) {
    int tilesPerPage = pageTokens / layout.tileTokens();
    return Math.addExact(align(TileSummaries.slotBytes(layout, tilesPerPage)),
        align(ValueSummaries.slotBytes(layout, tilesPerPage)));
  }

  /**
   * A pool of {@code pages} pages of {@code pageTokens} positions each, for sequences of up to
   * {@code layout.capacity()} positions with the layout's layers, KV heads, head dim, dtype and
   * tile size.
   *
   * @throws IllegalArgumentException if layout is null, pages is not positive, or pageTokens is not
   *     a positive multiple of the tile size
   */
  public static PagePool allocate(KvCacheLayout layout, int pageTokens, int pages) {
    return allocate(layout, pageTokens, pages, null);
  }

  /** As {@link #allocate(KvCacheLayout, int, int)}, every sequence rotating K and V (see {@link KvCache}). */
  public static PagePool allocate(KvCacheLayout layout, int pageTokens, int pages, HadamardRotation rotation) {
    if (layout == null) {
      throw new IllegalArgumentException("layout must not be null");
    }
    Checks.positive("pages", pages);
    Checks.positive("pageTokens", pageTokens);
    if (pageTokens % layout.tileTokens() != 0) {
      throw new IllegalArgumentException("pageTokens must be a multiple of tileTokens " + layout.tileTokens() + ": "
          + pageTokens);
    }
    if (rotation != null && rotation.headDim() != layout.headDim()) {
      throw new IllegalArgumentException("rotation head dim differs from headDim: " + rotation.headDim() + "!="
          + layout.headDim());
    }
    return new PagePool(layout, pageTokens, pages, rotation);
  }

  /** The smallest page: lcm(tileTokens, {@link #SAMPLE_SPAN}) positions (512 for 128-key tiles). */
  public static int defaultPageTokens(int tileTokens) {
    int a = tileTokens, b = SAMPLE_SPAN;
    while (b != 0) {
      int t = a % b;
      a = b;
      b = t;
    }
    return Math.multiplyExact(tileTokens / a, SAMPLE_SPAN);
  }

  /**
   * Bytes one page takes: K, V, (when pageTokens is a multiple of {@link #SAMPLE_SPAN}) samples, and
   * the tile summaries of {@code pageTokens} positions of every layer and KV head. The summaries are
   * the key and value records of the page's tiles and of the blocks of 16 tiles whose last tile is
   * in the page: a page of fewer than 16 tiles reserves one block record per layer and KV head, used
   * by every (16 / tiles per page)-th page.
   */
  public static long pageBytes(KvCacheLayout layout, int pageTokens) {
    long heads = (long) layout.layers() * layout.kvHeads();
    long samples = pageTokens % SAMPLE_SPAN == 0 ? heads * pageTokens / KvCache.SAMPLE_STRIDE * layout.rowBytes() : 0;
    return heads * pageTokens * layout.rowBytes() * 2 + samples + summaryBytes(layout, pageTokens);
  }

  /**
   * True when the pages keep the sampled mode's key samples: pageTokens is a multiple of
   * {@link #SAMPLE_SPAN}, so no sample block straddles two pages. Smaller pages share at a finer
   * grain but their sequences cannot run the sampled mode.
   */
  public boolean hasSamples() {
    return sampleBlocksPerPage > 0;
  }

  /** A new, empty sequence holding no page. */
  public KvCache newSequence() {
    synchronized (this) {
      ensureOpen();
    }
    return KvCache.paged(new PageTable(this));
  }

  /** The layout every sequence of this pool has (capacity: the longest a sequence may grow). */
  public KvCacheLayout layout() {
    return layout;
  }

  /** Positions per page. */
  public int pageTokens() {
    return pageTokens;
  }

  /** Pages in the pool. */
  public int pages() {
    return pageCount;
  }

  HadamardRotation rotation() {
    return rotation;
  }

  /**
   * Occupancy at one instant.
   *
   * @param pagesTotal pages in the pool
   * @param pagesUsed pages some sequence holds
   * @param pagesShared pages two or more sequences hold
   * @param pagesFree pages no sequence holds
   * @param bytes everything the pool reserved: {@code pagesTotal * pageBytes} (K, V, samples and the
   *     tile summaries: they live in the pages)
   * @param bytesUsed what the open sequences take: {@code pagesUsed * pageBytes}, summaries included (a
   *     sequence keeps nothing outside its pages, a fork copies nothing)
   * @param sequences sequences open
   */
  public record Stats(int pagesTotal, int pagesUsed, int pagesShared, int pagesFree, long bytes, long bytesUsed,
      int sequences) {}

  /** The pool's occupancy now (one consistent snapshot). */
  public synchronized Stats stats() {
    int used = pageCount - free.size();
    long page = pageBytes(layout, pageTokens);
    return new Stats(pageCount, used, shared, free.size(), page * pageCount, page * used, open.size());
  }

  /** Frees the pages after closing every sequence still open. Idempotent and thread-safe. */
  @Override
  public void close() {
    KvCache[] live;
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
      live = open.toArray(new KvCache[0]);
    }
    for (KvCache c : live) {
      c.close();
    }
    arena.close();
  }

  /** True once {@link #close()} ran. */
  public synchronized boolean isClosed() {
    return closed;
  }

  @Override
  public String toString() {
    return "PagePool[pages=" + pageCount + ", pageTokens=" + pageTokens + ", layout=" + layout + "]";
  }

  // ------------------------------------------------------------------ for PageTable / KvCache

  private void ensureOpen() {
    if (closed) {
      throw new IllegalStateException("PagePool is closed: " + this);
    }
  }

  MemorySegment keys() {
    return keys;
  }

  MemorySegment values() {
    return values;
  }

  MemorySegment samples() {
    return samples;
  }

  MemorySegment keysView() {
    return keysView;
  }

  MemorySegment valuesView() {
    return valuesView;
  }

  MemorySegment samplesView() {
    return samplesView;
  }

  MemorySegment summaries() {
    return summaries;
  }

  MemorySegment summariesView() {
    return summariesView;
  }

  /** A sequence's key summaries over its page table (see {@link TileSummaries}). */
  TileSummaries tileSummaries(PageTable table) {
    return new TileSummaries(layout, summaries, table, pageSummaryBytes, 0, tilesPerPage);
  }

  /** A sequence's value summaries over its page table. */
  ValueSummaries valueSummaries(PageTable table) {
    return new ValueSummaries(layout, summaries, table, pageSummaryBytes, valueSummaryBase, tilesPerPage);
  }

  int tilesPerPage() {
    return tilesPerPage;
  }

  int sampleBlocksPerPage() {
    return sampleBlocksPerPage;
  }

  /** Byte offset (in K and in V) of tile {@code i} of page {@code page} for (layer, kvHead). */
  long tileOffset(int page, int layer, int kvHead, int i) {
    return page * pageKvBytes + (((long) layer * layout.kvHeads() + kvHead) * tilesPerPage + i) * tileBytes;
  }

  /** Byte offset in the sample segment of block {@code b} of page {@code page}. */
  long sampleBlockOffset(int page, int layer, int kvHead, int phase, int b) {
    return page * pageSampleBytes + ((((long) layer * layout.kvHeads() + kvHead) * KvCache.SAMPLE_PHASES + phase)
        * sampleBlocksPerPage + b) * TileLayout.KEY_BLOCK * layout.rowBytes();
  }

  /**
   * Takes {@code n} free pages, all or none.
   *
   * @throws IllegalStateException naming the pages needed and free when fewer than n are free
   */
  synchronized int[] take(int n, String what) {
    ensureOpen();
    if (n > free.size()) {
      throw new IllegalStateException("page pool is full: " + what + " needs " + n + " pages, " + free.size()
          + " free of " + pageCount + " (pageTokens=" + pageTokens + ")");
    }
    int[] out = new int[n];
    for (int i = 0; i < n; i++) {
      int p = free.poll();
      refs[p] = 1;
      out[i] = p;
    }
    return out;
  }

  /** Adds one reference to each of the first n pages. */
  synchronized void retain(int[] pages, int n) {
    ensureOpen();
    for (int i = 0; i < n; i++) {
      int p = pages[i];
      assert refs[p] > 0;
      if (refs[p]++ == 1) {
        shared++;
      }
    }
  }

  /** Drops one reference to each of pages[from, to); a page nobody holds is free again. */
  synchronized void release(int[] pages, int from, int to) {
    for (int i = from; i < to; i++) {
      int p = pages[i];
      assert refs[p] > 0;
      if (--refs[p] == 1) {
        shared--;
      } else if (refs[p] == 0) {
        free.add(p);
      }
    }
  }

  /** True when another sequence holds the page too (a write must copy it first). */
  synchronized boolean isShared(int page) {
    return refs[page] > 1;
  }

  synchronized void opened(KvCache c) {
    ensureOpen();
    open.add(c);
  }

  synchronized void closed(KvCache c) {
    open.remove(c);
  }

  /** Copies the bytes of page {@code from} (K, V, samples, summaries) into page {@code to}. */
  void copyPage(int from, int to) {
    MemorySegment.copy(keys, from * pageKvBytes, keys, to * pageKvBytes, pageKvBytes);
    MemorySegment.copy(values, from * pageKvBytes, values, to * pageKvBytes, pageKvBytes);
    if (pageSampleBytes > 0) {
      MemorySegment.copy(samples, from * pageSampleBytes, samples, to * pageSampleBytes, pageSampleBytes);
    }
    MemorySegment.copy(summaries, from * pageSummaryBytes, summaries, to * pageSummaryBytes, pageSummaryBytes);
  }
}
