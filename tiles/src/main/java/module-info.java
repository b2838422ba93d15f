/**
 * The tile kernels: the {@code TileKernels} interface, its provider, the scalar reference and the
 * Vector API kernels (used only when {@code jdk.incubator.vector} is in the boot layer).
 */
module hflash.tiles {
  requires hflash.memory;
  requires static jdk.incubator.vector;

  exports hflash.tiles;
}
