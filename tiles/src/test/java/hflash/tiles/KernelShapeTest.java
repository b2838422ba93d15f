package hflash.tiles;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

/**
 * Kernel selection: which register blocking each lane width and register budget gets (the table
 * of docs/KERNELS.md). Surefire runs this class in every width fork, and in two forks that pin a
 * 16-register budget ({@code -Dhflash.vectorRegisters=16}, the AVX2 and SSE shapes), so every row
 * of the table is exercised on one machine; TileKernelsTest holds each shape to the scalar bits.
 */
class KernelShapeTest {

  private static final TileKernels UNDER_TEST = TileKernelsProvider.get();

  /**
   * The table: 16 registers -> 2x4; 32 -> 4x4, at 512 bits over pairs of blocks when block pairs
   * are on, else 2x4 over one block (a 512-bit block row holds only two vectors).
   */
  static String expectedShape(int bits, int registers, boolean pairs) {
    if (bits == 0) {
      return "scalar";
    }
    if (registers < 32) {
      return "2x4";
    }
    if (bits == 512) {
      return pairs ? "4x4-block-pairs" : "2x4";
    }
    return "4x4";
  }

  /** Block pairs in this JVM: the pinned property, else the vendor default. */
  private static boolean pairsWanted() {
    String pinned = System.getProperty(TileKernelsProvider.BLOCK_PAIRS_PROPERTY);
    return pinned != null ? Boolean.parseBoolean(pinned) : TileKernelsProvider.defaultBlockPairs(CpuVendor.current());
  }

  @Test
  void shapeFollowsWidthAndRegisterBudget() {
    assumeTrue(UNDER_TEST.bitSize() > 0, "scalar kernels have one shape");
    int registers = VectorConstants.REGISTERS;
    String pinned = System.getProperty(TileKernelsProvider.REGISTERS_PROPERTY);
    if (pinned != null) {
      assertEquals(Integer.parseInt(pinned), registers, "the pinned budget is the one in use");
    }
    assertEquals(expectedShape(UNDER_TEST.bitSize(), registers, pairsWanted()), UNDER_TEST.shape(),
        UNDER_TEST.name() + " blockPairs=" + System.getProperty(TileKernelsProvider.BLOCK_PAIRS_PROPERTY));
  }

  @Test
  void scalarShapeIsNamed() {
    assertEquals("scalar", TileKernelsProvider.scalar().shape());
  }

  @Test
  void badRegisterBudgetIsRejectedWithTheFlagName() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> TileKernelsProvider.requestedRegisters("24"));
    assertEquals("hflash.vectorRegisters must be 16 or 32: 24", e.getMessage());
    assertEquals(16, TileKernelsProvider.requestedRegisters(" 16"));
    assertEquals(32, TileKernelsProvider.requestedRegisters("32"));
  }

  @Test
  void badBlockPairsValueIsRejectedWithTheFlagName() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> TileKernelsProvider.requestedBlockPairs("yes"));
    assertEquals("hflash.blockPairs must be true or false: yes", e.getMessage());
    assertEquals(true, TileKernelsProvider.requestedBlockPairs(" true"));
    assertEquals(false, TileKernelsProvider.requestedBlockPairs("false"));
  }

  @Test
  void blockPairsDefaultFollowsTheVendor() {
    assertEquals(false, TileKernelsProvider.defaultBlockPairs("AuthenticAMD"));
    assertEquals(true, TileKernelsProvider.defaultBlockPairs("GenuineIntel"));
    assertEquals(true, TileKernelsProvider.defaultBlockPairs(""));
  }

  @Test
  void vendorIsReadFromTheVendorIdLine() {
    assertEquals("AuthenticAMD", CpuVendor.parse(java.util.List.of("processor\t: 0", "vendor_id\t: AuthenticAMD",
        "cpu family\t: 26")));
    assertEquals("", CpuVendor.parse(java.util.List.of("processor : 0", "model name : ARMv8")));
  }
}
