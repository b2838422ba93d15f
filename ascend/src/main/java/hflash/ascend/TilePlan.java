package hflash.ascend;

/**
 * The tile size, chosen so that a vector unit's K and V tiles, {@code buffers}-deep (2 =
 * ping-pong), fit its unified buffer together with the scratch the tile loop needs. The arithmetic
 * (docs/ascend.md, "Tile size"):
 *
 * <pre>
 *   ub(T) = buffers * 2 * T * d * b      K and V tiles of T keys, b bytes per element
 *         + 32 * d * 4                   f32 staging of one 32-key block while it is cast
 *         + buffers * g * T * 4          scores / weights of the g heads, one per buffer
 *         + 2 * g * d * 4                q and the accumulator, f32
 *         + g * 64                       m and l per head, each padded to a 32-byte block
 *   unit 1 also streams summaries / samples: buffers * T * d * 4 + 2 * g * d * 4
 * </pre>
 *
 * T is the largest power of two in [32, 1024] for which both fit. A requested T that does not fit
 * is rejected with {@link IllegalArgumentException}. The cube path stages the same tiles in L1
 * ({@code buffers * 2 * T * d * b <= L1}), also checked.
 *
 * @param tileTokens keys per tile T
 * @param buffers buffers per tile stream (1 = none, 2 = ping-pong)
 * @param unit2Bytes UB bytes unit 2 needs
 * @param unit1Bytes UB bytes unit 1 needs
 * @param l1Bytes L1 bytes the cube path needs
 */
public record TilePlan(int tileTokens, int buffers, long unit2Bytes, long unit1Bytes, long l1Bytes) {

  /** Smallest and largest tile the planner considers. */
  public static final int MIN_TILE = 32;
  public static final int MAX_TILE = 1024;

  /** UB bytes of a vector unit holding K and V tiles of T keys, per the formula above. */
  public static long unit2Bytes(Shape s, int t, int buffers) {
    long d = s.dim();
    long g = s.group();
    return buffers * 2L * t * d * s.dtype().bytes() + 32L * d * 4 + (long) buffers * g * t * 4
        + 2L * g * d * 4 + g * 64;
  }

  /** UB bytes of unit 1 streaming f32 summaries or samples in chunks of T rows. */
  public static long unit1Bytes(Shape s, int t, int buffers) {
    return (long) buffers * t * s.dim() * 4 + 2L * s.group() * s.dim() * 4;
  }

  /** L1 bytes of the cube path: K and V tiles, buffers-deep. */
  public static long l1Bytes(Shape s, int t, int buffers) {
    return buffers * 2L * t * s.rowBytes();
  }

  /** The largest power-of-two tile that fits; throws if even 32 keys do not fit. */
  public static TilePlan choose(AscendParams p, Shape s, int buffers) {
    TilePlan best = null;
    for (int t = MIN_TILE; t <= MAX_TILE; t *= 2) {
      if (fits(p, s, t, buffers)) {
        best = plan(s, t, buffers);
      }
    }
    if (best == null) {
      return of(p, s, MIN_TILE, buffers); // throws with the numbers
    }
    return best;
  }

  /**
   * A plan with the given tile size.
   *
   * @throws IllegalArgumentException if the tiles do not fit the unified buffer or L1
   */
  public static TilePlan of(AscendParams p, Shape s, int tileTokens, int buffers) {
    if (buffers < 1 || buffers > 8) {
      throw new IllegalArgumentException("buffers out of range [1, 8]: " + buffers);
    }
    if (tileTokens < 1 || tileTokens % 32 != 0) {
      throw new IllegalArgumentException("tile tokens must be a positive multiple of 32: " + tileTokens);
    }
    TilePlan plan = plan(s, tileTokens, buffers);
    if (plan.unit2Bytes > p.ubBytes()) {
      throw new IllegalArgumentException("K and V tiles of " + tileTokens + " keys x " + buffers
          + " buffers need " + plan.unit2Bytes + " bytes of unified buffer, more than "
          + p.ubBytes());
    }
    if (plan.unit1Bytes > p.ubBytes()) {
      throw new IllegalArgumentException("unit 1 chunks of " + tileTokens + " rows x " + buffers
          + " buffers need " + plan.unit1Bytes + " bytes of unified buffer, more than "
          + p.ubBytes());
    }
    if (plan.l1Bytes > p.l1Bytes()) {
      throw new IllegalArgumentException("K and V tiles of " + tileTokens + " keys x " + buffers
          + " buffers need " + plan.l1Bytes + " bytes of L1, more than " + p.l1Bytes());
    }
    return plan;
  }

  private static boolean fits(AscendParams p, Shape s, int t, int buffers) {
    return unit2Bytes(s, t, buffers) <= p.ubBytes() && unit1Bytes(s, t, buffers) <= p.ubBytes()
        && l1Bytes(s, t, buffers) <= p.l1Bytes();
  }

  private static TilePlan plan(Shape s, int t, int buffers) {
    return new TilePlan(t, buffers, unit2Bytes(s, t, buffers), unit1Bytes(s, t, buffers),
        l1Bytes(s, t, buffers));
  }

  /** Bytes of one K (or V) tile: one DMA transfer. */
  public long tileBytes(Shape s) {
    return tileTokens * s.rowBytes();
  }
}
