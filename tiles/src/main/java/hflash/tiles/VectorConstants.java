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

  /**
   * Vector registers the JIT can allocate: 32 on AVX-512 (at any lane width: EVEX encodes ymm16-31
   * and xmm16-31 too) and on AArch64 (NEON, SVE), 16 on AVX2/AVX and SSE. Decides the kernel
   * shape ({@link VectorTileKernels}): 4 vectors x 4 heads = 16 accumulators need 32 registers;
   * with 16 the kernels keep 2 x 4 = 8. {@code -Dhflash.vectorRegisters=16|32} overrides it.
   */
  static final int REGISTERS = registers();

  /** True when the 16-accumulator (4 x 4) kernel shapes fit the register file. */
  static final boolean WIDE = REGISTERS >= 32;

  /**
   * At 512 bits one channel of a 32-key block is two float vectors, so the 4 x 4 shape spans two
   * blocks (two K or V streams read side by side). Measured from DRAM on one Zen 5 guest, two
   * streams took 1.03-1.8x the time of one (the two streams slow the DRAM stream itself there);
   * on an Intel AVX-512 guest the pairs took 0.63-0.94x the time of the old one-block kernels. Default: pairs
   * where the register file holds them, except on AMD CPUs; {@code -Dhflash.blockPairs} overrides.
   */
  static final boolean PAIR_BLOCKS = pairBlocks();

  private VectorConstants() {}

  private static boolean pairBlocks() {
    boolean possible = WIDE && TileFormat.KEY_BLOCK == 2 * FLOATS.length();
    String raw = System.getProperty(TileKernelsProvider.BLOCK_PAIRS_PROPERTY);
    boolean wanted = raw != null && !raw.isBlank()
        ? TileKernelsProvider.requestedBlockPairs(raw)
        : TileKernelsProvider.defaultBlockPairs(CpuVendor.current());
    return possible && wanted;
  }

  private static int registers() {
    String raw = System.getProperty(TileKernelsProvider.REGISTERS_PROPERTY);
    if (raw != null && !raw.isBlank()) {
      return TileKernelsProvider.requestedRegisters(raw);
    }
    String arch = System.getProperty("os.arch", "");
    if (arch.equals("aarch64") || arch.equals("arm64")) {
      return 32;
    }
    // x86: a preferred shape of 512 bits means the JIT may use AVX-512 (-XX:UseAVX=3), which has
    // 32 registers whatever width the kernels use; below that (AVX2, or -XX:UseAVX=2) it has 16
    return VectorShape.preferredShape().vectorBitSize() >= 512 ? 32 : 16;
  }

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
