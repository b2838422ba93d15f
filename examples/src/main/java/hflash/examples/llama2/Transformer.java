package hflash.examples.llama2;

import hflash.engine.AttentionConfig;
import hflash.engine.AttentionMode;
import hflash.engine.Scheduler;
import hflash.engine.AttentionReport;
import hflash.engine.BatchedDecode;
import hflash.engine.DecodeAttention;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.Objects;

/**
 * The llama2.c forward pass in plain float32 Java, with every attention step delegated to hflash.
 * {@link #forward} runs one token; {@link #prefill} runs a block of prompt tokens layer by layer with one batched
 * K/V append per layer. Every attention call uses {@link #attentionConfig()} (exact unless told otherwise).
 *
 * <p>Per token and layer: RMSNorm, the q/k/v projections, RoPE on consecutive pairs {@code (2i, 2i+1)} with theta
 * 10000 (the {@code run.c} convention), {@code cache.append(layer, k, v)}, {@code attention.decode(layer, q, out)},
 * the output projection, and a SwiGLU feed-forward block. The arithmetic follows {@code run.c} operation for
 * operation (float accumulators, same summation order), so greedy decoding reproduces llama2.c token for token.
 *
 * <p>Ownership: a {@code Transformer} creates and owns one {@code KvCache} and one {@code DecodeAttention};
 * {@link #close()} closes the attention (its worker threads) first and then the cache. It borrows the checkpoint's
 * weight arrays. Not thread-safe: one instance decodes one sequence on one caller thread at a time (the attention
 * may use its own worker threads internally). All buffers are allocated in the constructor; {@link #forward} does
 * not allocate.
 */
public final class Transformer implements AutoCloseable {

  private static final float RMS_EPS = 1e-5f;
  private static final double ROPE_THETA = 10000.0;

  /** Keys per KV tile unless a constructor says otherwise (64 keys: the tile size DESIGN.md assumes). */
  public static final int DEFAULT_TILE_TOKENS = 64;

  private final Llama2Checkpoint.Config config;
  private final Llama2Checkpoint w;
  private final int capacity;
  private final KvCache cache; // owned: K and V of every layer, (layers, kvHeads, capacity, headDim) each
  private final DecodeAttention attention; // owned: reads the cache, may run worker threads
  private AttentionConfig attentionConfig; // mode and parameters of every attention call
  private final AttentionReport totals; // running sum of attention.report(), per-head maxima
  private long calls; // decode calls summed into totals

  private final float[] x; // (dim) residual stream
  private final float[] xb; // (dim) normalised input of a block
  private final float[] xb2; // (dim) attention output, then a block's output before the residual add
  private final float[] q; // (heads, headDim) row-major query
  private final float[] k; // (kvHeads, headDim) row-major key of this position
  private final float[] v; // (kvHeads, headDim) row-major value of this position
  private final float[] hb; // (hiddenDim) w1 branch, then the SwiGLU product
  private final float[] hb2; // (hiddenDim) w3 branch
  private final float[] logits; // (vocab)
  private final float[] invFreq; // (headDim/2) RoPE frequency of pair i: 1 / 10000^(2i/headDim)
  private final float[] cos; // (headDim/2) cos(pos * invFreq[i]) for the current position
  private final float[] sin; // (headDim/2) sin(pos * invFreq[i]) for the current position

  /**
   * A transformer over an f32 cache of the full trained context, exact attention, one thread.
   *
   * @param model the weights (borrowed)
   */
  public Transformer(Llama2Checkpoint model) {
    this(model, model.config().seqLen(), DType.F32, AttentionConfig.exact(), 1);
  }

  /**
   * @param model the weights (borrowed)
   * @param capacity KV positions to reserve; {@code model.config().seqLen()} for the full trained context
   * @param dtype element type of the KV cache
   * @param mode how each decode call computes attention
   * @param threads attention worker threads, &gt;= 1
   */
  public Transformer(Llama2Checkpoint model, int capacity, DType dtype, AttentionMode mode, int threads) {
    this(model, capacity, dtype, mode, threads, DEFAULT_TILE_TOKENS);
  }

