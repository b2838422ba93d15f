package hflash.tiles;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The register-blocked p.V loops of {@link VectorPrefillKernels}, written out per shape: the
 * accumulators must be locals of one method for C2 to keep them in registers. Per lane the
 * arithmetic is {@code x = fma(v_j, p_j, x)} over keys j = 0 .. count-1 from
 * zero, then {@code acc + x}, the order of {@link ScalarPrefillKernels}, so the bits are the same.
 */
final class VectorPrefillValues {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final int L = F.length();
  private static final int KC = PrefillKernels.KEY_CHUNK;

  private VectorPrefillValues() {}

  /**
   * p.V of 6 rows (p rows from p0) x 4 channel vectors (vf from vAt, KEY_CHUNK per key): the
   * partial over keys [0, count) from zero, then added to acc (rows from a0, stride d).
   * 24 accumulators + 4 values + 1 broadcast = 29 vector registers (needs 32).
   */
  static void accumulate6Rows4Vec(float[] p, int p0, int pStride, float[] vf, int vAt, int count,
      float[] acc, int a0, int d) {
    int p1 = p0 + pStride;
    int p2 = p1 + pStride;
    int p3 = p2 + pStride;
    int p4 = p3 + pStride;
    int p5 = p4 + pStride;
    FloatVector x00 = FloatVector.zero(F);
    FloatVector x01 = x00, x02 = x00, x03 = x00, x10 = x00, x11 = x00, x12 = x00;
    FloatVector x13 = x00, x20 = x00, x21 = x00, x22 = x00, x23 = x00, x30 = x00;
    FloatVector x31 = x00, x32 = x00, x33 = x00, x40 = x00, x41 = x00, x42 = x00;
    FloatVector x43 = x00, x50 = x00, x51 = x00, x52 = x00, x53 = x00;
    for (int j = 0; j < count; j++) {
      int at = vAt + j * KC; // constant stride: C2 hoists the range checks
      FloatVector v0 = FloatVector.fromArray(F, vf, at);
      FloatVector v1 = FloatVector.fromArray(F, vf, at + L);
      FloatVector v2 = FloatVector.fromArray(F, vf, at + 2 * L);
      FloatVector v3 = FloatVector.fromArray(F, vf, at + 3 * L);
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
      b = FloatVector.broadcast(F, p[p4 + j]);
      x40 = v0.fma(b, x40);
      x41 = v1.fma(b, x41);
      x42 = v2.fma(b, x42);
      x43 = v3.fma(b, x43);
      b = FloatVector.broadcast(F, p[p5 + j]);
      x50 = v0.fma(b, x50);
      x51 = v1.fma(b, x51);
      x52 = v2.fma(b, x52);
      x53 = v3.fma(b, x53);
    }
    FloatVector.fromArray(F, acc, a0).add(x00).intoArray(acc, a0);
    FloatVector.fromArray(F, acc, a0 + L).add(x01).intoArray(acc, a0 + L);
    FloatVector.fromArray(F, acc, a0 + 2 * L).add(x02).intoArray(acc, a0 + 2 * L);
    FloatVector.fromArray(F, acc, a0 + 3 * L).add(x03).intoArray(acc, a0 + 3 * L);
    FloatVector.fromArray(F, acc, a0 + d).add(x10).intoArray(acc, a0 + d);
    FloatVector.fromArray(F, acc, a0 + d + L).add(x11).intoArray(acc, a0 + d + L);
    FloatVector.fromArray(F, acc, a0 + d + 2 * L).add(x12).intoArray(acc, a0 + d + 2 * L);
    FloatVector.fromArray(F, acc, a0 + d + 3 * L).add(x13).intoArray(acc, a0 + d + 3 * L);
    FloatVector.fromArray(F, acc, a0 + 2 * d).add(x20).intoArray(acc, a0 + 2 * d);
    FloatVector.fromArray(F, acc, a0 + 2 * d + L).add(x21).intoArray(acc, a0 + 2 * d + L);
    FloatVector.fromArray(F, acc, a0 + 2 * d + 2 * L).add(x22).intoArray(acc, a0 + 2 * d + 2 * L);
    FloatVector.fromArray(F, acc, a0 + 2 * d + 3 * L).add(x23).intoArray(acc, a0 + 2 * d + 3 * L);
    FloatVector.fromArray(F, acc, a0 + 3 * d).add(x30).intoArray(acc, a0 + 3 * d);
    FloatVector.fromArray(F, acc, a0 + 3 * d + L).add(x31).intoArray(acc, a0 + 3 * d + L);
    FloatVector.fromArray(F, acc, a0 + 3 * d + 2 * L).add(x32).intoArray(acc, a0 + 3 * d + 2 * L);
    FloatVector.fromArray(F, acc, a0 + 3 * d + 3 * L).add(x33).intoArray(acc, a0 + 3 * d + 3 * L);
    FloatVector.fromArray(F, acc, a0 + 4 * d).add(x40).intoArray(acc, a0 + 4 * d);
    FloatVector.fromArray(F, acc, a0 + 4 * d + L).add(x41).intoArray(acc, a0 + 4 * d + L);
    FloatVector.fromArray(F, acc, a0 + 4 * d + 2 * L).add(x42).intoArray(acc, a0 + 4 * d + 2 * L);
    FloatVector.fromArray(F, acc, a0 + 4 * d + 3 * L).add(x43).intoArray(acc, a0 + 4 * d + 3 * L);
    FloatVector.fromArray(F, acc, a0 + 5 * d).add(x50).intoArray(acc, a0 + 5 * d);
    FloatVector.fromArray(F, acc, a0 + 5 * d + L).add(x51).intoArray(acc, a0 + 5 * d + L);
    FloatVector.fromArray(F, acc, a0 + 5 * d + 2 * L).add(x52).intoArray(acc, a0 + 5 * d + 2 * L);
    FloatVector.fromArray(F, acc, a0 + 5 * d + 3 * L).add(x53).intoArray(acc, a0 + 5 * d + 3 * L);
  }

