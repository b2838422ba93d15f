package hflash.tiles;

import static hflash.tiles.VectorLoads.BF16;
import static hflash.tiles.VectorLoads.F16;
import static hflash.tiles.VectorLoads.F32;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The p.V kernels of {@link VectorTileKernels} over float tiles (f32, bf16, f16): one V block of
 * 32 channels (row-major, see {@link TileFormat}) swept key by key, a few channel vectors of four
 * heads' accumulators (or one head's) held in registers for the whole tile: acc is loaded and
 * stored once per tile. Each shape is written once; the encoding only changes the load step
 * ({@link VectorLoads#word}, {@link VectorLoads#low}, {@link VectorLoads#high}).
 *
 * <p>Shapes as the score kernels ({@link VectorScoreKernels}): {@link #accumulate4Vec4Heads}
 * (4 channel vectors x 4 heads: 16 accumulators, 21 registers), {@link #accumulate2Vec4Heads}
 * (8 accumulators, 11 registers), {@link #accumulate2Vec1Head} (4 registers). At 512 bits a block
 * row is two f32 vectors, so 4 x 4 takes two channel blocks at once. Full 16-bit blocks are paired
 * (word w = channels w and w + 16); the narrow last block of a head dimension that is not a
 * multiple of 32 keeps the natural order and goes through {@link #natural4Heads} /
 * {@link #natural1Head}.
 *
 * <p>Per channel: {@code acc = fma(v_j, p_j, acc)} for keys j in order, the scalar twin's order.
 * f16 values come out times 2^-112; the caller has scaled p by 2^112.
 */
final class VectorValueKernels {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final int L = F.length();
  private static final int CB = TileFormat.CHANNEL_BLOCK;
  private static final int SPAN = TileFormat.PAIR_SPAN;
  private static final boolean WIDE = VectorConstants.WIDE;
  private static final boolean PAIR_BLOCKS = VectorConstants.PAIR_BLOCKS;
  private static final ScalarTileKernels SCALAR = new ScalarTileKernels();
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

  private VectorValueKernels() {}

  /** {@link TileKernels#accumulate} for a float encoding. */
  static void accumulate(float[] p, int pStride, int g, int d, MemorySegment v, long vOff,
      TileEncoding e, int count, int tileTokens, float[] acc, int accOff) {
    int enc = VectorLoads.of(e);
    if (enc == F16) {
      float[] ps = VectorLoads.rebias(p, 0, g, count, pStride);
      if (ps == null) { // a weight of 2^16 or more (sampled mode's guard allows e^20): the reference
        SCALAR.accumulate(p, pStride, g, d, v, vOff, e, count, tileTokens, acc, accOff);
        return;
      }
      p = ps;
    }
    // as in VectorScoreKernels.scores: a block row in 4-byte units, the units of one low/high
    // pair of channel vectors, and the columns of the high vector (VectorLoads.word, low, high)
    boolean f32 = enc == F32;
    int words = f32 ? CB : SPAN, pairWords = f32 ? 2 * L : L, hiCols = f32 ? L : SPAN;
    long rowBytes = (long) CB * e.bytes();
    int bytes = e.bytes();
    long blockBytes = (long) CB * tileTokens * bytes; // one full channel block of the tile
    int blocks = (d + CB - 1) / CB;
    for (int cb = 0; cb < blocks; ) {
      int c0 = cb * CB;
      int w = TileFormat.valueBlockWidth(cb, d);
      long at = vOff + c0 * (long) tileTokens * bytes;
      if (w < CB) { // the narrow last block: natural order
        int h = 0;
        for (; h + 4 <= g; h += 4) {
          natural4Heads(p, h * pStride, pStride, w, v, at, e, count, acc, accOff + h * d + c0, d);
        }
        for (; h < g; h++) {
          natural1Head(p, h * pStride, w, v, at, e, count, acc, accOff + h * d + c0);
        }
        cb++;
        continue;
      }
      int unit = PAIR_BLOCKS && cb + 1 < blocks && TileFormat.valueBlockWidth(cb + 1, d) == CB ? 2 : 1;
      int h = 0;
      for (; h + 4 <= g; h += 4) {
        int p0 = h * pStride, a0 = accOff + h * d;
        if (unit == 2) {
          accumulate4Vec4Heads(enc, p, p0, pStride, v, at, blockBytes, rowBytes, count, acc, a0, d, c0, c0 + hiCols,
              c0 + CB, c0 + CB + hiCols);
        } else if (WIDE && words >= 2 * pairWords) { // 4 x 4 inside one block: 256 and 128 bits
          for (int x = 0; x < words; x += 2 * pairWords) {
            int c = c0 + x;
            accumulate4Vec4Heads(enc, p, p0, pStride, v, at + 4L * x, 4L * pairWords, rowBytes, count, acc, a0, d,
                c, c + hiCols, c + pairWords, c + pairWords + hiCols);
          }
        } else {
          for (int x = 0; x < words; x += pairWords) {
            accumulate2Vec4Heads(enc, p, p0, pStride, v, at + 4L * x, rowBytes, count, acc, a0, d, c0 + x,
                c0 + x + hiCols);
          }
        }
      }
      for (; h < g; h++) {
        for (int u = 0; u < unit; u++) {
          int a = accOff + h * d + c0 + u * CB;
          for (int x = 0; x < words; x += pairWords) {
            accumulate2Vec1Head(enc, p, h * pStride, v, at + u * blockBytes + 4L * x, rowBytes, count, acc, a + x,
                a + x + hiCols);
          }
        }
      }
      cb += unit;
    }
  }

  /**
   * 4 channel vectors x 4 heads, 16 accumulators, 21 vector registers, over {@code count} keys.
   * Channel vectors: two vector pairs ({@link VectorLoads#word}, {@link VectorLoads#low}, {@link VectorLoads#high}: low and high vector) at {@code at}
   * and {@code at + o2}, each {@code + j * rowBytes} at key j, accumulator columns {@code c_i};
   * heads: p rows p0 + h pStride, acc rows a0 + h d.
   */
  static void accumulate4Vec4Heads(int enc, float[] p, int p0, int pStride, MemorySegment v, long at,
      long o2, long rowBytes, int count, float[] acc, int a0, int d, int c0, int c1, int c2, int c3) {
    int p1 = p0 + pStride, p2 = p1 + pStride, p3 = p2 + pStride;
    int b0 = a0, b1 = b0 + d, b2 = b1 + d, b3 = b2 + d;
    FloatVector x00 = FloatVector.fromArray(F, acc, b0 + c0), x01 = FloatVector.fromArray(F, acc, b0 + c1), x02 = FloatVector.fromArray(F, acc, b0 + c2), x03 = FloatVector.fromArray(F, acc, b0 + c3);
    FloatVector x10 = FloatVector.fromArray(F, acc, b1 + c0), x11 = FloatVector.fromArray(F, acc, b1 + c1), x12 = FloatVector.fromArray(F, acc, b1 + c2), x13 = FloatVector.fromArray(F, acc, b1 + c3);
    FloatVector x20 = FloatVector.fromArray(F, acc, b2 + c0), x21 = FloatVector.fromArray(F, acc, b2 + c1), x22 = FloatVector.fromArray(F, acc, b2 + c2), x23 = FloatVector.fromArray(F, acc, b2 + c3);
    FloatVector x30 = FloatVector.fromArray(F, acc, b3 + c0), x31 = FloatVector.fromArray(F, acc, b3 + c1), x32 = FloatVector.fromArray(F, acc, b3 + c2), x33 = FloatVector.fromArray(F, acc, b3 + c3);
    for (int j = 0; j < count; j++) {
      long row = at + j * rowBytes;
      IntVector x = VectorLoads.word(v, row), y = VectorLoads.word(v, row + o2);
      FloatVector v0 = VectorLoads.low(enc, x);
      FloatVector v1 = VectorLoads.high(enc, x, v, row);
      FloatVector v2 = VectorLoads.low(enc, y);
      FloatVector v3 = VectorLoads.high(enc, y, v, row + o2);
      FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
      x00 = v0.fma(b, x00);
      x01 = v1.fma(b, x01);
      x02 = v2.fma(b, x02);
      x03 = v3.fma(b, x03);
      b = FloatVector.broadcast(F, p[p1 + j]);
      x10 = v0.fma(b, x10);
      x11 = v1.fma(b, x11);
      x12 = v2.fma(b, x12);
      x13 = v3.fma(b, x13);
      b = FloatVector.broadcast(F, p[p2 + j]);
      x20 = v0.fma(b, x20);
      x21 = v1.fma(b, x21);
      x22 = v2.fma(b, x22);
      x23 = v3.fma(b, x23);
      b = FloatVector.broadcast(F, p[p3 + j]);
      x30 = v0.fma(b, x30);
      x31 = v1.fma(b, x31);
      x32 = v2.fma(b, x32);
      x33 = v3.fma(b, x33);
    }
    x00.intoArray(acc, b0 + c0);
    x01.intoArray(acc, b0 + c1);
    x02.intoArray(acc, b0 + c2);
    x03.intoArray(acc, b0 + c3);
    x10.intoArray(acc, b1 + c0);
    x11.intoArray(acc, b1 + c1);
    x12.intoArray(acc, b1 + c2);
    x13.intoArray(acc, b1 + c3);
    x20.intoArray(acc, b2 + c0);
    x21.intoArray(acc, b2 + c1);
    x22.intoArray(acc, b2 + c2);
    x23.intoArray(acc, b2 + c3);
    x30.intoArray(acc, b3 + c0);
    x31.intoArray(acc, b3 + c1);
    x32.intoArray(acc, b3 + c2);
    x33.intoArray(acc, b3 + c3);
  }

  /**
   * 2 channel vectors (one vector pair at {@code at}: the low vector to columns c0, the high one to
   * c1) x 4 heads, 8 accumulators, 11 vector registers.
   */
  static void accumulate2Vec4Heads(int enc, float[] p, int p0, int pStride, MemorySegment v, long at,
      long rowBytes, int count, float[] acc, int a0, int d, int c0, int c1) {
    int p1 = p0 + pStride, p2 = p1 + pStride, p3 = p2 + pStride;
    int b0 = a0, b1 = b0 + d, b2 = b1 + d, b3 = b2 + d;
    FloatVector x00 = FloatVector.fromArray(F, acc, b0 + c0), x01 = FloatVector.fromArray(F, acc, b0 + c1), x10 = FloatVector.fromArray(F, acc, b1 + c0), x11 = FloatVector.fromArray(F, acc, b1 + c1);
    FloatVector x20 = FloatVector.fromArray(F, acc, b2 + c0), x21 = FloatVector.fromArray(F, acc, b2 + c1), x30 = FloatVector.fromArray(F, acc, b3 + c0), x31 = FloatVector.fromArray(F, acc, b3 + c1);
    for (int j = 0; j < count; j++) {
      long row = at + j * rowBytes;
      IntVector x = VectorLoads.word(v, row);
      FloatVector v0 = VectorLoads.low(enc, x);
      FloatVector v1 = VectorLoads.high(enc, x, v, row);
      FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
      x00 = v0.fma(b, x00);
      x01 = v1.fma(b, x01);
      b = FloatVector.broadcast(F, p[p1 + j]);
      x10 = v0.fma(b, x10);
      x11 = v1.fma(b, x11);
      b = FloatVector.broadcast(F, p[p2 + j]);
      x20 = v0.fma(b, x20);
      x21 = v1.fma(b, x21);
      b = FloatVector.broadcast(F, p[p3 + j]);
      x30 = v0.fma(b, x30);
      x31 = v1.fma(b, x31);
    }
    x00.intoArray(acc, b0 + c0);
    x01.intoArray(acc, b0 + c1);
    x10.intoArray(acc, b1 + c0);
    x11.intoArray(acc, b1 + c1);
    x20.intoArray(acc, b2 + c0);
    x21.intoArray(acc, b2 + c1);
    x30.intoArray(acc, b3 + c0);
    x31.intoArray(acc, b3 + c1);
  }

  /** 2 channel vectors (as {@link #accumulate2Vec4Heads}) x 1 head, 2 accumulators, 4 vector registers. */
  static void accumulate2Vec1Head(int enc, float[] p, int p0, MemorySegment v, long at,
      long rowBytes, int count, float[] acc, int c0, int c1) {
    FloatVector x0 = FloatVector.fromArray(F, acc, c0), x1 = FloatVector.fromArray(F, acc, c1);
    for (int j = 0; j < count; j++) {
      long row = at + j * rowBytes;
      FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
      IntVector x = VectorLoads.word(v, row);
      x0 = VectorLoads.low(enc, x).fma(b, x0);
      x1 = VectorLoads.high(enc, x, v, row).fma(b, x1);
    }
    x0.intoArray(acc, c0);
    x1.intoArray(acc, c1);
  }

  // ------------------------------------------------------------- narrow last block (natural)

  /**
   * A narrow last block (w &lt; 32 channels, natural order, rows of w elements) for 4 heads, one
   * channel vector at a time (4 accumulators), then scalar columns.
   */
  static void natural4Heads(float[] p, int p0, int pStride, int w, MemorySegment v, long blockOff,
      TileEncoding e, int count, float[] acc, int a0Off, int d) {
    int p1 = p0 + pStride, p2 = p1 + pStride, p3 = p2 + pStride;
    int a1Off = a0Off + d, a2Off = a1Off + d, a3Off = a2Off + d;
    int enc = VectorLoads.of(e);
    int bytes = e.bytes();
    long rowBytes = (long) w * bytes;
    int c = 0;
    for (; c + L <= w; c += L) {
      FloatVector a0 = FloatVector.fromArray(F, acc, a0Off + c), a1 = FloatVector.fromArray(F, acc, a1Off + c);
      FloatVector a2 = FloatVector.fromArray(F, acc, a2Off + c), a3 = FloatVector.fromArray(F, acc, a3Off + c);
      long at = blockOff + (long) c * bytes;
      for (int j = 0; j < count; j++, at += rowBytes) {
        FloatVector vv = natural(enc, v, at);
        a0 = vv.fma(FloatVector.broadcast(F, p[p0 + j]), a0);
        a1 = vv.fma(FloatVector.broadcast(F, p[p1 + j]), a1);
        a2 = vv.fma(FloatVector.broadcast(F, p[p2 + j]), a2);
        a3 = vv.fma(FloatVector.broadcast(F, p[p3 + j]), a3);
      }
      a0.intoArray(acc, a0Off + c);
      a1.intoArray(acc, a1Off + c);
      a2.intoArray(acc, a2Off + c);
      a3.intoArray(acc, a3Off + c);
    }
    for (; c < w; c++) { // scalar tail: channels of a narrow last block
      column(p, p0, w, v, blockOff, e, count, acc, a0Off, c);
      column(p, p1, w, v, blockOff, e, count, acc, a1Off, c);
      column(p, p2, w, v, blockOff, e, count, acc, a2Off, c);
      column(p, p3, w, v, blockOff, e, count, acc, a3Off, c);
    }
  }

  /** A narrow last block for one head. */
  static void natural1Head(float[] p, int p0, int w, MemorySegment v, long blockOff, TileEncoding e,
      int count, float[] acc, int aOff) {
    int enc = VectorLoads.of(e);
    int bytes = e.bytes();
    long rowBytes = (long) w * bytes;
    int c = 0;
    for (; c + L <= w; c += L) {
      FloatVector a = FloatVector.fromArray(F, acc, aOff + c);
      long at = blockOff + (long) c * bytes;
      for (int j = 0; j < count; j++, at += rowBytes) {
        a = natural(enc, v, at).fma(FloatVector.broadcast(F, p[p0 + j]), a);
      }
      a.intoArray(acc, aOff + c);
    }
    for (; c < w; c++) {
      column(p, p0, w, v, blockOff, e, count, acc, aOff, c);
    }
  }

  /** One channel of a narrow block in scalar: f16 values times 2^-112, as the vectors give them. */
  private static void column(float[] p, int p0, int w, MemorySegment v, long blockOff, TileEncoding e,
      int count, float[] acc, int aOff, int c) {
    int bytes = e.bytes();
    float unit = e == TileEncoding.F16 ? 0x1p-112f : 1f; // exact: every f16 value times 2^-112 is an f32
    float r = acc[aOff + c];
    for (int j = 0; j < count; j++) {
      r = Math.fma(p[p0 + j], e.read(v, blockOff + ((long) j * w + c) * bytes) * unit, r);
    }
    acc[aOff + c] = r;
  }

  /** L consecutive elements (natural order) widened to floats; f16 comes out times 2^-112. */
  private static FloatVector natural(int enc, MemorySegment seg, long off) {
    return enc == F32 ? FloatVector.fromMemorySegment(F, seg, off, LE) : VectorLoads.halves(seg, off, enc == BF16);
  }
}
