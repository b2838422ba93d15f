package hflash.tiles;

import static jdk.incubator.vector.VectorOperators.LSHL;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorSpecies;

/** Element-wise math for the vector kernels that gives the same bits in every JIT tier. */
final class VectorMath {

  private static final VectorSpecies<Float> F = VectorConstants.FLOATS;
  private static final int L = F.length();

  private VectorMath() {}

  /**
   * In place {@code x[i] = exp(x[i] - m)}, returns the sum. e^y per lane, for y &lt;= 88: Cody-Waite reduction x = n ln2 + r (|r| &lt;= ln2/2), a degree-6
   * polynomial for e^r (relative error below 2e-7, about 1.5 ulp), scaled by 2^n through the
   * exponent bits; x &lt; -87.3 (and -inf) give 0 (flushes results below 2^-126, whose weight is
   * below float resolution next to the max key's). Written out rather than
   * {@code lanewise(EXP)} because the incubator's EXP returns different last bits interpreted and
   * compiled, which broke bit-reproducibility across JIT warm-up; these are plain IEEE operations
   * (each FMA exactly rounded in every tier), so every tier gives the same bits.
   */
  static float expSum(float[] x, int off, int n, float m) {
    return expSum(x, off, n, m, LANES.get());
  }

  /** {@link #expSum} with this thread's lane scratch ({@link #lanes}) passed in. */
  private static float expSum(float[] x, int off, int n, float m, float[] lanes) {
    // The whole loop lives here, exp written out inside it, so no FloatVector ever crosses a
    // method boundary: a vector argument or result of a call C2 does not inline (for instance
    // because the callee was already compiled on its own into a big method) is boxed on the heap,
    // which once showed up as ~50 KB allocated per llama2 forward pass.
    int i = 0;
    float sum = 0f;
    int bound = F.loopBound(n);
    if (bound > 0) {
      FloatVector mv = FloatVector.broadcast(F, m);
      FloatVector acc = FloatVector.zero(F);
      for (; i < bound; i += L) {
        FloatVector x0 = FloatVector.fromArray(F, x, off + i).sub(mv);
        FloatVector xc = x0.max(-88f);
        FloatVector t = xc.mul(LOG2E).add(ROUND_MAGIC); // round(x log2 e) in the low mantissa bits
        FloatVector nv = t.sub(ROUND_MAGIC);
        FloatVector r = nv.fma(FloatVector.broadcast(F, -LN2_HI), xc);
        r = nv.fma(FloatVector.broadcast(F, -LN2_LO), r);
        FloatVector p = FloatVector.broadcast(F, 1f / 720).fma(r, FloatVector.broadcast(F, 1f / 120));
        p = p.fma(r, FloatVector.broadcast(F, 1f / 24));
        p = p.fma(r, FloatVector.broadcast(F, 1f / 6));
        p = p.fma(r, FloatVector.broadcast(F, 0.5f));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        IntVector bits = t.reinterpretAsInts().sub(ROUND_MAGIC_BITS).add(127).lanewise(LSHL, 23);
        FloatVector e = p.mul(bits.reinterpretAsFloats()).blend(0f, x0.lt(-87.3f));
        e.intoArray(x, off + i);
        acc = acc.add(e);
      }
      acc.intoArray(lanes, 0);
      sum = sumLanes(lanes);
    }
    for (; i < n; i++) {
      float e = (float) Math.exp(x[off + i] - m);
      x[off + i] = e;
      sum += e;
    }
    return sum;
  }


