package hflash.bench;

import hflash.io.UsageException;
import hflash.memory.HadamardRotation;

/**
 * The checks of a bench shape that name the front end's flag in their message ({@code --heads},
 * {@code --kv-rotation}): every problem is a {@link UsageException} the user can fix.
 */
public final class ShapeChecks {

  private ShapeChecks() {}

  /** Each of context, heads, kv-heads and dim positive, in that order, naming the flag. */
  public static void checkPositive(int context, int heads, int kvHeads, int dim) {
    UsageException.positive("--context", context);
    UsageException.positive("--heads", heads);
    UsageException.positive("--kv-heads", kvHeads);
    UsageException.positive("--dim", dim);
  }

  /** Every KV head serves the same number of query heads. */
  public static void checkGroups(int heads, int kvHeads) {
    if (heads % kvHeads != 0) {
      throw new UsageException("--heads must be a multiple of --kv-heads: " + heads + " % " + kvHeads + " != 0");
    }
  }

  /** The rotation for head dimension d, or null; a usage error when d is not a power of two. */
  public static HadamardRotation rotation(boolean hadamard, int d) {
    if (!hadamard) {
      return null;
    }
    try {
      return HadamardRotation.of(d, HadamardRotation.DEFAULT_SEED);
    } catch (IllegalArgumentException e) {
      throw new UsageException("--kv-rotation hadamard: " + e.getMessage(), e);
    }
  }
}
