package hflash.jlama;

import hflash.engine.AttentionConfig;
import hflash.engine.DecodeAttention;
import hflash.memory.DType;
import hflash.memory.HadamardRotation;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.memory.PagePool;

/**
 * One session's hflash cache and attention: with {@link Sessions}, the only code of this module
 * that calls hflash's engine and cache API, so a change of that API is adapted here.
 *
 * <p>The cache is a sequence of the model's one {@link PagePool}: it holds only the pages its
 * positions need (a page per {@code pageTokens} positions, every layer), a rewind truncates it
 * (the pages past the new length go back to the pool once every layer is rewound), and closing it
 * hands all its pages back.
 *
 * <p>Per layer, a forward of {@code n} rows at {@code start}: rewind the layer to {@code start}
 * when it holds more (Jlama overwrites its buffer from {@code start} on), append the rows' K and
 * V in one batched append, then one {@code DecodeAttention} call: {@code decode} for one row, the
 * tiled {@code prefill} for a batch. One forward at a time per session (Jlama runs the layers of
 * a forward in order; different sessions may run in parallel, each has its own worker threads).
 */
final class Session implements AutoCloseable {

  private final PagePool pool; // shared by every session of the model; closed by Sessions only
  private final KvCache cache; // a sequence of pool
  private final DecodeAttention attention;
  private final AttentionConfig config;
  private final int capacity;
  private final int heads;
  private final int kvLength; // kvHeads * headDim
  private Scratch scratch;
  long prefillCalls; // hflash calls made, for tests: a prompt batch is one prefill per layer
  long decodeCalls;
  long attendNanos; // wall time in append + the hflash call, all layers (the benchmark splits a token's time with it)
  long blockNanos; // wall time in the whole attention block (projections to output projection), all layers

  /** Per-forward arrays of exactly one batch size (the last one used; a decode step reuses them). */
  static final class Scratch {
    final int rows;
    final float[] q; // (rows, numHeads, headDim)
    final float[] k; // (rows, kvHeads, headDim)
    final float[] v; // (rows, kvHeads, headDim)
    final float[] out; // (rows, numHeads, headDim)

    Scratch(int rows, int qLength, int kvLength) {
      this.rows = rows;
      this.q = new float[rows * qLength];
      this.k = new float[rows * kvLength];
      this.v = new float[rows * kvLength];
      this.out = new float[rows * qLength];
    }
  }

  /** A new, empty session: a sequence of {@code pool} (whose layout gives the shape and the capacity). */
  Session(PagePool pool, int heads, float scale, HflashJlama.Options o) {
    KvCacheLayout layout = pool.layout();
    this.capacity = layout.capacity();
    this.heads = heads;
    this.kvLength = layout.kvHeads() * layout.headDim();
    this.config = o.attention;
    this.pool = pool;
    this.cache = pool.newSequence();
    try {
      this.attention = DecodeAttention.create(cache, heads, o.threads, scale);
    } catch (RuntimeException | Error e) {
      cache.close();
      throw e;
    }
  }

  /** The layout of every session of a model: its shape, the KV dtype and capacity of {@code o}. */
  static KvCacheLayout layout(int layers, int kvHeads, int headDim, HflashJlama.Options o) {
    return new KvCacheLayout(layers, kvHeads, headDim, o.capacity, DType.parse(o.kvDtype), o.tileTokens);
  }

  /** The page pool every session of a model lives in: {@code o.poolCapacity} positions in whole pages. */
  static PagePool pool(KvCacheLayout layout, HflashJlama.Options o) {
    int pageTokens = o.pageTokens;
    int pages = Math.ceilDiv(o.poolCapacity, pageTokens);
    HadamardRotation rotation = o.kvRotation ? HadamardRotation.of(layout.headDim(), HadamardRotation.DEFAULT_SEED) : null;
    return PagePool.allocate(layout, pageTokens, pages, rotation);
  }

  /** Fails before any work when rows {@code [start, start + n)} cannot go into layer {@code layer}. */
  void checkRange(int layer, int start, int n) {
    if (start < 0) {
      throw new IllegalArgumentException("startPosition must be >= 0: " + start);
    }
    if ((long) start + n > capacity) {
      throw new IllegalStateException("session would exceed its capacity of " + capacity + " positions: "
          + start + " + " + n + " > " + capacity + " (HflashJlama.Options.capacity)");
    }
    int length = cache.length(layer);
    if (start > length) {
      throw new IllegalArgumentException("startPosition is past the session's length: " + start + " > " + length
          + " (layer " + layer + "; positions must follow each other)");
    }
  }

  Scratch scratch(int rows) {
    if (scratch == null || scratch.rows != rows) {
      scratch = new Scratch(rows, heads * (kvLength / cache.layout().kvHeads()), kvLength);
    }
    return scratch;
  }

  /** Appends rows {@code [start, start + n)} of layer {@code layer} and attends them (see the class comment). */
  void attend(int layer, int start, int n, float[] q, float[] k, float[] v, float[] out) {
    checkRange(layer, start, n);
    long t0 = System.nanoTime();
    if (start < cache.length(layer)) {
      cache.truncate(layer, start);
    }
    append(layer, n, k, v);
    run(layer, start, n, q, out);
    attendNanos += System.nanoTime() - t0;
  }

  private void append(int layer, int n, float[] k, float[] v) {
    int length = cache.length(layer);
    try {
      if (n == 1) {
        cache.append(layer, k, v);
      } else {
        cache.append(layer, n, k, v);
      }
    } catch (IllegalStateException e) {
      if (pool.isClosed() || cache.isClosed()) {
        throw e;
      }
      // say it in the adapter's terms (pages needed and free, the option that sizes the pool) when
      // the pool is what is short; the pool's own exception is the cause either way
      int pageTokens = pool.pageTokens();
      int needed = Math.ceilDiv(length + n, pageTokens) - cache.pageIds().length;
      PagePool.Stats st = pool.stats();
      if (needed <= st.pagesFree()) {
        throw e;
      }
      throw new IllegalStateException("the sessions' page pool is full: " + n + " positions at " + length + " (layer="
          + layer + ") need " + needed + " pages, " + st.pagesFree() + " free of " + st.pagesTotal() + " ("
          + pageTokens + " positions each, " + st.sequences() + " sessions hold " + st.pagesUsed()
          + "); raise HflashJlama.Options.poolCapacity (now " + (long) st.pagesTotal() * pageTokens
          + " positions) or release sessions", e);
    }
  }

  private void run(int layer, int start, int n, float[] q, float[] out) {
    if (n == 1) {
      attention.decode(layer, q, out, start + 1, config);
      decodeCalls++;
    } else {
      attention.prefill(layer, q, out, start, n, config);
      prefillCalls++;
    }
  }

  /**
   * Appends {@code count} ready K/V rows to {@code layer} without attending (a benchmark fills a
   * long context this way; K rows already rotated by RoPE).
   */
  void appendRows(int layer, int count, float[] k, float[] v) {
    checkRange(layer, cache.length(layer), count);
    append(layer, count, k, v);
  }

  /** Positions held by layer 0. */
  int length() {
    return cache.length(0);
  }

  /** K+V bytes of the pages this session holds. */
  long bytesReserved() {
    return cache.bytesReserved();
  }

  @Override
  public void close() {
    try {
      attention.close();
    } finally {
      cache.close();
    }
  }
}
