/**
 * The attention tile kernels: the {@link hflash.tiles.TileKernels} interface, its provider, the
 * scalar reference kernels and the vector kernels. Only {@code hflash.tiles} is exported, and in it
 * only the kernel API is public: the {@code jdk.incubator.vector} kernels are package-private and
 * reached through the provider.
 *
 * <p>The incubator module is {@code requires static}: optional at run time. Without it (no
 * {@code --add-modules jdk.incubator.vector}) the provider never loads a vector class and returns
 * the scalar kernels; the module depends on the JDK only (not on the cache module: a tile's
 * encoding is {@link hflash.tiles.TileEncoding}).
 */
module hflash.tiles {
  requires static jdk.incubator.vector;

  exports hflash.tiles;
}
