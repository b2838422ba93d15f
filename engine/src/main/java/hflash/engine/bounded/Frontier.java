package hflash.engine.bounded;

import hflash.engine.pass.Tiles;
import hflash.memory.TileSummaries;
import java.util.Arrays;

/**
 * The frontier of the bounded traversal: the unopened nodes (blocks of
 * {@link TileSummaries#BLOCK_TILES} tiles, then tiles) in a binary min-heap by priority, the
 * budgeted mode's parked blocks, each node's score bound per head, and the frontier's mass bound
 * {@code E_h = exp(R_h - m_h) * S_h} kept against a fixed reference {@code R_h} (the largest bound
 * in the frontier: a child's bound never exceeds its parent's) so {@code S_h} never overflows. A
 * node's mass {@code count * exp(UB - R)} is cached with the pair it was computed for.
 */
final class Frontier {

  private final int g;
  private final int tileTokens;
  final int maxTiles; // node ids [0, maxTiles) are tiles, [maxTiles, maxTiles + maxBlocks) blocks
  final int maxBlocks;
  final float[] ub; // (g, maxTiles + maxBlocks): bound of each node, per head of the group
  final long[] heap; // packed (sortable -priority, node id), a binary min-heap
  int heapSize;
  final int[] parked; // budgeted: blocks left unexpanded, still part of the frontier
  int parkedSize;
  final double[] sum; // (g): S_h, frontier mass at the reference, relative to ref
  final float[] ref; // (g): R_h
  private final double[] massOf; // (g, nodes): nodeMass cache, valid for (massUb, massRef)
  private final float[] massUb;
  private final float[] massRef;

  Frontier(int group, int tileTokens, int maxTiles) {
    this.g = group;
    this.tileTokens = tileTokens;
    this.maxTiles = maxTiles;
    this.maxBlocks = maxTiles / TileSummaries.BLOCK_TILES;
    int nodes = maxTiles + maxBlocks;
    this.ub = new float[Math.multiplyExact(group, nodes)];
    this.heap = new long[nodes];
    this.parked = new int[nodes];
    this.sum = new double[group];
    this.ref = new float[group];
    this.massOf = new double[group * nodes];
    this.massUb = new float[group * nodes];
    this.massRef = new float[group * nodes];
    Arrays.fill(massUb, Float.NaN); // NaN equals nothing: no entry is valid before it is computed
  }

  /** Empties the frontier and its sums. */
  void clear() {
    heapSize = 0;
    Arrays.fill(sum, 0);
    Arrays.fill(ref, Float.NEGATIVE_INFINITY);
  }

  /** Nodes in the frontier: the heap's and the parked blocks. */
  int size() {
    return heapSize + parkedSize;
  }

  /** E_h for head i of the group with running max {@code m}: +inf when it does not fit a double, never NaN. */
  double mass(int i, float m) {
    if (sum[i] == 0) {
      return 0;
    }
    return sum[i] * Math.exp((double) ref[i] - m);
  }

  /**
   * count * exp(UB - R) (UB &lt;= R), clamped below at exp(-700): never underestimated. A node's
   * mass is asked for when it joins the frontier, when it leaves and when the sums are re-added;
   * it is a pure function of (UB, R), so it is kept with the pair it was computed for and reused
   * while both are unchanged (Math.exp was a tenth of a budgeted call).
   */
  double nodeMass(int i, int node) {
    int at = i * (maxTiles + maxBlocks) + node;
    float bound = ub[at];
    if (massUb[at] == bound && massRef[at] == ref[i]) {
      return massOf[at];
    }
    int count = node >= maxTiles ? TileSummaries.BLOCK_TILES * tileTokens : tileTokens;
    double mass = count * Math.exp(Math.max((double) bound - ref[i], -700));
    massUb[at] = bound;
    massRef[at] = ref[i];
    massOf[at] = mass;
    return mass;
  }


  /** Keeps R_h the largest bound in the frontier, rescaling S_h. */
  void raiseReference(int i, float bound) {
    if (bound > ref[i]) {
      sum[i] *= Math.exp((double) ref[i] - bound);
      ref[i] = bound;
    }
  }

  void removeMass(int node) {
    for (int i = 0; i < g; i++) {
      sum[i] = Math.max(0, sum[i] - nodeMass(i, node));
    }
  }

  /** Re-adds the frontier's masses from scratch (no cancellation drift). */
  void recomputeSums() {
    Arrays.fill(sum, 0);
    for (int k = 0; k < heapSize + parkedSize; k++) {
      int node = node(k);
      for (int i = 0; i < g; i++) {
        sum[i] += nodeMass(i, node);
      }
    }
  }


  /** Node k of the frontier: the heap's nodes, then the parked blocks. */
  int node(int k) {
    return k < heapSize ? (int) (heap[k] & 0xffffffffL) : parked[k - heapSize];
  }

  float vmax(Tiles tiles, int kh) {
    float vmax = 0;
    TileSummaries s = tiles.summaries();
    for (int k = 0; k < heapSize + parkedSize; k++) {
      int node = node(k);
      vmax = Math.max(vmax, node >= maxTiles ? s.blockVmax(tiles.layer(), kh, node - maxTiles)
          : s.vmax(tiles.layer(), kh, node));
    }
    return vmax;
  }


  /** Best bound over the group's heads, relative to each head's current max. */
  float priority(int node, Tiles tiles, int h0) {
    float p = Float.NEGATIVE_INFINITY;
    for (int i = 0; i < g; i++) {
      p = Math.max(p, ub[i * (maxTiles + maxBlocks) + node] - tiles.max(h0 + i));
    }
    return p;
  }

  static long pack(float priority, int node) {
    int bits = Float.floatToIntBits(-priority); // min-heap on -priority: best first
    int sortable = bits >= 0 ? bits : bits ^ 0x7fffffff;
    return ((long) sortable << 32) | (node & 0xffffffffL);
  }

  int pop() {
    long top = heap[0];
    heap[0] = heap[--heapSize];
    siftDown(0);
    return (int) (top & 0xffffffffL);
  }

  void siftUp(int k) {
    long x = heap[k];
    while (k > 0) {
      int parent = (k - 1) >>> 1;
      if (heap[parent] <= x) {
        break;
      }
      heap[k] = heap[parent];
      k = parent;
    }
    heap[k] = x;
  }

  void siftDown(int k) {
    long x = heap[k];
    int half = heapSize >>> 1;
    while (k < half) {
      int child = 2 * k + 1;
      if (child + 1 < heapSize && heap[child + 1] < heap[child]) {
        child++;
      }
      if (x <= heap[child]) {
        break;
      }
      heap[k] = heap[child];
      k = child;
    }
    heap[k] = x;
  }
}
