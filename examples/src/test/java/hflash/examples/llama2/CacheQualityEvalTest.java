package hflash.examples.llama2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The cache-dtype quality rows of docs/CLAIMS.md on one shared text (the other is measured there). */
class CacheQualityEvalTest {

  @Test
  void q8ChangesMeanNllByAtMostFiveThousandthsOfANatWithAndWithoutRotation() {
    // seq0: the text where plain q8_0 missed the target with ggml's first scale (-5.8e-3)
    int[] ids = QualityEval.tokenIds(SharedData.trace("seq0"));
    List<QualityEval.Row> rows = CacheQualityEval.evaluate(TestModels.model(), "seq0", ids,
        List.of(CacheQualityEval.Variant.parse("f32"), CacheQualityEval.Variant.parse("q8_0"),
            CacheQualityEval.Variant.parse("q8_0+hadamard")), 32, 1, null);
    assertEquals(0.0, rows.get(0).deltaNll());
    assertEquals(1.0, rows.get(0).agreement());
    // measured with the searched scales (QuantBlocks.searchScale): -1.2e-3 and +2.6e-3 nats,
    // agreement 0.988 and 0.992
    for (int i = 1; i <= 2; i++) {
      QualityEval.Row q8 = rows.get(i);
      assertEquals(i == 1 ? "q8_0" : "q8_0+hadamard", q8.variant());
      assertTrue(Math.abs(q8.deltaNll()) <= 0.005, q8.variant() + " delta NLL " + q8.deltaNll());
      assertTrue(q8.agreement() >= 0.97, q8.variant() + " agreement " + q8.agreement());
      assertEquals(10.0 / 32, q8.kvFraction()); // d = 8: 2 + 8 bytes a row against 32
    }
  }
}