  /**
   * As {@link #Transformer(Llama2Checkpoint, int, DType, AttentionMode, int)} with an explicit tile size.
   *
   * @param tileTokens keys per KV tile, the unit the engine reads and reports
   */
  public Transformer(Llama2Checkpoint model, int capacity, DType dtype, AttentionMode mode, int threads,
      int tileTokens) {
    this(model, capacity, dtype, defaultConfig(Objects.requireNonNull(mode, "mode")), threads, tileTokens);
  }

  /**
   * A transformer whose attention calls run with {@code attention} (any mode and its parameters), with
   * {@link #DEFAULT_TILE_TOKENS}-key tiles.
   */
  public Transformer(Llama2Checkpoint model, int capacity, DType dtype, AttentionConfig attention, int threads) {
    this(model, capacity, dtype, attention, threads, DEFAULT_TILE_TOKENS);
  }

  /**
   * @param model the weights (borrowed)
   * @param capacity KV positions to reserve; {@code model.config().seqLen()} for the full trained context
   * @param dtype element type of the KV cache
   * @param attention mode and parameters of every decode call; {@link #setAttentionConfig} changes it later
   * @param threads attention worker threads, &gt;= 1
   * @param tileTokens keys per KV tile, the unit the engine reads, summarises and reports
   */
  public Transformer(Llama2Checkpoint model, int capacity, DType dtype, AttentionConfig attention, int threads,
      int tileTokens) {
    this(model, capacity, dtype, attention, threads, tileTokens, Scheduler.SPLITK);
  }

  /**
   * As {@link #Transformer(Llama2Checkpoint, int, DType, AttentionConfig, int, int)} with the scheduler that
   * spreads each attention call over the threads (pipeline needs threads &gt;= 2).
   */
  public Transformer(Llama2Checkpoint model, int capacity, DType dtype, AttentionConfig attention, int threads,
      int tileTokens, Scheduler scheduler) {
    this(model, capacity, dtype, attention, threads, tileTokens, scheduler, null);
  }

  /**
   * As {@link #Transformer(Llama2Checkpoint, int, DType, AttentionConfig, int, int, Scheduler)} with K and V rotated
   * by {@code rotation} before they are cached (null: none; see {@link KvCache#allocate(KvCacheLayout,
   * hflash.memory.HadamardRotation)}).
   *
   * @throws IllegalArgumentException if the rotation's head dim differs from the model's
   */
  public Transformer(Llama2Checkpoint model, int capacity, DType dtype, AttentionConfig attention, int threads,
      int tileTokens, Scheduler scheduler, hflash.memory.HadamardRotation rotation) {
    this(model, newCache(model, capacity, dtype, attention, tileTokens, rotation), attention, threads, scheduler);
  }

  /**
   * A transformer over a new sequence of {@code pool} (the pool's layout must be the model's; the caller owns and
   * closes the pool after this transformer): {@link #fork()} then makes transformers that share its pages.
   */
  public Transformer(Llama2Checkpoint model, hflash.memory.PagePool pool, AttentionConfig attention, int threads,
      Scheduler scheduler) {
    this(model, sequenceOf(model, pool), attention, threads, scheduler);
  }

  private static KvCache sequenceOf(Llama2Checkpoint model, hflash.memory.PagePool pool) {
    Llama2Checkpoint.Config c = model.config();
    KvCacheLayout l = pool.layout();
    if (l.layers() != c.layers() || l.kvHeads() != c.kvHeads() || l.headDim() != c.headDim()) {
      throw new IllegalArgumentException("pool layout differs from the model's (layers, kvHeads, headDim): (" + l.layers()
          + ", " + l.kvHeads() + ", " + l.headDim() + ") != (" + c.layers() + ", " + c.kvHeads() + ", " + c.headDim()
          + ")");
    }
    return pool.newSequence();
  }

