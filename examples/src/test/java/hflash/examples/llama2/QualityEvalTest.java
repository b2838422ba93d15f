package hflash.examples.llama2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.engine.AttentionConfig;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The quality evaluation on one real text: the float32-exact modes agree with exact everywhere. */
class QualityEvalTest {

  @Test
  void exactAndSampledAgreeEverywhereOnARealText() {
    int[] ids = QualityEval.tokenIds(SharedData.trace("seq1"));
    assertEquals(512, ids.length);
    assertEquals(1, ids[0], "BOS first");
    List<QualityEval.Row> rows = QualityEval.evaluate(TestModels.model(), "seq1", ids,
        List.of(new QualityEval.Variant("exact", AttentionConfig.exact()),
            new QualityEval.Variant("sampled", AttentionConfig.sampled()),
            new QualityEval.Variant("budgeted 2", AttentionConfig.budgetedTiles(2))),
        QualityEval.DEFAULT_TILE_TOKENS, 1, null);
    QualityEval.Row exact = rows.get(0), sampled = rows.get(1), budgeted = rows.get(2);
    assertEquals(511, exact.predictions());
    assertEquals(1.0, exact.agreement());
    assertEquals(0.0, exact.deltaNll());
    assertEquals(1.0, exact.kvFraction());
    // a trained model on its own kind of text: well below log(512) = 6.24 nats
    assertTrue(exact.meanNll() > 0.5 && exact.meanNll() < 3, exact.toString());
    assertEquals(1.0, sampled.agreement(), sampled.toString());
    assertEquals(0.0, sampled.deltaNll(), 1e-6, sampled.toString());
    assertTrue(sampled.kvFraction() >= 1.0, "sampled reads every key: " + sampled);
    // the budgeted run really skips tiles, and reports a nonzero bound for it
    assertTrue(budgeted.kvFraction() < 0.5, budgeted.toString());
    assertTrue(budgeted.maxErrorBound() > 0, budgeted.toString());
    String table = QualityEval.markdown(rows);
    assertTrue(table.startsWith("| text | mode |"), table);
    assertEquals(2 + 3, table.split("\n").length, table);
  }

  @Test
  void nllIsTheNegativeLogSoftmax() {
    float[] logits = {1f, 2f, 3f};
    double z = Math.exp(1) + Math.exp(2) + Math.exp(3);
    assertEquals(-Math.log(Math.exp(2) / z), QualityEval.nll(logits, 1), 1e-12);
    assertEquals(2, QualityEval.argmax(logits));
  }
}
