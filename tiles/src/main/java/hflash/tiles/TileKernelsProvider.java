package hflash.tiles;

import java.lang.System.Logger.Level;

/**
 * Chooses the kernels once per JVM: the vector kernels when {@code jdk.incubator.vector} is present
 * and not switched off, else the scalar reference, logging why.
 *
 * <p>System properties:
 *
 * <ul>
 *   <li>{@code hflash.vectorBitSize} = {@code 0} (scalar), {@code 128}, {@code 256} or {@code 512};
 *       default the CPU's preferred width. Anything else throws {@link IllegalArgumentException}.
 *   <li>{@code hflash.vectorRegisters} = {@code 16} or {@code 32}: the register budget the kernel
 *       shapes assume; default 32 on AVX-512 and AArch64, 16 on AVX2 and SSE. Anything else throws
 *       {@link IllegalArgumentException}.
 *   <li>{@code hflash.blockPairs} = {@code true} or {@code false}: at 512 bits with 32 registers,
 *       whether the 4 x 4 kernels read two 32-key (or 32-channel) blocks side by side (two
 *       streams) instead of the 2 x 4 shape over one block; default true except on AMD CPUs,
 *       where two streams measured slower from DRAM. Ignored at other widths. Anything else
 *       throws {@link IllegalArgumentException}.
 *   <li>{@code hflash.native}: whether {@link TileKernels#decodeTiles} runs a native variant
 *       on top of the Java kernels chosen here ({@link NativeKernels}).
 *   <li>{@code hflash.requireProvider} = {@code vector} or {@code scalar}: fail with
 *       {@link IllegalStateException} when the other one was picked (used by the tests to prove the
 *       run they are in uses the kernels they think it does).
 * </ul>
 */
public final class TileKernelsProvider {

  /** Name of the width property. */
  public static final String BIT_SIZE_PROPERTY = "hflash.vectorBitSize";

  /** Name of the register-budget property (16 or 32; default: what the CPU and JIT offer). */
  public static final String REGISTERS_PROPERTY = "hflash.vectorRegisters";

  /** Name of the block-pairs property (true or false; default: {@link #defaultBlockPairs}). */
  public static final String BLOCK_PAIRS_PROPERTY = "hflash.blockPairs";

  private static final System.Logger LOG = System.getLogger(TileKernelsProvider.class.getName());

  private TileKernelsProvider() {}

  /** The kernels of this JVM. */
  public static TileKernels get() {
    return Holder.INSTANCE;
  }

  /**
   * The Java kernels {@link #get()} wraps when a native decode kernel is loaded (the same object
   * otherwise): for same-run native-versus-Java comparisons and for tests that pin the Java
   * kernels' bits.
   */
  public static TileKernels javaOnly() {
    TileKernels k = Holder.INSTANCE;
    return k instanceof NativeTileKernels n ? n.java() : k;
  }

  /**
   * {@code java} with {@link TileKernels#decodeTiles} done by the native variant {@code variant}
   * (the tests hold every runnable variant to the Java kernels this way).
   */
  public static TileKernels withNative(TileKernels java, NativeKernels.Variant variant) {
    return new NativeTileKernels(java, variant);
  }

  /** The scalar reference kernels (always available). */
  public static TileKernels scalar() {
    return Holder.SCALAR;
  }

  /**
   * The width asked for by {@code hflash.vectorBitSize}, or {@code preferred} when unset.
   *
   * @throws IllegalArgumentException when the property is not one of 0, 128, 256, 512
   */
  static int requestedBitSize(int preferred) {
    String raw = System.getProperty(BIT_SIZE_PROPERTY);
    if (raw == null || raw.isBlank()) {
      return preferred;
    }
    int bits;
    try {
      bits = Integer.parseInt(raw.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(BIT_SIZE_PROPERTY + " must be 0, 128, 256 or 512: " + raw, e);
    }
    if (bits != 0 && bits != 128 && bits != 256 && bits != 512) {
      throw new IllegalArgumentException(BIT_SIZE_PROPERTY + " must be 0, 128, 256 or 512: " + bits);
    }
    return bits;
  }

  /**
   * The register budget asked for by {@code hflash.vectorRegisters}.
   *
   * @throws IllegalArgumentException when it is not 16 or 32
   */
  static int requestedRegisters(String raw) {
    return switch (raw.trim()) {
      case "16" -> 16;
      case "32" -> 32;
      default -> throw new IllegalArgumentException(REGISTERS_PROPERTY + " must be 16 or 32: " + raw);
    };
  }

  /**
   * The block-pairs choice asked for by {@code hflash.blockPairs}.
   *
   * @throws IllegalArgumentException when it is not true or false
   */
  static boolean requestedBlockPairs(String raw) {
    return switch (raw.trim()) {
      case "true" -> true;
      case "false" -> false;
      default -> throw new IllegalArgumentException(BLOCK_PAIRS_PROPERTY + " must be true or false: " + raw);
    };
  }

  /**
   * Block pairs by default, except on AMD: on a Zen 5 guest the one-block 2 x 4 kernels read DRAM
   * 1.03-1.8x faster than the pairs (two streams); the Intel guest measured the reverse.
   *
   * @param vendor the CPU vendor string ({@code vendor_id} of /proc/cpuinfo), "" when unknown
   */
  static boolean defaultBlockPairs(String vendor) {
    return !vendor.equals("AuthenticAMD");
  }

  private static TileKernels lookup() {
    TileKernels chosen = pick();
    java.util.Optional<NativeKernels.Variant> nat = NativeKernels.variant();
    if (nat.isPresent()) {
      chosen = new NativeTileKernels(chosen, nat.get());
    }
    String required = System.getProperty("hflash.requireProvider");
    if (required != null && !required.isBlank()) {
      boolean vector = chosen.bitSize() > 0;
      if (required.equals("vector") != vector) {
        throw new IllegalStateException(
            "hflash.requireProvider=" + required + " but the provider is " + chosen.name());
      }
    }
    return chosen;
  }

  private static TileKernels pick() {
    String raw = System.getProperty(BIT_SIZE_PROPERTY);
    if (raw != null && requestedBitSize(0) == 0) {
      return new ScalarTileKernels();
    }
    if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
      LOG.log(Level.WARNING, "jdk.incubator.vector is not loaded; using scalar kernels"
          + " (run java with --add-modules jdk.incubator.vector for the vector kernels)");
      return new ScalarTileKernels();
    }
    int preferred = VectorProbe.preferredBitSize();
    if (preferred < 128) {
      LOG.log(Level.WARNING, "the CPU's preferred vector width is " + preferred
          + " bits, below 128; using scalar kernels");
      return new ScalarTileKernels();
    }
    return VectorProbe.create();
  }

  private static final class Holder {
    static final TileKernels SCALAR = new ScalarTileKernels();
    static final TileKernels INSTANCE = lookup();
  }
}
