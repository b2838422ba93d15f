package hflash.engine.pass;

import hflash.memory.DType;
import hflash.tiles.TileEncoding;

/**
 * The kernels' encoding of each cache dtype: the one place the engine maps the cache module's
 * {@link DType} to the kernel module's {@link TileEncoding}, which keeps {@code tiles} free of a
 * dependency on {@code memory}. Matched by id once, then an array lookup per kernel call.
 */
public final class Encodings {

  private static final TileEncoding[] BY_ORDINAL = new TileEncoding[DType.values().length];

  static {
    for (DType d : DType.values()) {
      BY_ORDINAL[d.ordinal()] = TileEncoding.of(d.id());
    }
  }

  private Encodings() {}

  /** The encoding the kernels read a tile of {@code dtype} as. */
  public static TileEncoding of(DType dtype) {
    return BY_ORDINAL[dtype.ordinal()];
  }
}
