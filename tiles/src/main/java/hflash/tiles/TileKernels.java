package hflash.tiles;

import java.lang.foreign.MemorySegment;

/**
 * The kernels of one attention tile, for a group of {@code g} query heads that share one KV head.
 *
 * <p>A tile is {@code count} consecutive key (or value) rows of one KV head, stored row-major in a
 * {@link MemorySegment} at a byte offset, each row {@code d} elements encoded as {@link TileEncoding} says.
 * Every K and V row of a tile is read from memory once per group, never once per query head: the
 * kernels keep the group's partial results side by side while a row is in registers.
 *
 * <p>Kernels trust their inputs: the engine validates shapes, offsets and values once at its public
 * boundary, so implementations only {@code assert}. {@link ScalarTileKernels} is the reference
 * (the spec); {@code VectorTileKernels} must agree with it within float rounding.
 *
 * <p>Array layouts used below:
 *
 * <pre>
 * q      (g, d) row-major at qOff, already multiplied by the softmax scale
 * K tile, V tile  the cache's tile layout ({@code hflash.memory.TileLayout}; restated for the kernels in TileFormat)
 * s      (g, sStride) row-major: s[h*sStride + j] is head h's value for key j of the tile
 * acc    (g, d) row-major at accOff
 * </pre>
 */
public interface TileKernels {

  /** Short name for logs and reports, e.g. {@code "vector-512"} or {@code "scalar"}. */
  String name();

  /** Lane width in bits of the float vectors, 0 for the scalar kernels. */
  int bitSize();

  /**
   * The register blocking of the score and p.V kernels, for reports: {@code "4x4-block-pairs"}
   * (512 bits, 32 registers), {@code "4x4"} (narrower lanes, 32 registers), {@code "2x4"} (16
   * registers: AVX2, SSE) or {@code "scalar"}. See docs/KERNELS.md.
   */
  default String shape() {
    return "scalar";
  }

  /**
   * Scores: {@code s[h*sStride + j] = q[qOff + h*d ..] . K[j]} for {@code h < g}, {@code j < count}.
   *
   * <p>The K tile starts at byte offset {@code kOff} and is laid out as the cache's {@code TileLayout} says:
   * blocks of 32 keys, column-major inside a block. Kernels compute whole key blocks, so they may
   * write scores for keys {@code [count, roundUp(count, 32))} too ({@code sStride} must leave room);
   * that memory belongs to the tile and holds finite values, and callers ignore those entries.
   */
  void scores(float[] q, int qOff, int g, int d, MemorySegment k, long kOff, TileEncoding dtype, int count,
      float[] s, int sStride);

  /** Largest of {@code x[off .. off+n)}; {@code -Infinity} when n == 0. */
  float max(float[] x, int off, int n);

  /** In place {@code x[i] = exp(x[i] - m)} over {@code [off, off+n)}; returns the sum of the new values. */
  float expSum(float[] x, int off, int n, float m);

  /**
   * Weighted value accumulation: {@code acc[accOff + h*d + c] += sum_j p[h*pStride + j] * V[j][c]}
   * for {@code h < g}, {@code c < d}, {@code j < count}. The V tile of {@code tileTokens} keys
   * starts at byte offset {@code vOff}, laid out as the cache's {@code TileLayout} says (blocks of 32 channels,
   * row-major inside a block).
   */
  void accumulate(float[] p, int pStride, int g, int d, MemorySegment v, long vOff, TileEncoding dtype,
      int count, int tileTokens, float[] acc, int accOff);

  /** In place {@code x[i] *= a} over {@code [off, off+n)} (the online-softmax rescale). */
  void scale(float[] x, int off, int n, float a);

