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
   * e^x per lane, for x &lt;= 88: Cody-Waite reduction x = n ln2 + r (|r| &lt;= ln2/2), a degree-6
   * polynomial for e^r (relative error below 2e-7, about 1.5 ulp), scaled by 2^n through the
   * exponent bits; x &lt; -87.3 (and -inf) give 0 (flushes results below 2^-126, whose weight is
   * below float resolution next to the max key's). Written out rather than
   * {@code lanewise(EXP)} because the incubator's EXP returns different last bits interpreted and
   * compiled, which broke bit-reproducibility across JIT warm-up; these are plain IEEE operations
   * (each FMA exactly rounded in every tier), so every tier gives the same bits.
   */
  static FloatVector exp(FloatVector x) {
    FloatVector xc = x.max(-88f);
    FloatVector t = xc.mul(LOG2E).add(ROUND_MAGIC); // round(x log2 e) in the low mantissa bits
    FloatVector n = t.sub(ROUND_MAGIC);
    FloatVector r = n.fma(FloatVector.broadcast(F, -LN2_HI), xc);
    r = n.fma(FloatVector.broadcast(F, -LN2_LO), r);
    FloatVector p = FloatVector.broadcast(F, 1f / 720).fma(r, FloatVector.broadcast(F, 1f / 120));
    p = p.fma(r, FloatVector.broadcast(F, 1f / 24));
    p = p.fma(r, FloatVector.broadcast(F, 1f / 6));
    p = p.fma(r, FloatVector.broadcast(F, 0.5f));
    p = p.fma(r, FloatVector.broadcast(F, 1f));
    p = p.fma(r, FloatVector.broadcast(F, 1f));
    IntVector bits = t.reinterpretAsInts().sub(ROUND_MAGIC_BITS).add(127).lanewise(LSHL, 23);
    FloatVector scaled = p.mul(bits.reinterpretAsFloats());
    return scaled.blend(0f, x.lt(-87.3f));
  }

  private static final float LOG2E = 1.44269504f;
  private static final float LN2_HI = 0.693145751953125f; // ln 2 with 12 trailing zero bits
  private static final float LN2_LO = 1.42860677e-6f; // ln 2 - LN2_HI
  private static final float ROUND_MAGIC = 12582912f; // 1.5 * 2^23
  private static final int ROUND_MAGIC_BITS = Float.floatToRawIntBits(12582912f);

  /**
   * Sum of the lanes in a fixed tree order (halves, then quarters, ...). Used instead of
   * {@code reduceLanes(ADD)}, whose order differs between the interpreter and C2.
   */
  static float sumLanes(FloatVector v) {
    for (int k = L / 2; k >= 1; k >>= 1) {
      v = v.add(v.slice(k));
    }
    return v.lane(0);
  }

}
