package hflash.engine;

import hflash.engine.pass.Encodings;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.tiles.PrefillKernels;
import hflash.tiles.TileKernels;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * One thread's share of a batched exact decode ({@link BatchedDecode}): a run of work units, each
 * one page of one KV head attended by the query rows of every sequence of the batch that holds
 * that page. Holds the thread's scratch and one partial {@link AttentionState} per sequence.
 *
 * <pre>
 * unit (page p, KV head kh, members b_1..b_m):  rows = m * g, row (i, x) = query head kh*g + x of b_i
 *   qb (rows, d)       the members' scaled queries
 *   per tile t of p:   S = qb . K_t^T   (rows, keys)   the prefill micro-kernels, K_t widened once for all rows
 *                      per row: online-softmax step (AttentionState), S -> weights
 *                      acc += P . V_t                  V_t widened once for all rows
 *   then each row's (m, l, acc) merges into its sequence's partial state (AttentionState#merge's rule)
 * </pre>
 *
 * A page only one sequence holds (rows = g) runs on the decode kernels, which read the tile in
 * place: widening a tile for four rows would cost more than it saves. Per row and tile the
 * arithmetic is the decode path's (same scores, max, exp and per-tile p.V partial); what differs
 * from one decode call is where partial states merge (per page here, per split-K chunk there), so
 * the output is within float32 rounding of it, not bit-equal.
 */
final class CascadeLane {

  /** Query rows of one register-blocked pass: members beyond maxRows / g go in a second pass. */
  static final int MAX_ROWS = 256;

  private final TileKernels kernels;
  private final PrefillKernels prefill; // null: decode kernels only (block dtypes, or the A/B property)
  private final KvCacheLayout layout;
  private final int numHeads;
  private final int d;
  private final int g;
  private final int tileTokens;
  private final int sStride;
  private final float[] q; // (MAX_ROWS, d)
  private final float[] s; // (MAX_ROWS, sStride)
  private final float[] kf;
  private final float[] vf;
  private final float[] tileAcc; // (MAX_ROWS, d) decode kernels' per-tile partial
  private final AttentionState unit; // (MAX_ROWS) rows of the current unit
  private final float[] rowMax; // (MAX_ROWS) each row's max over the current tile
  private final float[] rowSums; // (MAX_ROWS) each row's sum of weights over the current tile
  AttentionState[] states = new AttentionState[0]; // (batch) this lane's partial state per sequence
  long[] keysScored = new long[0]; // (batch)
  long[] fmas = new long[0];
  long[] tiles = new long[0];
  double[] bytesShare = new double[0]; // (batch) K/V bytes attributed: a shared page's bytes / members
  long kvBytes; // K/V bytes this lane actually read
  long rescales;
  CascadeHandoff handoff; // set while this lane is unit 1 (the K side) of a pipeline, else null

  CascadeLane(TileKernels kernels, KvCacheLayout layout, int numHeads) {
    this.kernels = kernels;
    this.prefill = PrefillKernels.select(kernels, Encodings.of(layout.dtype()));
    this.layout = layout;
    this.numHeads = numHeads;
    this.d = layout.headDim();
    this.g = numHeads / layout.kvHeads();
    this.tileTokens = layout.tileTokens();
    this.sStride = PrefillKernels.roundUp(tileTokens);
    int rows = Math.max(MAX_ROWS / g * g, g);
    this.q = new float[rows * d];
    this.s = new float[rows * sStride];
    this.kf = new float[prefill == null ? 0 : PrefillKernels.keyScratch(tileTokens, d)];
    this.vf = new float[prefill == null ? 0 : PrefillKernels.valueScratch(tileTokens, d)];
    this.tileAcc = new float[rows * d];
    this.unit = new AttentionState(rows, d);
    this.rowMax = new float[rows];
    this.rowSums = new float[rows];
  }

  /** Sizes and resets the per-sequence states and counters for a batch of {@code batch}. */
  void reset(int batch) {
    if (states.length < batch) {
      states = Arrays.copyOf(states, batch);
      keysScored = new long[batch];
      fmas = new long[batch];
      tiles = new long[batch];
      bytesShare = new double[batch];
    }
    for (int b = 0; b < batch; b++) {
      if (states[b] == null) {
        states[b] = new AttentionState(numHeads, d);
      }
      states[b].reset();
      keysScored[b] = fmas[b] = tiles[b] = 0;
      bytesShare[b] = 0;
    }
    kvBytes = rescales = 0;
  }

  /**
   * Unit: keys [first, first + keys) of page table entry {@code entry} of KV head kh, for the
   * sequences {@code members[0 .. m)} (all holding the same page there with the same keys).
   *
   * @param qs (batch, numHeads, d) scaled (and rotated) queries
   * @param owner a member whose page table locates the page's tiles
   */
  void unit(KvCache owner, MemorySegment k, MemorySegment v, int layer, int kh, int firstTile, int keys,
      int[] members, int m, float[] qs, DecodeAttention.CancelFlag cancel) {
    int perPass = Math.max(1, MAX_ROWS / g);
    for (int from = 0; from < m; from += perPass) {
      int to = Math.min(m, from + perPass);
      pass(owner, k, v, layer, kh, firstTile, keys, members, from, to, m, qs, cancel);
    }
  }

  private void pass(KvCache owner, MemorySegment k, MemorySegment v, int layer, int kh, int firstTile, int keys,
      int[] members, int from, int to, int m, float[] qs, DecodeAttention.CancelFlag cancel) {
    int rows = (to - from) * g;
    for (int i = from; i < to; i++) { // gather the members' group rows: (rows, d)
      System.arraycopy(qs, (members[i] * numHeads + kh * g) * d, q, (i - from) * g * d, g * d);
    }
    unit.reset(0, rows);
    boolean micro = prefill != null && rows > g;
    CascadeHandoff h = handoff;
    int tilesHere = (keys + tileTokens - 1) / tileTokens;
    for (int t = 0; t < tilesHere; t++) {
      cancel.check();
      int count = Math.min(tileTokens, keys - t * tileTokens);
      long off = hflash.memory.internal.KvCacheInternals.tileOffset(owner, layer, kh, firstTile + t);
      CascadeHandoff.Slot slot = h == null ? null : h.free();
      float[] w = slot == null ? s : slot.weights;
      float[] alphas = slot == null ? null : slot.alphas;
      if (micro) { // the row maxima come out of the score kernel, the weights out of one call for all rows
        prefill.widenKeys(k, off, Encodings.of(layout.dtype()), d, count, kf);
        prefill.scores(q, 0, rows, d, kf, count, w, sStride, rowMax);
        rescales += unit.absorbRows(kernels, prefill, rows, w, sStride, count, rowMax, rowSums, alphas);
      } else {
        kernels.scores(q, 0, rows, d, k, off, Encodings.of(layout.dtype()), count, w, sStride);
        rescales += unit.absorbScores(kernels, 0, rows, w, sStride, count, alphas);
      }
      if (slot != null) { // unit 2 rescales and adds P . V
        slot.end = false;
        slot.rows = rows;
        slot.count = count;
        slot.offset = off;
        slot.micro = micro;
        h.publish();
      } else {
        accumulate(v, off, micro, rows, count, s, unit.acc);
      }
      kvBytes += 2L * count * layout.rowBytes();
      double share = 2.0 * count * layout.rowBytes() / m;
      for (int i = from; i < to; i++) {
        int b = members[i];
        keysScored[b] += count;
        tiles[b]++;
        fmas[b] += (long) count * g * (2L * d + AttentionReport.EXP_FMAS);
        bytesShare[b] += share;
      }
    }
    if (h != null) { // unit 2 merges once it has applied every tile of the pass
      CascadeHandoff.Slot slot = h.free();
      slot.end = true;
      slot.rows = rows;
      System.arraycopy(unit.m, 0, slot.m, 0, rows);
      System.arraycopy(unit.l, 0, slot.l, 0, rows);
      slot.members = members;
      slot.from = from;
      slot.to = to;
      slot.kvHead = kh;
      h.publish();
      return;
    }
    mergeInto(members, from, to, kh);
  }

  /** Each member's rows of the unit state into its partial state. */
  private void mergeInto(int[] members, int from, int to, int kh) {
    for (int i = from; i < to; i++) {
      AttentionState dst = states[members[i]];
      for (int x = 0; x < g; x++) {
        mergeRow(dst, kh * g + x, unit, (i - from) * g + x, d);
      }
    }
  }

  /** acc (rows, d) += P . V of the tile at {@code off}: the micro-kernels, or the decode kernels' per-tile partial. */
  private void accumulate(MemorySegment v, long off, boolean micro, int rows, int count, float[] w, float[] acc) {
    if (micro) {
      prefill.widenValues(v, off, Encodings.of(layout.dtype()), d, count, tileTokens, vf);
      prefill.accumulate(w, sStride, rows, d, vf, tileTokens, count, acc, 0);
    } else {
      Arrays.fill(tileAcc, 0, rows * d, 0f);
      kernels.accumulate(w, sStride, rows, d, v, off, Encodings.of(layout.dtype()), count, tileTokens, tileAcc, 0);
      for (int x = 0; x < rows * d; x++) { // element-wise, as TileLoop.accumulateTile
        acc[x] += tileAcc[x];
      }
    }
  }

  /**
   * Unit 2 (the V side) of a pipeline: applies every slot unit 1 publishes on {@code h} until it
   * finishes: a tile's rescale factors and {@code P . V} into this lane's unit accumulator, a
   * pass end's max and sum, then the merge into this lane's per-sequence states. The operations
   * and their order are the serial cascade's.
   */
  void consume(CascadeHandoff h, MemorySegment v) {
    unit.reset();
    for (CascadeHandoff.Slot slot; (slot = h.next()) != null; h.release()) {
      int rows = slot.rows;
      if (slot.end) {
        System.arraycopy(slot.m, 0, unit.m, 0, rows);
        System.arraycopy(slot.l, 0, unit.l, 0, rows);
        mergeInto(slot.members, slot.from, slot.to, slot.kvHead);
        unit.reset(0, rows);
        continue;
      }
      for (int i = 0; i < rows; i++) {
        float a = slot.alphas[i];
        if (a != 1f) {
          kernels.scale(unit.acc, i * d, d, a);
        }
      }
      accumulate(v, slot.offset, slot.micro, rows, slot.count, slot.weights, unit.acc);
    }
  }

  /** Rows of one pass (the hand-off's slot size). */
  int maxRows() {
    return unit.m.length;
  }

  int scoreStride() {
    return sStride;
  }

  /** Row hs of src into row hd of dst: {@link AttentionState#merge}'s rule for one head. */
  static void mergeRow(AttentionState dst, int hd, AttentionState src, int hs, int d) {
    float ls = src.l[hs];
    if (ls == 0f) {
      return;
    }
    float ld = dst.l[hd];
    if (ld == 0f) {
      dst.m[hd] = src.m[hs];
      dst.l[hd] = ls;
      System.arraycopy(src.acc, hs * d, dst.acc, hd * d, d);
      return;
    }
    float mNew = Math.max(dst.m[hd], src.m[hs]);
    float sa = (float) Math.exp(dst.m[hd] - mNew); // one of sa, sb is exactly 1
    float sb = (float) Math.exp(src.m[hs] - mNew);
    dst.l[hd] = ld * sa + ls * sb;
    for (int c = 0; c < d; c++) {
      dst.acc[hd * d + c] = dst.acc[hd * d + c] * sa + src.acc[hs * d + c] * sb;
    }
    dst.m[hd] = mNew;
  }
}