  /**
   * A transformer at this one's position over a fork of its cache (same weights, mode, threads and scheduler):
   * the two share every cached page until one of them writes into it (copy-on-write), so N continuations of one
   * prompt hold the prompt once. Needs a transformer over a page pool sequence.
   *
   * @throws IllegalStateException if this transformer's cache is not a sequence of a page pool
   */
  public Transformer fork() {
    return new Transformer(w, cache.fork(), attentionConfig, attention.threads(), attention.scheduler());
  }

  /** A validated flat cache for the public constructors. */
  private static KvCache newCache(Llama2Checkpoint model, int capacity, DType dtype, AttentionConfig attention,
      int tileTokens, hflash.memory.HadamardRotation rotation) {
    Objects.requireNonNull(model, "model");
    Objects.requireNonNull(dtype, "dtype");
    Objects.requireNonNull(attention, "attention");
    if (capacity <= 0) {
      throw new IllegalArgumentException("capacity must be positive: " + capacity);
    }
    Llama2Checkpoint.Config c = model.config();
    // validates every dimension; K and V each take layers*kvHeads*capacity*dtype.rowBytes(headDim) bytes
    return KvCache.allocate(new KvCacheLayout(c.layers(), c.kvHeads(), c.headDim(), capacity, dtype, tileTokens),
        rotation);
  }

  /** Owns {@code cache} from here on: closes it if construction fails. */
  private Transformer(Llama2Checkpoint model, KvCache cache, AttentionConfig attention, int threads,
      Scheduler scheduler) {
    this.cache = cache;
    this.w = model;
    this.config = model.config();
    this.attentionConfig = attention;
    this.capacity = cache.layout().capacity();
    Llama2Checkpoint.Config c = config;
    try {
      // scale 1/sqrt(headDim), as run.c
      this.attention = DecodeAttention.create(cache, c.heads(), threads,
          (float) (1.0 / Math.sqrt(c.headDim())), Objects.requireNonNull(scheduler, "scheduler"));
    } catch (RuntimeException e) {
      cache.close(); // we own the cache: release it when construction fails
      throw e;
    }
    this.totals = AttentionReport.totals(c.heads());
    this.x = new float[c.dim()];
    this.xb = new float[c.dim()];
    this.xb2 = new float[c.dim()];
    this.q = new float[c.dim()];
    this.k = new float[c.kvDim()];
    this.v = new float[c.kvDim()];
    this.hb = new float[c.hiddenDim()];
    this.hb2 = new float[c.hiddenDim()];
    this.logits = new float[c.vocabSize()];
    int pairs = c.headDim() / 2;
    this.invFreq = new float[pairs];
    this.cos = new float[pairs];
    this.sin = new float[pairs];
    for (int i = 0; i < pairs; i++) {
      // run.c: 1.0f / powf(10000.0f, head_dim / (float) head_size), in float
      invFreq[i] = 1.0f / (float) Math.pow(ROPE_THETA, (2 * i) / (float) c.headDim());
    }
  }

  /** The model hyper-parameters. */
  public Llama2Checkpoint.Config config() {
    return config;
  }

  /** KV positions this transformer can hold (the context length). */
  public int capacity() {
    return capacity;
  }

  /** Number of positions currently in the cache (the next position to feed). */
  public int length() {
    return cache.length(0);
  }

  /**
   * The KV cache, borrowed for inspection ({@code layout()}, {@code bytesUsed()}, {@code length(layer)}). Do not
   * append, truncate or close it: this transformer owns it and keeps every layer at the same length.
   */
  public KvCache cache() {
    return cache;
  }

  /** The attention engine, borrowed for inspection ({@code kernels()}, {@code threads()}); do not close it. */
  public DecodeAttention attention() {
    return attention;
  }

  /** Mode and parameters of the attention calls. */
  public AttentionConfig attentionConfig() {
    return attentionConfig;
  }

