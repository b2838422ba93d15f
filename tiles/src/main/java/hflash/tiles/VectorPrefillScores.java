package hflash.tiles;

import static jdk.incubator.vector.VectorOperators.MAX;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The register-blocked score loops of {@link VectorPrefillKernels}, written out per shape: the
 * accumulators must be locals of one method for C2 to keep them in registers. Per lane the
 * arithmetic is {@code acc = fma(k_c, q_c, acc)} over c = 0 .. d-1 from
 * zero, the order of {@link ScalarPrefillKernels}, so the bits are the same.
 *
 * <p>Over 500 lines because it is hand-unrolled: 7 register blocks, each with and without the row
 * max, as separate bodies (one body with a max flag made C2 deoptimize them when callers alternated).
 */
final class VectorPrefillScores {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final int L = F.length();
  private static final int KC = PrefillKernels.KEY_CHUNK;

  private VectorPrefillScores() {}

  /**
   * Scores of 6 rows (q from q0) x 4 key vectors (kf from kAt, KEY_CHUNK per channel) into s from
   * s0 (row stride sStride): 24 accumulators + 4 keys + 1 broadcast = 29 vector registers.
   */
  static void scores6Rows4Vec(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride) {
    int q1 = q0 + d;
    int q2 = q1 + d;
    int q3 = q2 + d;
    int q4 = q3 + d;
    int q5 = q4 + d;
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00;
    FloatVector a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00;
    FloatVector a31 = a00, a32 = a00, a33 = a00, a40 = a00, a41 = a00, a42 = a00;
    FloatVector a43 = a00, a50 = a00, a51 = a00, a52 = a00, a53 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector k2 = FloatVector.fromArray(F, kf, at + 2 * L);
      FloatVector k3 = FloatVector.fromArray(F, kf, at + 3 * L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      a02 = k2.fma(b, a02);
      a03 = k3.fma(b, a03);
      b = FloatVector.broadcast(F, q[q1 + c]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
      a12 = k2.fma(b, a12);
      a13 = k3.fma(b, a13);
      b = FloatVector.broadcast(F, q[q2 + c]);
      a20 = k0.fma(b, a20);
      a21 = k1.fma(b, a21);
      a22 = k2.fma(b, a22);
      a23 = k3.fma(b, a23);
      b = FloatVector.broadcast(F, q[q3 + c]);
      a30 = k0.fma(b, a30);
      a31 = k1.fma(b, a31);
      a32 = k2.fma(b, a32);
      a33 = k3.fma(b, a33);
      b = FloatVector.broadcast(F, q[q4 + c]);
      a40 = k0.fma(b, a40);
      a41 = k1.fma(b, a41);
      a42 = k2.fma(b, a42);
      a43 = k3.fma(b, a43);
      b = FloatVector.broadcast(F, q[q5 + c]);
      a50 = k0.fma(b, a50);
      a51 = k1.fma(b, a51);
      a52 = k2.fma(b, a52);
      a53 = k3.fma(b, a53);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
    a02.intoArray(s, s0 + 2 * L);
    a03.intoArray(s, s0 + 3 * L);
    a10.intoArray(s, s0 + sStride);
    a11.intoArray(s, s0 + sStride + L);
    a12.intoArray(s, s0 + sStride + 2 * L);
    a13.intoArray(s, s0 + sStride + 3 * L);
    a20.intoArray(s, s0 + 2 * sStride);
    a21.intoArray(s, s0 + 2 * sStride + L);
    a22.intoArray(s, s0 + 2 * sStride + 2 * L);
    a23.intoArray(s, s0 + 2 * sStride + 3 * L);
    a30.intoArray(s, s0 + 3 * sStride);
    a31.intoArray(s, s0 + 3 * sStride + L);
    a32.intoArray(s, s0 + 3 * sStride + 2 * L);
    a33.intoArray(s, s0 + 3 * sStride + 3 * L);
    a40.intoArray(s, s0 + 4 * sStride);
    a41.intoArray(s, s0 + 4 * sStride + L);
    a42.intoArray(s, s0 + 4 * sStride + 2 * L);
    a43.intoArray(s, s0 + 4 * sStride + 3 * L);
    a50.intoArray(s, s0 + 5 * sStride);
    a51.intoArray(s, s0 + 5 * sStride + L);
    a52.intoArray(s, s0 + 5 * sStride + 2 * L);
    a53.intoArray(s, s0 + 5 * sStride + 3 * L);
  }

  /**
   * {@link #scores6Rows4Vec} that also raises {@code mx[m0 + r]} to the max of row r's 4 * L
   * scores, taken from the registers (a max is exact: the number a separate pass finds). A
   * method of its own rather than a flag, so no caller's kernel carries a branch it never takes.
   */
  static void scores6Rows4VecMax(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride,
      float[] mx, int m0) {
    int q1 = q0 + d;
    int q2 = q1 + d;
    int q3 = q2 + d;
    int q4 = q3 + d;
    int q5 = q4 + d;
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00;
    FloatVector a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00;
    FloatVector a31 = a00, a32 = a00, a33 = a00, a40 = a00, a41 = a00, a42 = a00;
    FloatVector a43 = a00, a50 = a00, a51 = a00, a52 = a00, a53 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector k2 = FloatVector.fromArray(F, kf, at + 2 * L);
      FloatVector k3 = FloatVector.fromArray(F, kf, at + 3 * L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      a02 = k2.fma(b, a02);
      a03 = k3.fma(b, a03);
      b = FloatVector.broadcast(F, q[q1 + c]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
      a12 = k2.fma(b, a12);
      a13 = k3.fma(b, a13);
      b = FloatVector.broadcast(F, q[q2 + c]);
      a20 = k0.fma(b, a20);
      a21 = k1.fma(b, a21);
      a22 = k2.fma(b, a22);
      a23 = k3.fma(b, a23);
      b = FloatVector.broadcast(F, q[q3 + c]);
      a30 = k0.fma(b, a30);
      a31 = k1.fma(b, a31);
      a32 = k2.fma(b, a32);
      a33 = k3.fma(b, a33);
      b = FloatVector.broadcast(F, q[q4 + c]);
      a40 = k0.fma(b, a40);
      a41 = k1.fma(b, a41);
      a42 = k2.fma(b, a42);
      a43 = k3.fma(b, a43);
      b = FloatVector.broadcast(F, q[q5 + c]);
      a50 = k0.fma(b, a50);
      a51 = k1.fma(b, a51);
      a52 = k2.fma(b, a52);
      a53 = k3.fma(b, a53);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
    a02.intoArray(s, s0 + 2 * L);
    a03.intoArray(s, s0 + 3 * L);
    a10.intoArray(s, s0 + sStride);
    a11.intoArray(s, s0 + sStride + L);
    a12.intoArray(s, s0 + sStride + 2 * L);
    a13.intoArray(s, s0 + sStride + 3 * L);
    a20.intoArray(s, s0 + 2 * sStride);
    a21.intoArray(s, s0 + 2 * sStride + L);
    a22.intoArray(s, s0 + 2 * sStride + 2 * L);
    a23.intoArray(s, s0 + 2 * sStride + 3 * L);
    a30.intoArray(s, s0 + 3 * sStride);
    a31.intoArray(s, s0 + 3 * sStride + L);
    a32.intoArray(s, s0 + 3 * sStride + 2 * L);
    a33.intoArray(s, s0 + 3 * sStride + 3 * L);
    a40.intoArray(s, s0 + 4 * sStride);
    a41.intoArray(s, s0 + 4 * sStride + L);
    a42.intoArray(s, s0 + 4 * sStride + 2 * L);
    a43.intoArray(s, s0 + 4 * sStride + 3 * L);
    a50.intoArray(s, s0 + 5 * sStride);
    a51.intoArray(s, s0 + 5 * sStride + L);
    a52.intoArray(s, s0 + 5 * sStride + 2 * L);
    a53.intoArray(s, s0 + 5 * sStride + 3 * L);
    mx[m0] = Math.max(mx[m0], a00.max(a01).max(a02).max(a03).reduceLanes(MAX));
    mx[m0 + 1] = Math.max(mx[m0 + 1], a10.max(a11).max(a12).max(a13).reduceLanes(MAX));
    mx[m0 + 2] = Math.max(mx[m0 + 2], a20.max(a21).max(a22).max(a23).reduceLanes(MAX));
    mx[m0 + 3] = Math.max(mx[m0 + 3], a30.max(a31).max(a32).max(a33).reduceLanes(MAX));
    mx[m0 + 4] = Math.max(mx[m0 + 4], a40.max(a41).max(a42).max(a43).reduceLanes(MAX));
    mx[m0 + 5] = Math.max(mx[m0 + 5], a50.max(a51).max(a52).max(a53).reduceLanes(MAX));
  }

  /**
   * Scores of 4 rows (q from q0) x 4 key vectors (kf from kAt, KEY_CHUNK per channel) into s from
   * s0 (row stride sStride): 16 accumulators + 4 keys + 1 broadcast = 21 vector registers.
   */
  static void scores4Rows4Vec(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride) {
    int q1 = q0 + d;
    int q2 = q1 + d;
    int q3 = q2 + d;
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00;
    FloatVector a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00;
    FloatVector a31 = a00, a32 = a00, a33 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector k2 = FloatVector.fromArray(F, kf, at + 2 * L);
      FloatVector k3 = FloatVector.fromArray(F, kf, at + 3 * L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      a02 = k2.fma(b, a02);
      a03 = k3.fma(b, a03);
      b = FloatVector.broadcast(F, q[q1 + c]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
      a12 = k2.fma(b, a12);
      a13 = k3.fma(b, a13);
      b = FloatVector.broadcast(F, q[q2 + c]);
      a20 = k0.fma(b, a20);
      a21 = k1.fma(b, a21);
      a22 = k2.fma(b, a22);
      a23 = k3.fma(b, a23);
      b = FloatVector.broadcast(F, q[q3 + c]);
      a30 = k0.fma(b, a30);
      a31 = k1.fma(b, a31);
      a32 = k2.fma(b, a32);
      a33 = k3.fma(b, a33);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
    a02.intoArray(s, s0 + 2 * L);
    a03.intoArray(s, s0 + 3 * L);
    a10.intoArray(s, s0 + sStride);
    a11.intoArray(s, s0 + sStride + L);
    a12.intoArray(s, s0 + sStride + 2 * L);
    a13.intoArray(s, s0 + sStride + 3 * L);
    a20.intoArray(s, s0 + 2 * sStride);
    a21.intoArray(s, s0 + 2 * sStride + L);
    a22.intoArray(s, s0 + 2 * sStride + 2 * L);
    a23.intoArray(s, s0 + 2 * sStride + 3 * L);
    a30.intoArray(s, s0 + 3 * sStride);
    a31.intoArray(s, s0 + 3 * sStride + L);
    a32.intoArray(s, s0 + 3 * sStride + 2 * L);
    a33.intoArray(s, s0 + 3 * sStride + 3 * L);
  }

  /**
   * {@link #scores4Rows4Vec} that also raises {@code mx[m0 + r]} to the max of row r's 4 * L
   * scores, taken from the registers (a max is exact: the number a separate pass finds). A
   * method of its own rather than a flag, so no caller's kernel carries a branch it never takes.
   */
  static void scores4Rows4VecMax(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride,
      float[] mx, int m0) {
    int q1 = q0 + d;
    int q2 = q1 + d;
    int q3 = q2 + d;
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00;
    FloatVector a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00;
    FloatVector a31 = a00, a32 = a00, a33 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector k2 = FloatVector.fromArray(F, kf, at + 2 * L);
      FloatVector k3 = FloatVector.fromArray(F, kf, at + 3 * L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      a02 = k2.fma(b, a02);
      a03 = k3.fma(b, a03);
      b = FloatVector.broadcast(F, q[q1 + c]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
      a12 = k2.fma(b, a12);
      a13 = k3.fma(b, a13);
      b = FloatVector.broadcast(F, q[q2 + c]);
      a20 = k0.fma(b, a20);
      a21 = k1.fma(b, a21);
      a22 = k2.fma(b, a22);
      a23 = k3.fma(b, a23);
      b = FloatVector.broadcast(F, q[q3 + c]);
      a30 = k0.fma(b, a30);
      a31 = k1.fma(b, a31);
      a32 = k2.fma(b, a32);
      a33 = k3.fma(b, a33);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
    a02.intoArray(s, s0 + 2 * L);
    a03.intoArray(s, s0 + 3 * L);
    a10.intoArray(s, s0 + sStride);
    a11.intoArray(s, s0 + sStride + L);
    a12.intoArray(s, s0 + sStride + 2 * L);
    a13.intoArray(s, s0 + sStride + 3 * L);
    a20.intoArray(s, s0 + 2 * sStride);
    a21.intoArray(s, s0 + 2 * sStride + L);
    a22.intoArray(s, s0 + 2 * sStride + 2 * L);
    a23.intoArray(s, s0 + 2 * sStride + 3 * L);
    a30.intoArray(s, s0 + 3 * sStride);
    a31.intoArray(s, s0 + 3 * sStride + L);
    a32.intoArray(s, s0 + 3 * sStride + 2 * L);
    a33.intoArray(s, s0 + 3 * sStride + 3 * L);
    mx[m0] = Math.max(mx[m0], a00.max(a01).max(a02).max(a03).reduceLanes(MAX));
    mx[m0 + 1] = Math.max(mx[m0 + 1], a10.max(a11).max(a12).max(a13).reduceLanes(MAX));
    mx[m0 + 2] = Math.max(mx[m0 + 2], a20.max(a21).max(a22).max(a23).reduceLanes(MAX));
    mx[m0 + 3] = Math.max(mx[m0 + 3], a30.max(a31).max(a32).max(a33).reduceLanes(MAX));
  }

  /**
   * Scores of 2 rows (q from q0) x 4 key vectors (kf from kAt, KEY_CHUNK per channel) into s from
   * s0 (row stride sStride): 8 accumulators + 4 keys + 1 broadcast = 13 vector registers.
   */
  static void scores2Rows4Vec(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride) {
    int q1 = q0 + d;
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00;
    FloatVector a13 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector k2 = FloatVector.fromArray(F, kf, at + 2 * L);
      FloatVector k3 = FloatVector.fromArray(F, kf, at + 3 * L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      a02 = k2.fma(b, a02);
      a03 = k3.fma(b, a03);
      b = FloatVector.broadcast(F, q[q1 + c]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
      a12 = k2.fma(b, a12);
      a13 = k3.fma(b, a13);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
    a02.intoArray(s, s0 + 2 * L);
    a03.intoArray(s, s0 + 3 * L);
    a10.intoArray(s, s0 + sStride);
    a11.intoArray(s, s0 + sStride + L);
    a12.intoArray(s, s0 + sStride + 2 * L);
    a13.intoArray(s, s0 + sStride + 3 * L);
  }

  /**
   * {@link #scores2Rows4Vec} that also raises {@code mx[m0 + r]} to the max of row r's 4 * L
   * scores, taken from the registers (a max is exact: the number a separate pass finds). A
   * method of its own rather than a flag, so no caller's kernel carries a branch it never takes.
   */
  static void scores2Rows4VecMax(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride,
      float[] mx, int m0) {
    int q1 = q0 + d;
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00;
    FloatVector a13 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector k2 = FloatVector.fromArray(F, kf, at + 2 * L);
      FloatVector k3 = FloatVector.fromArray(F, kf, at + 3 * L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      a02 = k2.fma(b, a02);
      a03 = k3.fma(b, a03);
      b = FloatVector.broadcast(F, q[q1 + c]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
      a12 = k2.fma(b, a12);
      a13 = k3.fma(b, a13);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
    a02.intoArray(s, s0 + 2 * L);
    a03.intoArray(s, s0 + 3 * L);
    a10.intoArray(s, s0 + sStride);
    a11.intoArray(s, s0 + sStride + L);
    a12.intoArray(s, s0 + sStride + 2 * L);
    a13.intoArray(s, s0 + sStride + 3 * L);
    mx[m0] = Math.max(mx[m0], a00.max(a01).max(a02).max(a03).reduceLanes(MAX));
    mx[m0 + 1] = Math.max(mx[m0 + 1], a10.max(a11).max(a12).max(a13).reduceLanes(MAX));
  }

  /**
   * Scores of 1 row (q from q0) x 4 key vectors (kf from kAt, KEY_CHUNK per channel) into s from
   * s0 (row stride sStride): 4 accumulators + 4 keys + 1 broadcast = 9 vector registers.
   */
  static void scores1Row4Vec(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride) {
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00, a02 = a00, a03 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector k2 = FloatVector.fromArray(F, kf, at + 2 * L);
      FloatVector k3 = FloatVector.fromArray(F, kf, at + 3 * L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      a02 = k2.fma(b, a02);
      a03 = k3.fma(b, a03);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
    a02.intoArray(s, s0 + 2 * L);
    a03.intoArray(s, s0 + 3 * L);
  }

  /**
   * {@link #scores1Row4Vec} that also raises {@code mx[m0 + r]} to the max of row r's 4 * L
   * scores, taken from the registers (a max is exact: the number a separate pass finds). A
   * method of its own rather than a flag, so no caller's kernel carries a branch it never takes.
   */
  static void scores1Row4VecMax(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride,
      float[] mx, int m0) {
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00, a02 = a00, a03 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector k2 = FloatVector.fromArray(F, kf, at + 2 * L);
      FloatVector k3 = FloatVector.fromArray(F, kf, at + 3 * L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      a02 = k2.fma(b, a02);
      a03 = k3.fma(b, a03);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
    a02.intoArray(s, s0 + 2 * L);
    a03.intoArray(s, s0 + 3 * L);
    mx[m0] = Math.max(mx[m0], a00.max(a01).max(a02).max(a03).reduceLanes(MAX));
  }

  /**
   * Scores of 4 rows (q from q0) x 2 key vectors (kf from kAt, KEY_CHUNK per channel) into s from
   * s0 (row stride sStride): 8 accumulators + 2 keys + 1 broadcast = 11 vector registers.
   */
  static void scores4Rows2Vec(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride) {
    int q1 = q0 + d;
    int q2 = q1 + d;
    int q3 = q2 + d;
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00;
    FloatVector a31 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      b = FloatVector.broadcast(F, q[q1 + c]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
      b = FloatVector.broadcast(F, q[q2 + c]);
      a20 = k0.fma(b, a20);
      a21 = k1.fma(b, a21);
      b = FloatVector.broadcast(F, q[q3 + c]);
      a30 = k0.fma(b, a30);
      a31 = k1.fma(b, a31);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
    a10.intoArray(s, s0 + sStride);
    a11.intoArray(s, s0 + sStride + L);
    a20.intoArray(s, s0 + 2 * sStride);
    a21.intoArray(s, s0 + 2 * sStride + L);
    a30.intoArray(s, s0 + 3 * sStride);
    a31.intoArray(s, s0 + 3 * sStride + L);
  }

  /**
   * {@link #scores4Rows2Vec} that also raises {@code mx[m0 + r]} to the max of row r's 2 * L
   * scores, taken from the registers (a max is exact: the number a separate pass finds). A
   * method of its own rather than a flag, so no caller's kernel carries a branch it never takes.
   */
  static void scores4Rows2VecMax(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride,
      float[] mx, int m0) {
    int q1 = q0 + d;
    int q2 = q1 + d;
    int q3 = q2 + d;
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00;
    FloatVector a31 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      b = FloatVector.broadcast(F, q[q1 + c]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
      b = FloatVector.broadcast(F, q[q2 + c]);
      a20 = k0.fma(b, a20);
      a21 = k1.fma(b, a21);
      b = FloatVector.broadcast(F, q[q3 + c]);
      a30 = k0.fma(b, a30);
      a31 = k1.fma(b, a31);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
    a10.intoArray(s, s0 + sStride);
    a11.intoArray(s, s0 + sStride + L);
    a20.intoArray(s, s0 + 2 * sStride);
    a21.intoArray(s, s0 + 2 * sStride + L);
    a30.intoArray(s, s0 + 3 * sStride);
    a31.intoArray(s, s0 + 3 * sStride + L);
    mx[m0] = Math.max(mx[m0], a00.max(a01).reduceLanes(MAX));
    mx[m0 + 1] = Math.max(mx[m0 + 1], a10.max(a11).reduceLanes(MAX));
    mx[m0 + 2] = Math.max(mx[m0 + 2], a20.max(a21).reduceLanes(MAX));
    mx[m0 + 3] = Math.max(mx[m0 + 3], a30.max(a31).reduceLanes(MAX));
  }

  /**
   * Scores of 2 rows (q from q0) x 2 key vectors (kf from kAt, KEY_CHUNK per channel) into s from
   * s0 (row stride sStride): 4 accumulators + 2 keys + 1 broadcast = 7 vector registers.
   */
  static void scores2Rows2Vec(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride) {
    int q1 = q0 + d;
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00, a10 = a00, a11 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      b = FloatVector.broadcast(F, q[q1 + c]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
    a10.intoArray(s, s0 + sStride);
    a11.intoArray(s, s0 + sStride + L);
  }

  /**
   * {@link #scores2Rows2Vec} that also raises {@code mx[m0 + r]} to the max of row r's 2 * L
   * scores, taken from the registers (a max is exact: the number a separate pass finds). A
   * method of its own rather than a flag, so no caller's kernel carries a branch it never takes.
   */
  static void scores2Rows2VecMax(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride,
      float[] mx, int m0) {
    int q1 = q0 + d;
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00, a10 = a00, a11 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
      b = FloatVector.broadcast(F, q[q1 + c]);
      a10 = k0.fma(b, a10);
      a11 = k1.fma(b, a11);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
    a10.intoArray(s, s0 + sStride);
    a11.intoArray(s, s0 + sStride + L);
    mx[m0] = Math.max(mx[m0], a00.max(a01).reduceLanes(MAX));
    mx[m0 + 1] = Math.max(mx[m0 + 1], a10.max(a11).reduceLanes(MAX));
  }

  /**
   * Scores of 1 row (q from q0) x 2 key vectors (kf from kAt, KEY_CHUNK per channel) into s from
   * s0 (row stride sStride): 2 accumulators + 2 keys + 1 broadcast = 5 vector registers.
   */
  static void scores1Row2Vec(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride) {
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
  }

  /**
   * {@link #scores1Row2Vec} that also raises {@code mx[m0 + r]} to the max of row r's 2 * L
   * scores, taken from the registers (a max is exact: the number a separate pass finds). A
   * method of its own rather than a flag, so no caller's kernel carries a branch it never takes.
   */
  static void scores1Row2VecMax(float[] q, int q0, int d, float[] kf, int kAt, float[] s, int s0, int sStride,
      float[] mx, int m0) {
    FloatVector a00 = FloatVector.zero(F);
    FloatVector a01 = a00;
    for (int c = 0; c < d; c++) {
      int at = kAt + c * KC; // constant stride: C2 hoists the range checks
      FloatVector k0 = FloatVector.fromArray(F, kf, at);
      FloatVector k1 = FloatVector.fromArray(F, kf, at + L);
      FloatVector b = FloatVector.broadcast(F, q[q0 + c]);
      a00 = k0.fma(b, a00);
      a01 = k1.fma(b, a01);
    }
    a00.intoArray(s, s0);
    a01.intoArray(s, s0 + L);
    mx[m0] = Math.max(mx[m0], a00.max(a01).reduceLanes(MAX));
  }
}
