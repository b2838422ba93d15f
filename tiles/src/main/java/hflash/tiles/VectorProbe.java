package hflash.tiles;

import jdk.incubator.vector.VectorShape;

/** Touches the incubator module only after the provider has checked that it is loaded. */
final class VectorProbe {

  private VectorProbe() {}

  static int preferredBitSize() {
    return VectorShape.preferredShape().vectorBitSize();
  }

  /** The width of the vector kernels of this JVM. */
  static int kernelBitSize() {
    return VectorConstants.BIT_SIZE;
  }

  static TileKernels create() {
    return new VectorTileKernels();
  }

  static PrefillKernels createPrefill() {
    return new VectorPrefillKernels();
  }
}