  /**
   * Sets the mode and parameters of the following attention calls. A runtime may change it at any token (e.g.
   * exact for the prompt, an approximate mode for generation, or exact again when an error bound looks too large):
   * the cache and its summaries serve every mode.
   */
  public void setAttentionConfig(AttentionConfig config) {
    this.attentionConfig = Objects.requireNonNull(config, "config");
  }

  /** Forgets every position, keeping the reserved memory: the next {@link #forward} must use position 0. */
  public void reset() {
    cache.truncate(0);
  }

  /** Sums of the attention reports since construction or the last {@link #resetAttentionTotals()}. */
  public AttentionTotals attentionTotals() {
    long exactKvBytes = totals.keysInContext() * 2 * cache.layout().rowBytes();
    return new AttentionTotals(calls, totals.keysInContext(), totals.keysScored(), totals.tilesRead(),
        totals.kvBytesRead(), exactKvBytes, totals.summaryBytesRead(), totals.sampleBytesRead(), totals.rescales(),
        totals.maxErrorBound());
  }

  /** Zeroes the attention totals. */
  public void resetAttentionTotals() {
    calls = 0;
    totals.reset();
  }

  /**
   * Runs one token through the model at position {@code pos} and returns the next-token logits.
   *
   * <p>{@code pos} must be at most {@link #length()}: equal appends a position; smaller rewinds the cache to
   * {@code pos} first (re-decoding from an earlier point, e.g. after a rejected draft).
   *
   * @return (vocab) logits; a buffer owned by this transformer, overwritten by the next call
   * @throws IndexOutOfBoundsException if the token or the position is out of range
   */
  public float[] forward(int token, int pos) {
    checkToken(token);
    startAt(pos, 1);
    int dim = config.dim();
    System.arraycopy(w.tokenEmbedding, token * dim, x, 0, dim);
    ropeAngles(pos);
    try {
      for (int layer = 0; layer < config.layers(); layer++) {
        projectQkv(layer);
        cache.append(layer, k, v); // k, v: (kvHeads, headDim), stored at position length(layer) = pos
        attendAndProject(layer, pos + 1);
        feedForwardBlock(layer);
      }
    } catch (RuntimeException e) {
      rollBack(pos);
      throw e;
    }
    return logits();
  }

  /**
   * One decode step of several transformers over sequences of one page pool, together: each runs token
   * {@code tokens[i]} at position {@code pos} (as {@link #forward} would), and each layer's attention is one
   * {@link BatchedDecode} call over all of their sequences, so the pages they share (a prompt they were forked from)
   * are read once for all of them (the cascade, in exact mode; other modes run per sequence inside the call). The
   * projections and feed-forward blocks are each transformer's own, operation for operation as in {@link #forward};
   * the attention output equals per-sequence decode up to float32 rounding (docs/ALGORITHM.md, the cascade).
   *
   * @param ts (count) transformers over sequences of {@code batch}'s pool, all at length {@code pos}, all with the
   *     same attention config
   * @param batch the batched attention (its thread count and scheduler apply; one call at a time)
   * @return the logits of each transformer (its own buffer, overwritten by its next step)
   */
  public static float[][] forwardTogether(Transformer[] ts, int count, int[] tokens, int pos, BatchedDecode batch) {
    Objects.requireNonNull(batch, "batch");
    if (count < 1 || count > ts.length || count > tokens.length) {
      throw new IllegalArgumentException("count out of range [1, " + Math.min(ts.length, tokens.length) + "]: "
          + count);
    }
    Transformer first = ts[0];
    KvCache[] seqs = new KvCache[count];
    for (int i = 0; i < count; i++) {
      Transformer t = ts[i];
      if (t.w != first.w || !t.attentionConfig.equals(first.attentionConfig)) {
        throw new IllegalArgumentException("transformers of one step must share weights and attention config: " + i);
      }
      t.checkToken(tokens[i]);
      if (t.length() != pos) {
        throw new IndexOutOfBoundsException("position differs from the length of transformer " + i + ": " + pos
            + " != " + t.length());
      }
      t.startAt(pos, 1);
      seqs[i] = t.cache;
    }
    int dim = first.config.dim();
    float[] qs = new float[count * dim]; // (count, heads, headDim)
    float[] outs = new float[count * dim];
    for (int i = 0; i < count; i++) {
      System.arraycopy(first.w.tokenEmbedding, tokens[i] * dim, ts[i].x, 0, dim);
      ts[i].ropeAngles(pos);
    }
    try {
      for (int layer = 0; layer < first.config.layers(); layer++) {
        for (int i = 0; i < count; i++) {
          Transformer t = ts[i];
          t.projectQkv(layer);
          t.cache.append(layer, t.k, t.v);
          System.arraycopy(t.q, 0, qs, i * dim, dim);
        }
        batch.decode(layer, seqs, qs, outs, first.attentionConfig);
        for (int i = 0; i < count; i++) {
          Transformer t = ts[i];
          System.arraycopy(outs, i * dim, t.xb2, 0, dim);
          batch.report().perSequence(i).addTo(t.totals);
          t.calls++;
          t.projectAttention(layer);
          t.feedForwardBlock(layer);
        }
      }
    } catch (RuntimeException e) {
      for (int i = 0; i < count; i++) {
        ts[i].rollBack(pos);
      }
      throw e;
    }
    float[][] logits = new float[count][];
    for (int i = 0; i < count; i++) {
      logits[i] = ts[i].logits();
    }
    return logits;
  }

