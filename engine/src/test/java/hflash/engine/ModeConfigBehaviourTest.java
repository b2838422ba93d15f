package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** What a mode tells front ends about itself, so that nothing outside the engine switches over the modes. */
class ModeConfigBehaviourTest {

  @Test
  void labelsParametersAndProperties() {
    ModeConfig exact = AttentionConfig.exact().modeConfig();
    assertEquals("exact", exact.label(null));
    assertEquals(Map.of(), exact.parameters());
    assertTrue(exact.isExact());
    assertFalse(exact.hasErrorBound());
    assertEquals(-1, exact.tileBudget(10, 1, 1));

    ModeConfig sampled = AttentionConfig.sampled().modeConfig();
    assertEquals("sampled delta=16 r=32 margin=2", sampled.label(null));
    assertEquals(List.of("delta", "radius", "margin"), List.copyOf(sampled.parameters().keySet()));
    assertTrue(sampled.readsSamples());
    assertFalse(sampled.isExact() || sampled.hasErrorBound());

    ModeConfig certified = AttentionConfig.certified(1e-3).modeConfig();
    assertEquals("certified eps=1e-3", certified.label("1e-3"));
    assertEquals("certified eps=0.001", certified.label(null));
    assertEquals("\u03b5=1e-3", certified.pointLabel("1e-3"));
    assertEquals(Map.of("epsilon", 1e-3), certified.parameters());
    assertEquals(Map.of(), AttentionConfig.certifiedMaxError(1e-2).modeConfig().parameters());
    assertEquals("certified maxError=0.01", AttentionConfig.certifiedMaxError(1e-2).modeConfig().label(null));

    ModeConfig share = AttentionConfig.budgetedShare(0.07).modeConfig();
    assertEquals("budgeted 7%", share.label(null)); // not 7.000000000000001%
    assertEquals(Map.of("tiles", "7%"), share.parameters());
    assertEquals(8, share.tileBudget(100, 1, 1));
    assertEquals("budgeted 12 tiles", AttentionConfig.budgetedTiles(12).modeConfig().label(null));
    assertEquals("budgeted 64K bytes", AttentionConfig.budgetedBytes(65536).modeConfig().label("64K"));
    assertEquals(Map.of("budgetBytes", 65536L), AttentionConfig.budgetedBytes(65536).modeConfig().parameters());

    ModeConfig estimated = AttentionConfig.estimated(1e-2).modeConfig();
    assertEquals("estimated maxError=0.01 confidence=0.99", estimated.label(null));
    assertEquals("E=1e-2", estimated.pointLabel("1e-2"));
    assertEquals(List.of("confidence", "seed"), List.copyOf(estimated.parameters().keySet()));
    assertTrue(estimated.hasErrorBound());
  }

  @Test
  void defaultsAreTheParametersDefaults() {
    assertEquals(AttentionConfig.exact(), AttentionConfig.defaults(AttentionMode.EXACT));
    assertEquals(AttentionConfig.sampled(), AttentionConfig.defaults(AttentionMode.SAMPLED));
    assertEquals(AttentionConfig.certified(1e-3), AttentionConfig.defaults(AttentionMode.CERTIFIED));
    assertEquals(AttentionConfig.budgetedShare(0.05), AttentionConfig.defaults(AttentionMode.BUDGETED));
    assertEquals(AttentionConfig.estimated(1e-2), AttentionConfig.defaults(AttentionMode.ESTIMATED));
    assertEquals(DecodeAttention.PREFILL_BLOCK_ROWS, AttentionConfig.exact().prefillBlockRows());
    assertEquals(1, AttentionConfig.streaming(4, 64).prefillBlockRows());
    assertEquals(1, AttentionConfig.sampled().prefillBlockRows());
  }
}