  /**
   * {@link #expSum} of rows {@code r < rows} of s (row r from {@code r * sStride}, max
   * {@code m[mOff + r]}), the sums into {@code sums[0 .. rows)}. Two rows at a time in one loop:
   * each row's operations and their order are expSum's (same bits), but the two rows' independent
   * chains fill the pipeline slots one row's dependent polynomial leaves empty.
   */
  static void expRows(float[] s, int sStride, int rows, int count, float[] m, int mOff, float[] sums) {
    float[] lanes = LANES.get();
    int bound = F.loopBound(count);
    int r = 0;
    for (; r + 2 <= rows && bound > 0; r += 2) {
      int offA = r * sStride, offB = offA + sStride;
      float mAf = m[mOff + r], mBf = m[mOff + r + 1];
      FloatVector mA = FloatVector.broadcast(F, mAf);
      FloatVector mB = FloatVector.broadcast(F, mBf);
      FloatVector accA = FloatVector.zero(F);
      FloatVector accB = FloatVector.zero(F);
      int i = 0;
      for (; i < bound; i += L) {
        FloatVector xA = FloatVector.fromArray(F, s, offA + i).sub(mA);
        FloatVector xB = FloatVector.fromArray(F, s, offB + i).sub(mB);
        FloatVector cA = xA.max(-88f);
        FloatVector cB = xB.max(-88f);
        FloatVector tA = cA.mul(LOG2E).add(ROUND_MAGIC);
        FloatVector tB = cB.mul(LOG2E).add(ROUND_MAGIC);
        FloatVector nA = tA.sub(ROUND_MAGIC);
        FloatVector nB = tB.sub(ROUND_MAGIC);
        FloatVector rA = nA.fma(FloatVector.broadcast(F, -LN2_HI), cA);
        FloatVector rB = nB.fma(FloatVector.broadcast(F, -LN2_HI), cB);
        rA = nA.fma(FloatVector.broadcast(F, -LN2_LO), rA);
        rB = nB.fma(FloatVector.broadcast(F, -LN2_LO), rB);
        FloatVector pA = FloatVector.broadcast(F, 1f / 720).fma(rA, FloatVector.broadcast(F, 1f / 120));
        FloatVector pB = FloatVector.broadcast(F, 1f / 720).fma(rB, FloatVector.broadcast(F, 1f / 120));
        pA = pA.fma(rA, FloatVector.broadcast(F, 1f / 24));
        pB = pB.fma(rB, FloatVector.broadcast(F, 1f / 24));
        pA = pA.fma(rA, FloatVector.broadcast(F, 1f / 6));
        pB = pB.fma(rB, FloatVector.broadcast(F, 1f / 6));
        pA = pA.fma(rA, FloatVector.broadcast(F, 0.5f));
        pB = pB.fma(rB, FloatVector.broadcast(F, 0.5f));
        pA = pA.fma(rA, FloatVector.broadcast(F, 1f));
        pB = pB.fma(rB, FloatVector.broadcast(F, 1f));
        pA = pA.fma(rA, FloatVector.broadcast(F, 1f));
        pB = pB.fma(rB, FloatVector.broadcast(F, 1f));
        IntVector bA = tA.reinterpretAsInts().sub(ROUND_MAGIC_BITS).add(127).lanewise(LSHL, 23);
        IntVector bB = tB.reinterpretAsInts().sub(ROUND_MAGIC_BITS).add(127).lanewise(LSHL, 23);
        FloatVector eA = pA.mul(bA.reinterpretAsFloats()).blend(0f, xA.lt(-87.3f));
        FloatVector eB = pB.mul(bB.reinterpretAsFloats()).blend(0f, xB.lt(-87.3f));
        eA.intoArray(s, offA + i);
        eB.intoArray(s, offB + i);
        accA = accA.add(eA);
        accB = accB.add(eB);
      }
      accA.intoArray(lanes, 0);
      float sumA = sumLanes(lanes);
      accB.intoArray(lanes, 0);
      float sumB = sumLanes(lanes);
      for (int j = i; j < count; j++) { // expSum's scalar tail, per row
        float e = (float) Math.exp(s[offA + j] - mAf);
        s[offA + j] = e;
        sumA += e;
      }
      for (int j = i; j < count; j++) {
        float e = (float) Math.exp(s[offB + j] - mBf);
        s[offB + j] = e;
        sumB += e;
      }
      sums[r] = sumA;
      sums[r + 1] = sumB;
    }
    for (; r < rows; r++) {
      sums[r] = expSum(s, r * sStride, count, m[mOff + r], lanes);
    }
  }

  private static final float LOG2E = 1.44269504f;
  private static final float LN2_HI = 0.693145751953125f; // ln 2 with 12 trailing zero bits
  private static final float LN2_LO = 1.42860677e-6f; // ln 2 - LN2_HI
  private static final float ROUND_MAGIC = 12582912f; // 1.5 * 2^23
  private static final int ROUND_MAGIC_BITS = Float.floatToRawIntBits(12582912f);

  /** Per-thread lane scratch of {@link #sumLanes}: created once per thread, then reused. */
  private static final ThreadLocal<float[]> LANES = ThreadLocal.withInitial(() -> new float[L]);

  /** This thread's scratch of L floats: a caller stores a vector there, then calls {@link #sumLanes}. */
  static float[] lanes() {
    return LANES.get();
  }

  /**
   * Sum of {@code lanes[0 .. L)} in lane order, in scalar: the lanes of a vector the caller stored
   * there (the vector itself never crosses this call: a vector argument of a call C2 keeps out of
   * line is boxed). Used instead of {@code reduceLanes(ADD)}, whose order differs between the
   * interpreter and C2; and instead of a slice-and-add tree, which C2 did not always intrinsify
   * (seen as ~160 bytes allocated per call in a warmed-up JVM).
   */
  static float sumLanes(float[] lanes) {
    float sum = 0f;
    for (int i = 0; i < L; i++) {
      sum += lanes[i];
    }
    return sum;
  }


}