  /** Receives the logits of each prefilled position (a buffer reused for the next position). */
  @FunctionalInterface
  public interface PositionLogits {
    void accept(int pos, float[] logits);
  }

  /** {@link #prefill(int[], int, int, PositionLogits)} computing only the last position's logits. */
  public float[] prefill(int[] tokens, int count, int pos) {
    return prefill(tokens, count, pos, null);
  }

  /**
   * Runs {@code tokens[0..count)} at positions {@code pos .. pos+count-1} layer by layer: each layer projects every
   * position, appends their K/V with one batched {@code cache.append(layer, count, k, v)}, attends every position
   * causally with one {@code attention.prefill(layer, q, out, pos, count, config)} (row i sees keys
   * {@code [0, pos + i]}, the {@code decode(layer, q_i, out_i, keys = pos + i + 1)} of the token-by-token path), then
   * runs the output projection and the feed-forward block of each position before the next layer. Per position the arithmetic
   * is that of {@link #forward}, operation for operation; only the loop order changes ({@code PrefillTest}: logits
   * within 1e-5). The logits are bit-identical with the scalar kernels and with warmed-up vector kernels; in a cold
   * JVM the Vector API's {@code EXP} may differ in the last bit between the interpreter and C2.
   *
   * <p>Allocates {@code count * (3 dim + 2 kvDim)} floats of scratch per call (prompt processing, not the per-token
   * path).
   *
   * @param pos first position, at most {@link #length()} (smaller rewinds, as in {@link #forward})
   * @param sink if non-null, receives the logits of every position in order; otherwise only the last position's
   *     logits are computed
   * @return (vocab) logits of the last position; a buffer owned by this transformer
   * @throws IllegalArgumentException if count is not positive or exceeds tokens.length
   * @throws IndexOutOfBoundsException if a token or a position is out of range
   */
  public float[] prefill(int[] tokens, int count, int pos, PositionLogits sink) {
    Objects.requireNonNull(tokens, "tokens");
    if (count <= 0 || count > tokens.length) {
      throw new IllegalArgumentException("count out of range [1, " + tokens.length + "]: " + count);
    }
    for (int i = 0; i < count; i++) {
      checkToken(tokens[i]);
    }
    startAt(pos, count);
    int dim = config.dim(), kvDim = config.kvDim();
    float[] xs = new float[count * dim]; // (count, dim) residual stream of every position
    float[] qs = new float[count * dim]; // (count, heads, headDim) queries of the current layer
    float[] ks = new float[count * kvDim]; // (count, kvHeads, headDim) keys of the current layer
    float[] vs = new float[count * kvDim]; // (count, kvHeads, headDim) values of the current layer
    float[] outs = new float[count * dim]; // (count, heads, headDim) attention outputs of the current layer
    for (int i = 0; i < count; i++) {
      System.arraycopy(w.tokenEmbedding, tokens[i] * dim, xs, i * dim, dim);
    }
    try {
      for (int layer = 0; layer < config.layers(); layer++) {
        for (int i = 0; i < count; i++) {
          System.arraycopy(xs, i * dim, x, 0, dim);
          ropeAngles(pos + i);
          projectQkv(layer);
          System.arraycopy(q, 0, qs, i * dim, dim);
          System.arraycopy(k, 0, ks, i * kvDim, kvDim);
          System.arraycopy(v, 0, vs, i * kvDim, kvDim);
        }
        cache.append(layer, count, ks, vs); // one call for the block: validates, stores, updates summaries
        // one call for the block: row i attends causally to keys [0, pos + i], as forward() would
        attention.prefill(layer, qs, outs, pos, count, attentionConfig);
        attention.report().addTo(totals); // sums over the rows, per-head maxima
        calls += count;
        for (int i = 0; i < count; i++) {
          System.arraycopy(xs, i * dim, x, 0, dim);
          System.arraycopy(outs, i * dim, xb2, 0, dim);
          projectAttention(layer);
          feedForwardBlock(layer);
          System.arraycopy(x, 0, xs, i * dim, dim);
        }
      }
    } catch (RuntimeException e) {
      rollBack(pos);
      throw e;
    }
    for (int i = sink == null ? count - 1 : 0; i < count; i++) {
      System.arraycopy(xs, i * dim, x, 0, dim);
      float[] out = logits();
      if (sink != null) {
        sink.accept(pos + i, out);
      }
    }
    return logits;
  }

