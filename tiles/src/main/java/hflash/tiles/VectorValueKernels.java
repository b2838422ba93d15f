package hflash.tiles;

import static jdk.incubator.vector.VectorOperators.AND;
import static jdk.incubator.vector.VectorOperators.ASHR;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.S2I;

import hflash.memory.DType;
import hflash.memory.TileLayout;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The p.V kernels of {@link VectorTileKernels}: one V block of 32 channels (row-major, see
 * {@link TileLayout}) swept key by key, a few channel vectors of four heads' accumulators (or one
 * head's) held in registers for the whole tile: acc is loaded and stored once per tile.
 *
 * <p>Shapes as the score kernels ({@link VectorScoreKernels}): {@code x4x4} (four channel vectors x
 * four heads, 32 registers), {@code x2x4} (two x four, 16 registers), {@code x2x1}. At 512 bits a
 * block row is two vectors, so 4 x 4 takes two channel blocks at once. Full 16-bit blocks are
 * paired (word w = channels w and w + 16); the narrow last block of a head dimension that is not a
 * multiple of 32 keeps the natural order and goes through {@link #natural4} / {@link #natural1}.
 *
 * <p>Per channel: {@code acc = fma(v_j, p_j, acc)} for keys j in order, the scalar twin's order.
 * f16 values come out times 2^-112; the caller has scaled p by 2^112.
 */
final class VectorValueKernels {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final VectorSpecies<Short> S = VectorConstants.SHORTS;
  private static final VectorSpecies<Integer> I = VectorConstants.INTS;
  private static final int L = F.length();
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

  private VectorValueKernels() {}

  // ------------------------------------------------------------------------------------- f32

  /**
   * f32: four channel vectors (bytes {@code o_i} into each row of {@code rowBytes} from
   * {@code at}; accumulator columns {@code c_i}) x four heads (p rows p0 + h pStride, acc rows
   * a0 + h d) over {@code count} keys.
   */
  static void f32x4x4(float[] p, int p0, int pStride, MemorySegment v, long at, long o1, long o2,
      long o3, long rowBytes, int count, float[] acc, int a0, int d, int c0, int c1, int c2, int c3) {
    int p1 = p0 + pStride, p2 = p1 + pStride, p3 = p2 + pStride;
    int b0 = a0, b1 = b0 + d, b2 = b1 + d, b3 = b2 + d;
    FloatVector x00 = FloatVector.fromArray(F, acc, b0 + c0), x01 = FloatVector.fromArray(F, acc, b0 + c1), x02 = FloatVector.fromArray(F, acc, b0 + c2), x03 = FloatVector.fromArray(F, acc, b0 + c3);
    FloatVector x10 = FloatVector.fromArray(F, acc, b1 + c0), x11 = FloatVector.fromArray(F, acc, b1 + c1), x12 = FloatVector.fromArray(F, acc, b1 + c2), x13 = FloatVector.fromArray(F, acc, b1 + c3);
    FloatVector x20 = FloatVector.fromArray(F, acc, b2 + c0), x21 = FloatVector.fromArray(F, acc, b2 + c1), x22 = FloatVector.fromArray(F, acc, b2 + c2), x23 = FloatVector.fromArray(F, acc, b2 + c3);
    FloatVector x30 = FloatVector.fromArray(F, acc, b3 + c0), x31 = FloatVector.fromArray(F, acc, b3 + c1), x32 = FloatVector.fromArray(F, acc, b3 + c2), x33 = FloatVector.fromArray(F, acc, b3 + c3);
    for (int j = 0; j < count; j++) {
      long row = at + j * rowBytes;
      FloatVector v0 = FloatVector.fromMemorySegment(F, v, row, LE);
      FloatVector v1 = FloatVector.fromMemorySegment(F, v, row + o1, LE);
      FloatVector v2 = FloatVector.fromMemorySegment(F, v, row + o2, LE);
      FloatVector v3 = FloatVector.fromMemorySegment(F, v, row + o3, LE);
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

  /** f32: two channel vectors (at {@code at}, {@code at + o1}; columns c0, c1) x four heads. */
  static void f32x2x4(float[] p, int p0, int pStride, MemorySegment v, long at, long o1, long rowBytes,
      int count, float[] acc, int a0, int d, int c0, int c1) {
    int p1 = p0 + pStride, p2 = p1 + pStride, p3 = p2 + pStride;
    int b0 = a0, b1 = b0 + d, b2 = b1 + d, b3 = b2 + d;
    FloatVector x00 = FloatVector.fromArray(F, acc, b0 + c0), x01 = FloatVector.fromArray(F, acc, b0 + c1), x10 = FloatVector.fromArray(F, acc, b1 + c0), x11 = FloatVector.fromArray(F, acc, b1 + c1);
    FloatVector x20 = FloatVector.fromArray(F, acc, b2 + c0), x21 = FloatVector.fromArray(F, acc, b2 + c1), x30 = FloatVector.fromArray(F, acc, b3 + c0), x31 = FloatVector.fromArray(F, acc, b3 + c1);
    for (int j = 0; j < count; j++) {
      long row = at + j * rowBytes;
      FloatVector v0 = FloatVector.fromMemorySegment(F, v, row, LE);
      FloatVector v1 = FloatVector.fromMemorySegment(F, v, row + o1, LE);
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

  /** f32: two channel vectors for one head. */
  static void f32x2x1(float[] p, int p0, MemorySegment v, long at, long o1, long rowBytes, int count,
      float[] acc, int c0, int c1) {
    FloatVector x0 = FloatVector.fromArray(F, acc, c0), x1 = FloatVector.fromArray(F, acc, c1);
    for (int j = 0; j < count; j++) {
      long row = at + j * rowBytes;
      FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
      x0 = FloatVector.fromMemorySegment(F, v, row, LE).fma(b, x0);
      x1 = FloatVector.fromMemorySegment(F, v, row + o1, LE).fma(b, x1);
    }
    x0.intoArray(acc, c0);
    x1.intoArray(acc, c1);
  }

  // ---------------------------------------------------------------------------------- 16-bit

  /**
   * Paired 16-bit: two word vectors (at {@code at}, {@code at + o1}) = four channel vectors: lo
   * and hi of the first to columns c0, c1, of the second to c2, c3; x four heads.
   */
  static void halfx4x4(float[] p, int p0, int pStride, MemorySegment v, long at, long o1, long rowBytes,
      boolean bf16, int count, float[] acc, int a0, int d, int c0, int c1, int c2, int c3) {
    int p1 = p0 + pStride, p2 = p1 + pStride, p3 = p2 + pStride;
    int b0 = a0, b1 = b0 + d, b2 = b1 + d, b3 = b2 + d;
    FloatVector x00 = FloatVector.fromArray(F, acc, b0 + c0), x01 = FloatVector.fromArray(F, acc, b0 + c1), x02 = FloatVector.fromArray(F, acc, b0 + c2), x03 = FloatVector.fromArray(F, acc, b0 + c3);
    FloatVector x10 = FloatVector.fromArray(F, acc, b1 + c0), x11 = FloatVector.fromArray(F, acc, b1 + c1), x12 = FloatVector.fromArray(F, acc, b1 + c2), x13 = FloatVector.fromArray(F, acc, b1 + c3);
    FloatVector x20 = FloatVector.fromArray(F, acc, b2 + c0), x21 = FloatVector.fromArray(F, acc, b2 + c1), x22 = FloatVector.fromArray(F, acc, b2 + c2), x23 = FloatVector.fromArray(F, acc, b2 + c3);
    FloatVector x30 = FloatVector.fromArray(F, acc, b3 + c0), x31 = FloatVector.fromArray(F, acc, b3 + c1), x32 = FloatVector.fromArray(F, acc, b3 + c2), x33 = FloatVector.fromArray(F, acc, b3 + c3);
    for (int j = 0; j < count; j++) {
      long row = at + j * rowBytes;
      IntVector x = IntVector.fromMemorySegment(I, v, row, LE);
      IntVector y = IntVector.fromMemorySegment(I, v, row + o1, LE);
      FloatVector v0 = (bf16 ? x.lanewise(LSHL, 16) : x.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, VectorScoreKernels.F16_MASK)).reinterpretAsFloats();
      FloatVector v1 = (bf16 ? x.lanewise(AND, VectorScoreKernels.BF16_HIGH) : x.lanewise(ASHR, 3).lanewise(AND, VectorScoreKernels.F16_MASK)).reinterpretAsFloats();
      FloatVector v2 = (bf16 ? y.lanewise(LSHL, 16) : y.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, VectorScoreKernels.F16_MASK)).reinterpretAsFloats();
      FloatVector v3 = (bf16 ? y.lanewise(AND, VectorScoreKernels.BF16_HIGH) : y.lanewise(ASHR, 3).lanewise(AND, VectorScoreKernels.F16_MASK)).reinterpretAsFloats();
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

  /** Paired 16-bit: one word vector = two channel vectors (lo to c0, hi to c1) x four heads. */
  static void halfx2x4(float[] p, int p0, int pStride, MemorySegment v, long at, long rowBytes,
      boolean bf16, int count, float[] acc, int a0, int d, int c0, int c1) {
    int p1 = p0 + pStride, p2 = p1 + pStride, p3 = p2 + pStride;
    int b0 = a0, b1 = b0 + d, b2 = b1 + d, b3 = b2 + d;
    FloatVector x00 = FloatVector.fromArray(F, acc, b0 + c0), x01 = FloatVector.fromArray(F, acc, b0 + c1), x10 = FloatVector.fromArray(F, acc, b1 + c0), x11 = FloatVector.fromArray(F, acc, b1 + c1);
    FloatVector x20 = FloatVector.fromArray(F, acc, b2 + c0), x21 = FloatVector.fromArray(F, acc, b2 + c1), x30 = FloatVector.fromArray(F, acc, b3 + c0), x31 = FloatVector.fromArray(F, acc, b3 + c1);
    for (int j = 0; j < count; j++) {
      IntVector x = IntVector.fromMemorySegment(I, v, at + j * rowBytes, LE);
      FloatVector v0 = (bf16 ? x.lanewise(LSHL, 16) : x.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, VectorScoreKernels.F16_MASK)).reinterpretAsFloats();
      FloatVector v1 = (bf16 ? x.lanewise(AND, VectorScoreKernels.BF16_HIGH) : x.lanewise(ASHR, 3).lanewise(AND, VectorScoreKernels.F16_MASK)).reinterpretAsFloats();
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

  /** Paired 16-bit: one word vector for one head. */
  static void halfx2x1(float[] p, int p0, MemorySegment v, long at, long rowBytes, boolean bf16,
      int count, float[] acc, int c0, int c1) {
    FloatVector x0 = FloatVector.fromArray(F, acc, c0), x1 = FloatVector.fromArray(F, acc, c1);
    for (int j = 0; j < count; j++) {
      IntVector x = IntVector.fromMemorySegment(I, v, at + j * rowBytes, LE);
      FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
      x0 = (bf16 ? x.lanewise(LSHL, 16) : x.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, VectorScoreKernels.F16_MASK)).reinterpretAsFloats().fma(b, x0);
      x1 = (bf16 ? x.lanewise(AND, VectorScoreKernels.BF16_HIGH) : x.lanewise(ASHR, 3).lanewise(AND, VectorScoreKernels.F16_MASK)).reinterpretAsFloats().fma(b, x1);
    }
    x0.intoArray(acc, c0);
    x1.intoArray(acc, c1);
  }

  // ------------------------------------------------------------- narrow last block (natural)

  /**
   * A narrow last block (w &lt; 32 channels, natural order, rows of w elements) for four heads:
   * vectors of L channels while they fit, then scalar columns.
   */
  static void natural4(float[] p, int p0, int pStride, int w, MemorySegment v, long blockOff,
      DType dtype, int count, float[] acc, int a0Off, int d) {
    int p1 = p0 + pStride, p2 = p1 + pStride, p3 = p2 + pStride;
    int a1Off = a0Off + d, a2Off = a1Off + d, a3Off = a2Off + d;
    int bytes = dtype.bytes();
    long rowBytes = (long) w * bytes;
    int c = 0;
    for (; c + L <= w; c += L) {
      FloatVector a0 = FloatVector.fromArray(F, acc, a0Off + c), a1 = FloatVector.fromArray(F, acc, a1Off + c);
      FloatVector a2 = FloatVector.fromArray(F, acc, a2Off + c), a3 = FloatVector.fromArray(F, acc, a3Off + c);
      long at = blockOff + (long) c * bytes;
      for (int j = 0; j < count; j++, at += rowBytes) {
        FloatVector vv = loadNatural(v, at, dtype);
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
      column(p, p0, w, v, blockOff, dtype, count, acc, a0Off, c);
      column(p, p1, w, v, blockOff, dtype, count, acc, a1Off, c);
      column(p, p2, w, v, blockOff, dtype, count, acc, a2Off, c);
      column(p, p3, w, v, blockOff, dtype, count, acc, a3Off, c);
    }
  }

  /** A narrow last block for one head. */
  static void natural1(float[] p, int p0, int w, MemorySegment v, long blockOff, DType dtype,
      int count, float[] acc, int aOff) {
    int bytes = dtype.bytes();
    long rowBytes = (long) w * bytes;
    int c = 0;
    for (; c + L <= w; c += L) {
      FloatVector a = FloatVector.fromArray(F, acc, aOff + c);
      long at = blockOff + (long) c * bytes;
      for (int j = 0; j < count; j++, at += rowBytes) {
        a = loadNatural(v, at, dtype).fma(FloatVector.broadcast(F, p[p0 + j]), a);
      }
      a.intoArray(acc, aOff + c);
    }
    for (; c < w; c++) {
      column(p, p0, w, v, blockOff, dtype, count, acc, aOff, c);
    }
  }

  /** One channel of a narrow block in scalar: f16 values times 2^-112, as the vectors give them. */
  private static void column(float[] p, int p0, int w, MemorySegment v, long blockOff, DType dtype,
      int count, float[] acc, int aOff, int c) {
    int bytes = dtype.bytes();
    float unit = dtype == DType.F16 ? 0x1p-112f : 1f; // exact: every f16 value times 2^-112 is an f32
    float r = acc[aOff + c];
    for (int j = 0; j < count; j++) {
      r = Math.fma(p[p0 + j], dtype.read(v, blockOff + ((long) j * w + c) * bytes) * unit, r);
    }
    acc[aOff + c] = r;
  }

  /**
   * L consecutive elements (natural order) widened to floats; f16 comes out times 2^-112. The
   * sign-extended bits shifted left by 13 put the f16 exponent and mantissa in f32 position and
   * copies of the sign in bits 28..31; the mask keeps the sign in bit 31 only.
   */
  private static FloatVector loadNatural(MemorySegment seg, long off, DType dtype) {
    if (dtype == DType.F32) {
      return FloatVector.fromMemorySegment(F, seg, off, LE);
    }
    IntVector bits = (IntVector) ShortVector.fromMemorySegment(S, seg, off, LE).convertShape(S2I, I, 0);
    return dtype == DType.BF16 ? bits.lanewise(LSHL, 16).reinterpretAsFloats()
        : bits.lanewise(LSHL, 13).lanewise(AND, VectorScoreKernels.F16_MASK).reinterpretAsFloats();
  }
}
