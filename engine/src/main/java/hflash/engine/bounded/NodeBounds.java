package hflash.engine.bounded;

/** Float-safe upper bounds of a node's scores, shared by the bounded and estimated modes. */
public final class NodeBounds {

  /** Relative rounding slack of a float32 score or bound over d terms: (d + 2) u, u = 2^-24. */
  static final double U = 0x1p-24;

  private NodeBounds() {}

  /**
   * The ball bound from the computed {@code q.c} ({@code dot}), {@code ||q||}, the radius and
   * {@code ||c||} (rounded up), with the float slack of the computed score and of {@code dot}.
   */
  public static float ballBound(float dot, double qn, float radius, float cnorm, int d) {
    double ball = dot + qn * radius * (1 + 1e-6);
    double slack = 2 * (d + 2) * U * qn * ((double) cnorm + radius);
    return (float) (ball + slack) + Math.ulp(dot) + Math.ulp((float) ball);
  }
}