  private void checkToken(int token) {
    if (token < 0 || token >= config.vocabSize()) {
      throw new IndexOutOfBoundsException("token out of range [0, " + config.vocabSize() + "): " + token);
    }
  }

  /** Checks that positions [pos, pos + count) can be written, and rewinds the cache to pos. */
  private void startAt(int pos, int count) {
    int length = length();
    if (pos > length || pos < 0) {
      throw new IndexOutOfBoundsException("position out of range [0, " + length + "]: " + pos);
    }
    if (pos + count > capacity) {
      throw new IndexOutOfBoundsException("position out of range [0, " + capacity + "): " + (pos + count - 1)
          + " (context full)");
    }
    if (pos < length) {
      cache.truncate(pos); // rewind: this position and the ones after it are replaced
    }
  }

  /** After a failure part-way through: keep all layers at one length by dropping what was appended. */
  private void rollBack(int pos) {
    if (!cache.isClosed()) {
      cache.truncate(pos);
    }
  }

  /** Final norm and classifier of the residual {@code x} (overwrites x). */
  private float[] logits() {
    rmsnorm(x, x, w.rmsFinal);
    matmul(logits, x, w.wcls, config.dim(), config.vocabSize());
    return logits;
  }

  /** q, k, v = rope(wq * xn), rope(wk * xn), wv * xn with xn = rmsnorm(x), at the angles of ropeAngles. */
  private void projectQkv(int layer) {
    int dim = config.dim(), kvDim = config.kvDim();
    rmsnorm(xb, x, w.rmsAtt[layer]);
    matmul(q, xb, w.wq[layer], dim, dim);
    matmul(k, xb, w.wk[layer], dim, kvDim);
    matmul(v, xb, w.wv[layer], dim, kvDim);
    rope(q);
    rope(k);
  }

