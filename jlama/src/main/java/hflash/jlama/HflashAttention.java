package hflash.jlama;

import com.github.tjake.jlama.math.VectorMath;
import com.github.tjake.jlama.model.AbstractModel;
import com.github.tjake.jlama.model.CausalSelfAttention;
import com.github.tjake.jlama.model.DistributedContext;
import com.github.tjake.jlama.safetensors.Config;
import com.github.tjake.jlama.safetensors.DType;
import com.github.tjake.jlama.tensor.AbstractTensor;
import com.github.tjake.jlama.tensor.KvBufferCache;
import com.github.tjake.jlama.tensor.operations.TensorOperationsProvider;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * Jlama's causal self-attention with the cache and the attention on hflash.
 *
 * <p>What stays Jlama's, operation for operation as in 0.8.4's {@code CausalSelfAttention.forward}:
 * the q/k/v projections (the same {@code TensorOperations} calls and chunks, GQA and MHA
 * branches), the biases, RoPE (the half-split "hf permutation" pairs {@code (i, i + d/2)}, and
 * Jlama's frequency index {@code pos * d/2 + kvHead * d + j}, which is the row of position
 * {@code pos + 2 kvHead}: queries and keys of one group get the same shift, so scores see only
 * relative positions, and keeping it keeps q and k bit for bit), the scale ({@code
 * attentionMultiplier} or {@code 1/sqrt(d)}), and the output projection. What changes: the new
 * K/V rows go into the session's hflash cache, and every row's attention is one hflash call per
 * layer (a tiled prefill for a prompt batch, a decode for one token) instead of Jlama's loop per
 * position and query head.
 */
final class HflashAttention extends CausalSelfAttention {

  private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  private final AbstractModel m;
  private final HflashModel hm;
  private final Config c;
  private final DistributedContext dctx;
  private final int layer;
  private final Optional<AbstractTensor> queryBias;
  private final Optional<AbstractTensor> keyBias;
  private final Optional<AbstractTensor> valueBias;
  private final Optional<AbstractTensor> outputBias;
  private final AbstractTensor queryWeights;
  private final AbstractTensor keyWeights;
  private final AbstractTensor valueWeights;
  private final AbstractTensor outputWeights;
  private final int attentionLength; // numHeads * headSize

  HflashAttention(AbstractModel m, int layer, Optional<AbstractTensor> queryBias,
      Optional<AbstractTensor> keyBias, Optional<AbstractTensor> valueBias, AbstractTensor queryWeights,
      AbstractTensor keyWeights, AbstractTensor valueWeights, Optional<AbstractTensor> outputBias,
      AbstractTensor outputWeights) {
    super(m, layer, queryBias, keyBias, valueBias, queryWeights, keyWeights, valueWeights, outputBias, outputWeights);
    this.m = m;
    this.hm = (HflashModel) m;
    this.c = m.getConfig();
    this.dctx = c.dctx();
    this.layer = layer;
    this.queryBias = queryBias;
    this.keyBias = keyBias;
    this.valueBias = valueBias;
    this.outputBias = outputBias;
    this.queryWeights = queryWeights;
    this.keyWeights = keyWeights;
    this.valueWeights = valueWeights;
    this.outputWeights = outputWeights;
    this.attentionLength = c.numberOfHeads * c.headSize;
    if (dctx.headStart != 0 || dctx.headEnd != c.numberOfHeads || dctx.kvSegmentStart != 0
        || dctx.kvSegmentLength != c.kvLength || dctx.attentionSegmentStart != 0
        || dctx.attentionSegmentLength != attentionLength) {
      throw new UnsupportedOperationException("a sharded (distributed) Jlama context is not supported by hflash-jlama: heads "
          + dctx.headStart + ".." + dctx.headEnd + " of " + c.numberOfHeads);
    }
  }

  @Override
  public AbstractTensor forward(AbstractTensor input, int startPosition, KvBufferCache.KvBuffer kvMem,
      Optional<Consumer<List<AbstractTensor>>> tensorReducer) {
    if (input.dims() != 2 || input.shape().last() != c.embeddingLength) {
      throw new IllegalArgumentException("attention input must be (batch, " + c.embeddingLength + "): " + input.shape());
    }
    int n = input.shape().first();
    Session s = hm.hflashSessions().session(kvMem);
    s.checkRange(layer, startPosition, n);
    checkRope(startPosition + n - 1);
    long t0 = System.nanoTime();
    try {
      return attention(input, startPosition, n, s, tensorReducer);
    } finally {
      s.blockNanos += System.nanoTime() - t0;
    }
  }

