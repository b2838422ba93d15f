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

  /** The table: 16 registers -> 2x4; 32 -> 4x4, at 512 bits over pairs of blocks. */
  static String expectedShape(int bits, int registers) {
    if (bits == 0) {
      return "scalar";
    }
    if (registers < 32) {
      return "2x4";
    }
    return bits == 512 ? "4x4-block-pairs" : "4x4";
  }

  @Test
  void shapeFollowsWidthAndRegisterBudget() {
    assumeTrue(UNDER_TEST.bitSize() > 0, "scalar kernels have one shape");
    int registers = VectorConstants.REGISTERS;
    String pinned = System.getProperty(TileKernelsProvider.REGISTERS_PROPERTY);
    if (pinned != null) {
      assertEquals(Integer.parseInt(pinned), registers, "the pinned budget is the one in use");
    }
    assertEquals(expectedShape(UNDER_TEST.bitSize(), registers), UNDER_TEST.shape(), UNDER_TEST.name());
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
}