  /** x += wo * attention(q) over the first {@code keys} cached positions of {@code layer}. */
  private void attendAndProject(int layer, int keys) {
    attention.decode(layer, q, xb2, keys, attentionConfig);
    attention.report().addTo(totals); // the report is overwritten by the next call: sum it now
    calls++;
    projectAttention(layer);
  }

  /** x += wo * xb2 (the attention output of the current position). */
  private void projectAttention(int layer) {
    int dim = config.dim();
    matmul(xb, xb2, w.wo[layer], dim, dim);
    for (int i = 0; i < dim; i++) {
      x[i] += xb[i];
    }
  }

  /** x += w2 * (silu(w1 * xn) * (w3 * xn)) with xn = rmsnorm(x). */
  private void feedForwardBlock(int layer) {
    int dim = config.dim(), hidden = config.hiddenDim();
    rmsnorm(xb, x, w.rmsFfn[layer]);
    matmul(hb, xb, w.w1[layer], dim, hidden);
    matmul(hb2, xb, w.w3[layer], dim, hidden);
    for (int i = 0; i < hidden; i++) {
      float val = hb[i];
      val *= 1.0f / (1.0f + (float) Math.exp(-val)); // silu, as run.c
      hb[i] = val * hb2[i];
    }
    matmul(xb, hb, w.w2[layer], hidden, dim);
    for (int i = 0; i < dim; i++) {
      x[i] += xb[i];
    }
  }

  /** Fills cos/sin for position {@code pos}; shared by all heads and layers of this token. */
  private void ropeAngles(int pos) {
    for (int i = 0; i < invFreq.length; i++) {
      float angle = pos * invFreq[i];
      cos[i] = (float) Math.cos(angle);
      sin[i] = (float) Math.sin(angle);
    }
  }

  /**
   * Rotates each consecutive pair {@code (2i, 2i+1)} of every head by the position's angle (run.c convention, not
   * the rotate-halves one).
   *
   * @param vec (n, headDim) row-major, q or k
   */
  private void rope(float[] vec) {
    int headDim = config.headDim();
    for (int base = 0; base < vec.length; base += headDim) {
      for (int p = 0; p < invFreq.length; p++) {
        int i = base + 2 * p;
        float v0 = vec[i], v1 = vec[i + 1];
        vec[i] = v0 * cos[p] - v1 * sin[p];
        vec[i + 1] = v0 * sin[p] + v1 * cos[p];
      }
    }
  }

  /**
   * out = weight .* (x / sqrt(mean(x^2) + 1e-5)); out may alias x.
   *
   * @param out (n)
   * @param x (n)
   * @param weight (n)
   */
  static void rmsnorm(float[] out, float[] x, float[] weight) {
    float ss = 0f;
    for (float v : x) {
      ss += v * v;
    }
    ss /= x.length;
    ss += RMS_EPS;
    ss = 1.0f / (float) Math.sqrt(ss);
    for (int j = 0; j < x.length; j++) {
      out[j] = weight[j] * (ss * x[j]);
    }
  }

  /**
   * out = w * x, a plain loop with one float accumulator per row (run.c order).
   *
   * @param out (d)
   * @param x (n)
   * @param w (d, n) row-major
   */
  static void matmul(float[] out, float[] x, float[] w, int n, int d) {
    for (int i = 0; i < d; i++) {
      int row = i * n;
      float val = 0f;
      for (int j = 0; j < n; j++) {
        val += w[row + j] * x[j];
      }
      out[i] = val;
    }
  }

  @Override
  public void close() {
    try {
      attention.close(); // stop the workers first: they must never outlive the cache
    } finally {
      cache.close();
    }
  }

  /**
   * The configuration a mode runs with in this example: the note's defaults for sampled,
   * epsilon 1e-3 for certified, 5 % of the tiles for budgeted, max error 1e-2 for estimated.
   */
  public static AttentionConfig defaultConfig(AttentionMode mode) {
    return AttentionConfig.defaults(mode);
  }
}