  private AbstractTensor attention(AbstractTensor input, int startPosition, int n, Session s,
      Optional<Consumer<List<AbstractTensor>>> tensorReducer) {
    try (AbstractTensor queryBatch = m.makeDenseTensor(n, attentionLength);
        AbstractTensor keyBatch = m.makeDenseTensor(n, c.kvLength);
        AbstractTensor valBatch = m.makeDenseTensor(n, c.kvLength);
        AbstractTensor valueBatch = m.makeDenseTensor(n, attentionLength)) {
      project(input, queryBatch, keyBatch, valBatch);
      for (int bi = 0; bi < n; bi++) {
        rope(queryBatch.slice(bi), keyBatch.slice(bi), startPosition + bi);
      }
      Session.Scratch x = s.scratch(n);
      read(queryBatch, n, attentionLength, x.q);
      read(keyBatch, n, c.kvLength, x.k);
      read(valBatch, n, c.kvLength, x.v);
      s.attend(layer, startPosition, n, x.q, x.k, x.v, x.out);
      write(x.out, n, attentionLength, valueBatch);
      return outputProjection(valueBatch, n, tensorReducer);
    }
  }

  /** Jlama's q/k/v projections and biases, the same calls and chunks as stock. */
  private void project(AbstractTensor input, AbstractTensor queryBatch, AbstractTensor keyBatch, AbstractTensor valBatch) {
    if (c.isGQA) {
      VectorMath.pchunk(dctx.attentionSegmentStart, dctx.attentionSegmentLength, (chunkStart, chunkLength) ->
          TensorOperationsProvider.get().dotProductChunk(queryBatch, input, queryWeights, 0, c.embeddingLength, chunkStart, chunkLength));
      VectorMath.pchunk(dctx.kvSegmentStart, dctx.kvSegmentLength, (chunkStart, chunkLength) -> {
        TensorOperationsProvider.get().dotProductChunk(keyBatch, input, keyWeights, 0, c.embeddingLength, chunkStart, chunkLength);
        TensorOperationsProvider.get().dotProductChunk(valBatch, input, valueWeights, 0, c.embeddingLength, chunkStart, chunkLength);
      });
    } else {
      AbstractTensor[] results = {queryBatch, keyBatch, valBatch};
      AbstractTensor[] weights = {queryWeights, keyWeights, valueWeights};
      VectorMath.pchunk(dctx.attentionSegmentStart, dctx.attentionSegmentLength, (chunkStart, chunkLength) ->
          TensorOperationsProvider.get().dotProductBatchChunk(results, input, weights, 0, c.embeddingLength, chunkStart, chunkLength));
    }
    queryBias.ifPresent(b -> TensorOperationsProvider.get().accumulate(queryBatch, b, dctx.attentionSegmentStart, dctx.attentionSegmentLength));
    keyBias.ifPresent(b -> TensorOperationsProvider.get().accumulate(keyBatch, b, dctx.kvSegmentStart, dctx.kvSegmentLength));
    valueBias.ifPresent(b -> TensorOperationsProvider.get().accumulate(valBatch, b, dctx.kvSegmentStart, dctx.kvSegmentLength));
  }

  /** Jlama 0.8.4's RoPE of one position's query and key rows, in place, the same arithmetic. */
  private void rope(AbstractTensor query, AbstractTensor key, int position) {
    if (c.ropeFreqs.isEmpty()) {
      return;
    }
    float[][] rf = c.ropeFreqs.get();
    int headPiece = c.headSize / 2;
    int poffset = position * headPiece;
    if (c.isGQA) {
      for (int h = dctx.headStart; h < dctx.headEnd; h++) {
        int offset = h * c.headSize;
        int goffset = c.maybeMapToGroupHead(h) * c.headSize;
        for (int i = offset, g = goffset; i < offset + headPiece; i++, g++) {
          rotate(query, i, headPiece, rf[poffset + g]);
        }
      }
      for (int h = dctx.groupHeadStart; h < dctx.groupHeadEnd; h++) {
        int offset = h * c.headSize;
        for (int i = offset; i < offset + headPiece; i++) {
          rotate(key, i, headPiece, rf[poffset + i]);
        }
      }
    } else {
      for (int h = dctx.headStart; h < dctx.headEnd; h++) {
        int offset = h * c.headSize;
        for (int i = offset; i < offset + headPiece; i++) {
          float[] f = rf[poffset + i];
          rotate(query, i, headPiece, f);
          rotate(key, i, headPiece, f);
        }
      }
    }
  }