  /**
   * p.V of 4 rows (p rows from p0) x 4 channel vectors (vf from vAt, KEY_CHUNK per key): the
   * partial over keys [0, count) from zero, then added to acc (rows from a0, stride d).
   * 16 accumulators + 4 values + 1 broadcast = 21 vector registers.
   */
  static void accumulate4Rows4Vec(float[] p, int p0, int pStride, float[] vf, int vAt, int count,
      float[] acc, int a0, int d) {
    int p1 = p0 + pStride;
    int p2 = p1 + pStride;
    int p3 = p2 + pStride;
    FloatVector x00 = FloatVector.zero(F);
    FloatVector x01 = x00, x02 = x00, x03 = x00, x10 = x00, x11 = x00, x12 = x00;
    FloatVector x13 = x00, x20 = x00, x21 = x00, x22 = x00, x23 = x00, x30 = x00;
    FloatVector x31 = x00, x32 = x00, x33 = x00;
    for (int j = 0; j < count; j++) {
      int at = vAt + j * KC; // constant stride: C2 hoists the range checks
      FloatVector v0 = FloatVector.fromArray(F, vf, at);
      FloatVector v1 = FloatVector.fromArray(F, vf, at + L);
      FloatVector v2 = FloatVector.fromArray(F, vf, at + 2 * L);
      FloatVector v3 = FloatVector.fromArray(F, vf, at + 3 * L);
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
    FloatVector.fromArray(F, acc, a0).add(x00).intoArray(acc, a0);
    FloatVector.fromArray(F, acc, a0 + L).add(x01).intoArray(acc, a0 + L);
    FloatVector.fromArray(F, acc, a0 + 2 * L).add(x02).intoArray(acc, a0 + 2 * L);
    FloatVector.fromArray(F, acc, a0 + 3 * L).add(x03).intoArray(acc, a0 + 3 * L);
    FloatVector.fromArray(F, acc, a0 + d).add(x10).intoArray(acc, a0 + d);
    FloatVector.fromArray(F, acc, a0 + d + L).add(x11).intoArray(acc, a0 + d + L);
    FloatVector.fromArray(F, acc, a0 + d + 2 * L).add(x12).intoArray(acc, a0 + d + 2 * L);
    FloatVector.fromArray(F, acc, a0 + d + 3 * L).add(x13).intoArray(acc, a0 + d + 3 * L);
    FloatVector.fromArray(F, acc, a0 + 2 * d).add(x20).intoArray(acc, a0 + 2 * d);
    FloatVector.fromArray(F, acc, a0 + 2 * d + L).add(x21).intoArray(acc, a0 + 2 * d + L);
    FloatVector.fromArray(F, acc, a0 + 2 * d + 2 * L).add(x22).intoArray(acc, a0 + 2 * d + 2 * L);
    FloatVector.fromArray(F, acc, a0 + 2 * d + 3 * L).add(x23).intoArray(acc, a0 + 2 * d + 3 * L);
    FloatVector.fromArray(F, acc, a0 + 3 * d).add(x30).intoArray(acc, a0 + 3 * d);
    FloatVector.fromArray(F, acc, a0 + 3 * d + L).add(x31).intoArray(acc, a0 + 3 * d + L);
    FloatVector.fromArray(F, acc, a0 + 3 * d + 2 * L).add(x32).intoArray(acc, a0 + 3 * d + 2 * L);
    FloatVector.fromArray(F, acc, a0 + 3 * d + 3 * L).add(x33).intoArray(acc, a0 + 3 * d + 3 * L);
  }

  /**
   * p.V of 2 rows (p rows from p0) x 4 channel vectors (vf from vAt, KEY_CHUNK per key): the
   * partial over keys [0, count) from zero, then added to acc (rows from a0, stride d).
   * 8 accumulators + 4 values + 1 broadcast = 13 vector registers.
   */
  static void accumulate2Rows4Vec(float[] p, int p0, int pStride, float[] vf, int vAt, int count,
      float[] acc, int a0, int d) {
    int p1 = p0 + pStride;
    FloatVector x00 = FloatVector.zero(F);
    FloatVector x01 = x00, x02 = x00, x03 = x00, x10 = x00, x11 = x00, x12 = x00;
    FloatVector x13 = x00;
    for (int j = 0; j < count; j++) {
      int at = vAt + j * KC; // constant stride: C2 hoists the range checks
      FloatVector v0 = FloatVector.fromArray(F, vf, at);
      FloatVector v1 = FloatVector.fromArray(F, vf, at + L);
      FloatVector v2 = FloatVector.fromArray(F, vf, at + 2 * L);
      FloatVector v3 = FloatVector.fromArray(F, vf, at + 3 * L);
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
    }
    FloatVector.fromArray(F, acc, a0).add(x00).intoArray(acc, a0);
    FloatVector.fromArray(F, acc, a0 + L).add(x01).intoArray(acc, a0 + L);
    FloatVector.fromArray(F, acc, a0 + 2 * L).add(x02).intoArray(acc, a0 + 2 * L);
    FloatVector.fromArray(F, acc, a0 + 3 * L).add(x03).intoArray(acc, a0 + 3 * L);
    FloatVector.fromArray(F, acc, a0 + d).add(x10).intoArray(acc, a0 + d);
    FloatVector.fromArray(F, acc, a0 + d + L).add(x11).intoArray(acc, a0 + d + L);
    FloatVector.fromArray(F, acc, a0 + d + 2 * L).add(x12).intoArray(acc, a0 + d + 2 * L);
    FloatVector.fromArray(F, acc, a0 + d + 3 * L).add(x13).intoArray(acc, a0 + d + 3 * L);
  }

  /**
   * p.V of 2 rows (p rows from p0) x 2 channel vectors (vf from vAt, KEY_CHUNK per key): the
   * partial over keys [0, count) from zero, then added to acc (rows from a0, stride d).
   * 4 accumulators + 2 values + 1 broadcast = 7 vector registers.
   */
  static void accumulate2Rows2Vec(float[] p, int p0, int pStride, float[] vf, int vAt, int count,
      float[] acc, int a0, int d) {
    int p1 = p0 + pStride;
    FloatVector x00 = FloatVector.zero(F);
    FloatVector x01 = x00, x10 = x00, x11 = x00;
    for (int j = 0; j < count; j++) {
      int at = vAt + j * KC; // constant stride: C2 hoists the range checks
      FloatVector v0 = FloatVector.fromArray(F, vf, at);
      FloatVector v1 = FloatVector.fromArray(F, vf, at + L);
      FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
      x00 = v0.fma(b, x00);
      x01 = v1.fma(b, x01);
      b = FloatVector.broadcast(F, p[p1 + j]);
      x10 = v0.fma(b, x10);
      x11 = v1.fma(b, x11);
    }
    FloatVector.fromArray(F, acc, a0).add(x00).intoArray(acc, a0);
    FloatVector.fromArray(F, acc, a0 + L).add(x01).intoArray(acc, a0 + L);
    FloatVector.fromArray(F, acc, a0 + d).add(x10).intoArray(acc, a0 + d);
    FloatVector.fromArray(F, acc, a0 + d + L).add(x11).intoArray(acc, a0 + d + L);
  }

  /**
   * p.V of 4 rows (p rows from p0) x 2 channel vectors (vf from vAt, KEY_CHUNK per key): the
   * partial over keys [0, count) from zero, then added to acc (rows from a0, stride d).
   * 8 accumulators, 11 vector registers (fits 16).
   */
  static void accumulate4Rows2Vec(float[] p, int p0, int pStride, float[] vf, int vAt, int count,
      float[] acc, int a0, int d) {
    int p1 = p0 + pStride;
    int p2 = p1 + pStride;
    int p3 = p2 + pStride;
    FloatVector x00 = FloatVector.zero(F);
    FloatVector x01 = x00, x10 = x00, x11 = x00, x20 = x00, x21 = x00, x30 = x00;
    FloatVector x31 = x00;
    for (int j = 0; j < count; j++) {
      int at = vAt + j * KC; // constant stride: C2 hoists the range checks
      FloatVector v0 = FloatVector.fromArray(F, vf, at);
      FloatVector v1 = FloatVector.fromArray(F, vf, at + L);
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
    FloatVector.fromArray(F, acc, a0).add(x00).intoArray(acc, a0);
    FloatVector.fromArray(F, acc, a0 + L).add(x01).intoArray(acc, a0 + L);
    FloatVector.fromArray(F, acc, a0 + d).add(x10).intoArray(acc, a0 + d);
    FloatVector.fromArray(F, acc, a0 + d + L).add(x11).intoArray(acc, a0 + d + L);
    FloatVector.fromArray(F, acc, a0 + 2 * d).add(x20).intoArray(acc, a0 + 2 * d);
    FloatVector.fromArray(F, acc, a0 + 2 * d + L).add(x21).intoArray(acc, a0 + 2 * d + L);
    FloatVector.fromArray(F, acc, a0 + 3 * d).add(x30).intoArray(acc, a0 + 3 * d);
    FloatVector.fromArray(F, acc, a0 + 3 * d + L).add(x31).intoArray(acc, a0 + 3 * d + L);
  }

  /**
   * p.V of 1 row (p rows from p0) x 4 channel vectors (vf from vAt, KEY_CHUNK per key): the
   * partial over keys [0, count) from zero, then added to acc (rows from a0).
   * 4 accumulators, 9 vector registers.
   */
  static void accumulate1Row4Vec(float[] p, int p0, float[] vf, int vAt, int count, float[] acc, int a0) {
    FloatVector x00 = FloatVector.zero(F);
    FloatVector x01 = x00, x02 = x00, x03 = x00;
    for (int j = 0; j < count; j++) {
      int at = vAt + j * KC; // constant stride: C2 hoists the range checks
      FloatVector v0 = FloatVector.fromArray(F, vf, at);
      FloatVector v1 = FloatVector.fromArray(F, vf, at + L);
      FloatVector v2 = FloatVector.fromArray(F, vf, at + 2 * L);
      FloatVector v3 = FloatVector.fromArray(F, vf, at + 3 * L);
      FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
      x00 = v0.fma(b, x00);
      x01 = v1.fma(b, x01);
      x02 = v2.fma(b, x02);
      x03 = v3.fma(b, x03);
    }
    FloatVector.fromArray(F, acc, a0).add(x00).intoArray(acc, a0);
    FloatVector.fromArray(F, acc, a0 + L).add(x01).intoArray(acc, a0 + L);
    FloatVector.fromArray(F, acc, a0 + 2 * L).add(x02).intoArray(acc, a0 + 2 * L);
    FloatVector.fromArray(F, acc, a0 + 3 * L).add(x03).intoArray(acc, a0 + 3 * L);
  }

  /**
   * p.V of 1 row (p rows from p0) x 2 channel vectors (vf from vAt, KEY_CHUNK per key): the
   * partial over keys [0, count) from zero, then added to acc (rows from a0).
   * 2 accumulators, 5 vector registers.
   */
  static void accumulate1Row2Vec(float[] p, int p0, float[] vf, int vAt, int count, float[] acc, int a0) {
    FloatVector x00 = FloatVector.zero(F);
    FloatVector x01 = x00;
    for (int j = 0; j < count; j++) {
      int at = vAt + j * KC; // constant stride: C2 hoists the range checks
      FloatVector v0 = FloatVector.fromArray(F, vf, at);
      FloatVector v1 = FloatVector.fromArray(F, vf, at + L);
      FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
      x00 = v0.fma(b, x00);
      x01 = v1.fma(b, x01);
    }
    FloatVector.fromArray(F, acc, a0).add(x00).intoArray(acc, a0);
    FloatVector.fromArray(F, acc, a0 + L).add(x01).intoArray(acc, a0 + L);
  }

  /**
   * p.V of 1 row (p rows from p0) x 1 channel vector (vf from vAt, KEY_CHUNK per key): the
   * partial over keys [0, count) from zero, then added to acc (rows from a0).
   * 1 accumulator, 3 vector registers.
   */
  static void accumulate1Row1Vec(float[] p, int p0, float[] vf, int vAt, int count, float[] acc, int a0) {
    FloatVector x00 = FloatVector.zero(F);
    for (int j = 0; j < count; j++) {
      int at = vAt + j * KC; // constant stride: C2 hoists the range checks
      FloatVector v0 = FloatVector.fromArray(F, vf, at);
      FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
      x00 = v0.fma(b, x00);
    }
    FloatVector.fromArray(F, acc, a0).add(x00).intoArray(acc, a0);
  }
}