  /**
   * Bound terms of one tile summary for one query (see {@code hflash.memory.TileSummaries}): the
   * box record at byte offset {@code box} holds {@code lo[d], hi[d]} in {@code dtype}, the ball
   * record at {@code ball} starts with the f32 {@code centroid[d]}. Writes
   *
   * <pre>
   * out[o]     = sum_c max(q_c lo_c, q_c hi_c)        box bound: &gt;= q.k for every key of the tile
   * out[o + 1] = sum_c |q_c| max(|lo_c|, |hi_c|)      &gt;= sum_c |q_c k_c|: scales the rounding slack
   * out[o + 2] = q . centroid
   * </pre>
   */
  void nodeBounds(float[] q, int qOff, int d, MemorySegment rec, long box, long ball, TileEncoding dtype,
      float[] out, int o);

  /**
   * Dot products of {@code g} query heads with {@code count} f32 rows of length d spaced
   * {@code rowStrideBytes} apart from byte offset {@code off}: {@code s[h*sStride + j]}. Used for
   * the sampled-max estimator over the strided sample store.
   */
  void rowScores(float[] q, int qOff, int g, int d, MemorySegment rows, long off,
      long rowStrideBytes, int count, float[] s, int sStride);

  /**
   * Which native decode kernel {@link #decodeTiles} runs: {@code "avx512"}, {@code "avx2"}, or
   * null for the Java composition of the kernels above.
   */
  default String nativeVariant() {
    return null;
  }

  /**
   * Exact online softmax over a list of whole tiles of one KV head for its group of {@code g} query
   * heads, in list order: per tile, the scores ({@link #scores}), each head's max raised (rescaling
   * {@code l} and {@code acc} by {@code exp(m - m')} when they hold mass), the weights
   * {@code exp(s - m')} summed into {@code l} ({@link #max}, {@link #expSum}, {@link #scale}), and
   * their p.V summed into a zeroed per-tile buffer that is then added to {@code acc}
   * ({@link #accumulate}). This default composes those kernels in exactly that order (the engine's
   * per-tile loop, bit for bit); a native implementation does the whole list in one downcall,
   * prefetching the next listed tile.
   *
   * <p>Listed tile {@code i} starts at byte {@code offsets[i]} of {@code k} and of {@code v} (a
   * paged sequence's tiles lie wherever its page table put them) and holds {@code counts[i]} keys
   * (1 to {@code tileTokens}).
   *
   * @param q (g, d) at {@code qOff}, already multiplied by the softmax scale
   * @param offsets (n) byte offsets of the listed tiles
   * @param counts (n) keys of the listed tiles
   * @param m running max of head i at {@code m[mOff + i]}; {@code l} likewise
   * @param acc (g, d) at {@code accOff}
   * @param scratch at least {@code g * tileTokens + g * d} floats
   * @return how many (tile, head) steps rescaled a non-empty accumulator
   */
  default int decodeTiles(float[] q, int qOff, int g, int d, MemorySegment k, MemorySegment v, TileEncoding enc,
      int tileTokens, long[] offsets, int[] counts, int n, float[] m, float[] l, int mOff, float[] acc, int accOff,
      float[] scratch) {
    int tileAcc = g * tileTokens;
    int gd = g * d;
    int rescales = 0;
    for (int i = 0; i < n; i++) {
      int cnt = counts[i];
      long off = offsets[i];
      scores(q, qOff, g, d, k, off, enc, cnt, scratch, tileTokens);
      for (int h = 0; h < g; h++) {
        float tileMax = max(scratch, h * tileTokens, cnt);
        int mh = mOff + h;
        if (tileMax > m[mh]) {
          if (l[mh] != 0f) { // the accumulator holds mass: rescale it to the new max
            float alpha = (float) Math.exp(m[mh] - tileMax);
            l[mh] *= alpha;
            scale(acc, accOff + h * d, d, alpha);
            rescales++;
          }
          m[mh] = tileMax;
        }
        l[mh] += expSum(scratch, h * tileTokens, cnt, m[mh]);
      }
      java.util.Arrays.fill(scratch, tileAcc, tileAcc + gd, 0f);
      accumulate(scratch, tileTokens, g, d, v, off, enc, cnt, tileTokens, scratch, tileAcc);
      for (int c = 0; c < gd; c++) { // element-wise: C2 vectorizes it, same bits in every tier
        acc[accOff + c] += scratch[tileAcc + c];
      }
    }
    return rescales;
  }
}