  private static void rotate(AbstractTensor t, int i, int headPiece, float[] f) {
    float x0 = t.get(0, i);
    float x1 = t.get(0, i + headPiece);
    t.set(x0 * f[0] - x1 * f[1], 0, i);
    t.set(x0 * f[1] + x1 * f[0], 0, i + headPiece);
  }

  /**
   * Jlama's frequency table has {@code contextLength * d/2} rows and its index runs ahead of the
   * position by {@code 2 * (heads of the shifted kind - 1)} rows (see the class comment): past
   * that, stock Jlama fails with an array index error; this names the limit instead.
   */
  private void checkRope(int lastPosition) {
    if (c.ropeFreqs.isEmpty()) {
      return;
    }
    int headPiece = c.headSize / 2;
    int shifted = c.isGQA ? c.numberOfKeyValueHeads : c.numberOfHeads;
    long last = (long) lastPosition * headPiece + (long) (shifted - 1) * c.headSize + headPiece - 1;
    int rows = c.ropeFreqs.get().length;
    if (last >= rows) {
      throw new IllegalStateException("position " + lastPosition + " is past Jlama's RoPE table: Jlama 0.8.4 reads row "
          + last + " for it and the table has " + rows + " rows (context length " + c.contextLength
          + ", last usable position " + ((rows - (long) (shifted - 1) * c.headSize - headPiece) / headPiece) + ")");
    }
  }

  /** Jlama's output projection, tensor reducer and output bias, as stock. */
  private AbstractTensor outputProjection(AbstractTensor valueBatch, int n,
      Optional<Consumer<List<AbstractTensor>>> tensorReducer) {
    AbstractTensor result = m.makeDenseTensor(n, c.embeddingLength);
    try (AbstractTensor vq = hm.quantizeForProjection(valueBatch)) {
      VectorMath.pchunk(0, c.embeddingLength, (chunkStart, chunkSize) ->
          TensorOperationsProvider.get().dotProductChunk(result, vq, outputWeights, dctx.attentionSegmentStart,
              dctx.attentionSegmentLength, chunkStart, chunkSize));
      tensorReducer.ifPresent(func -> func.accept(Collections.singletonList(result)));
      outputBias.ifPresent(bias -> TensorOperationsProvider.get().accumulate(result, bias, 0, c.embeddingLength));
    }
    return result;
  }

  /** Rows of a (rows, cols) working tensor into {@code dst} (rows, cols). */
  private static void read(AbstractTensor t, int rows, int cols, float[] dst) {
    if (t.dType() == DType.F32) {
      MemorySegment seg = t.getMemorySegment();
      for (int r = 0; r < rows; r++) {
        MemorySegment.copy(seg, F32_LE, t.getMemorySegmentOffset(t.getOffset(r, 0)), dst, r * cols, cols);
      }
      return;
    }
    for (int r = 0; r < rows; r++) {
      for (int j = 0; j < cols; j++) {
        dst[r * cols + j] = t.get(r, j);
      }
    }
  }

  /** {@code src} (rows, cols) into a (rows, cols) working tensor (rounded to its dtype). */
  private static void write(float[] src, int rows, int cols, AbstractTensor t) {
    if (t.dType() == DType.F32) {
      MemorySegment seg = t.getMemorySegment();
      for (int r = 0; r < rows; r++) {
        MemorySegment.copy(src, r * cols, seg, F32_LE, t.getMemorySegmentOffset(t.getOffset(r, 0)), cols);
      }
      return;
    }
    for (int r = 0; r < rows; r++) {
      for (int j = 0; j < cols; j++) {
        t.set(src[r * cols + j], r, j);
      }
    }
  }
}
