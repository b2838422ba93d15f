package hflash.tiles;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The one place that picks vector species. Loaded only when the vector kernels are in use, so
 * nothing outside {@code Vector*} classes touches {@code jdk.incubator.vector}.
 *
 * <p>The Vector API only compiles to SIMD instructions when the species is a compile-time constant,
 * so the width is fixed per JVM by {@code -Dhflash.vectorBitSize} (default: the CPU's preferred
 * width); tests cover 128, 256 and 512 bits by running the JVM once per width (see
 * {@code docs/KERNELS.md}).
 */
final class VectorConstants {

  /** Float lane width in bits. */
  static final int BIT_SIZE = TileKernelsProvider.requestedBitSize(VectorShape.preferredShape().vectorBitSize());

  static final VectorSpecies<Float> FLOATS = floats(BIT_SIZE);

  /** Shorts with the same lane count as {@link #FLOATS}: 16-bit K/V rows widen lane for lane. */
  static final VectorSpecies<Short> SHORTS = shorts(BIT_SIZE);

  /** Ints with the same lane count as {@link #FLOATS}, for the 16-bit to f32 bit tricks. */
  static final VectorSpecies<Integer> INTS = ints(BIT_SIZE);

  private VectorConstants() {}

  private static VectorSpecies<Float> floats(int bits) {
    return switch (bits) {
      case 128 -> FloatVector.SPECIES_128;
      case 256 -> FloatVector.SPECIES_256;
      case 512 -> FloatVector.SPECIES_512;
      default -> throw new UnsupportedOperationException("no vector kernel for width " + bits);
    };
  }

  private static VectorSpecies<Short> shorts(int bits) {
    return switch (bits) {
      case 128 -> ShortVector.SPECIES_64;
      case 256 -> ShortVector.SPECIES_128;
      case 512 -> ShortVector.SPECIES_256;
      default -> throw new UnsupportedOperationException("no vector kernel for width " + bits);
    };
  }

  private static VectorSpecies<Integer> ints(int bits) {
    return switch (bits) {
      case 128 -> IntVector.SPECIES_128;
      case 256 -> IntVector.SPECIES_256;
      case 512 -> IntVector.SPECIES_512;
      default -> throw new UnsupportedOperationException("no vector kernel for width " + bits);
    };
  }
}
