package hflash.examples.llama2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The cache-dtype quality rows of docs/CLAIMS.md on one shared text (the other is measured there). */
class CacheQualityEvalTest {

  @Test
  void q8WithRotationChangesMeanNllByAtMostFiveThousandthsOfANat() {
    int[] ids = QualityEval.tokenIds(SharedData.trace("seq1"));
    List<QualityEval.Row> rows = CacheQualityEval.evaluate(TestModels.model(), "seq1", ids,
        List.of(CacheQualityEval.Variant.parse("f32"), CacheQualityEval.Variant.parse("q8_0+hadamard")), 32, 1, null);
    assertEquals(0.0, rows.get(0).deltaNll());
    assertEquals(1.0, rows.get(0).agreement());
    QualityEval.Row q8 = rows.get(1);
    assertEquals("q8_0+hadamard", q8.variant());
    // measured: +4.1e-3 nats, agreement 0.986 (plain q8_0: +3.1e-3 here, -5.8e-3 on seq0)
    assertTrue(Math.abs(q8.deltaNll()) <= 0.005, "delta NLL " + q8.deltaNll());
    assertTrue(q8.agreement() >= 0.97, "agreement " + q8.agreement());
    assertEquals(10.0 / 32, q8.kvFraction()); // d = 8: 2 + 8 bytes a row against 32
  }
}
