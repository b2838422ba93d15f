package hflash.tiles;

import static hflash.tiles.VectorLoads.F16;
import static hflash.tiles.VectorLoads.F32;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.VectorSpecies;

/**
 * The score kernels of {@link VectorTileKernels} over float tiles (f32, bf16, f16): one K block
 * row (32 keys of one channel, see {@link TileFormat}) per channel step, swept over the d
 * channels, with the scores of a few key vectors for four query heads (or one) held in registers.
 * The shapes are {@link VectorFloatShapes}' (the same sweep with w = q and rows = K block rows),
 * shared with the p.V kernels; this class picks them by register budget
 * ({@link VectorConstants#WIDE}), L = lanes per vector:
 *
 * <ul>
 *   <li>4 key vectors x 4 heads = 16 accumulators + 4 keys + 1 broadcast = 21 vector registers:
 *       needs 32 (AVX-512 at any width, NEON). Per channel step 16 FMAs share 4 loads and 4
 *       broadcasts: the loop overhead (bounds checks, address arithmetic) is spread over twice the
 *       FMAs of the 2 x 4 shape, which keeps two FMA pipes fed.
 *   <li>2 key vectors x 4 heads = 8 accumulators, 11 registers: fits AVX2's 16; 8 independent FMA
 *       chains hide a 4-cycle latency on two pipes.
 *   <li>2 key vectors x 1 head, 4 registers (groups that are not a multiple of 4).
 * </ul>
 *
 * <p>Key vectors come in pairs: two consecutive f32 vectors, or the low and high halves of one
 * vector of 16-bit words (keys w.. and w + 16..), so the 16-bit shapes load half as many vectors.
 * The pairs are given by byte offsets from the step's address, so one kernel serves every width
 * and encoding: at 512 bits a block row is one f32 pair (4 x 4 then takes two blocks at once), at
 * 256 two, at 128 four (two sweeps).
 *
 * <p>Arithmetic per score lane: {@code acc = fma(k_c, q_c, acc)} for c = 0 .. d-1 in order, the
 * scalar twin's order, so the bits equal {@link ScalarTileKernels#scores}; for f16 the key comes
 * out times 2^-112 and q carries the 2^112 ({@link VectorLoads#rebias}).
 */
final class VectorScoreKernels {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final int L = F.length();
  private static final int KB = TileFormat.KEY_BLOCK;
  private static final int SPAN = TileFormat.PAIR_SPAN;
  private static final boolean WIDE = VectorConstants.WIDE;
  private static final boolean PAIR_BLOCKS = VectorConstants.PAIR_BLOCKS;
  private static final ScalarTileKernels SCALAR = new ScalarTileKernels();

  private VectorScoreKernels() {}

  /** {@link TileKernels#scores} for a float encoding. */
  static void scores(float[] q, int qOff, int g, int d, MemorySegment k, long kOff, TileEncoding e,
      int count, float[] s, int sStride) {
    int enc = VectorLoads.of(e);
    if (enc == F16) {
      // fold the 2^112 of the widening into a copy of q; when that copy overflows (|q| >= 2^16,
      // no real query) the reference kernel gives the same bits
      float[] qs = VectorLoads.rebias(q, qOff, g, d, d);
      if (qs == null) {
        SCALAR.scores(q, qOff, g, d, k, kOff, e, count, s, sStride);
        return;
      }
      q = qs;
      qOff = 0;
    }
    // a run of a block row in 4-byte units (f32 elements or 16-bit word pairs), the units that make
    // one low/high pair of key vectors, and the keys of the high vector
    boolean f32 = enc == F32;
    int words = f32 ? KB : SPAN, pairWords = f32 ? 2 * L : L, hiKeys = f32 ? L : SPAN;
    int blocks = (count + KB - 1) / KB;
    long blockBytes = (long) KB * d * e.bytes();
    for (int b = 0; b < blocks; ) {
      // at 512 bits a block row is one f32 vector pair: the 4 x 4 shape takes two blocks at once
      int unit = PAIR_BLOCKS && b + 1 < blocks ? 2 : 1;
      long at = kOff + b * blockBytes;
      int h = 0;
      for (; h + 4 <= g; h += 4) {
        int q0 = qOff + h * d, j = h * sStride + b * KB;
        if (unit == 2) {
          VectorFloatShapes.scores4Vec4Heads(enc, q, q0, d, d, k, at, blockBytes, s, sStride, j, j + hiKeys,
              j + KB, j + KB + hiKeys);
        } else if (WIDE && words >= 2 * pairWords) { // 4 x 4 inside one block: 256 and 128 bits
          for (int w = 0; w < words; w += 2 * pairWords) {
            VectorFloatShapes.scores4Vec4Heads(enc, q, q0, d, d, k, at + 4L * w, 4L * pairWords, s, sStride,
                j + w, j + w + hiKeys, j + w + pairWords, j + w + pairWords + hiKeys);
          }
        } else {
          for (int w = 0; w < words; w += pairWords) {
            VectorFloatShapes.scores2Vec4Heads(enc, q, q0, d, d, k, at + 4L * w, s, sStride, j + w,
                j + w + hiKeys);
          }
        }
      }
      for (; h < g; h++) {
        for (int u = 0; u < unit; u++) {
          int q0 = qOff + h * d, j = h * sStride + (b + u) * KB;
          for (int w = 0; w < words; w += pairWords) {
            VectorFloatShapes.scores2Vec1Head(enc, q, q0, d, k, at + u * blockBytes + 4L * w, s, j + w,
                j + w + hiKeys);
          }
        }
      }
      b += unit;
    }
  }
}
