package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link AttentionReport#fmas()} counts the multiply-adds of what the call did: exact mode is
 * {@code numHeads * n * (2d + EXP_FMAS)} whatever the scheduler and thread count; the bounded modes
 * count their bound work on top of the rows they read, and never more rows than exact.
 */
class FmaCountTest {

  @ParameterizedTest(name = "n={0} d={1} gqa={2} threads={3} {4}")
  @CsvSource({"1, 8, 1, 1, SERIAL", "300, 16, 4, 2, SPLITK", "1000, 64, 2, 3, SPLITK", "777, 80, 4, 2, PIPELINE"})
  void exactCountsEveryRowOnce(int n, int d, int gqa, int threads, Scheduler scheduler) {
    int kvHeads = 2, heads = kvHeads * gqa;
    KvCacheLayout layout = new KvCacheLayout(1, kvHeads, d, n, DType.F16, 64);
    try (KvCache cache = KvCache.allocate(layout);
        DecodeAttention a = DecodeAttention.create(cache, heads, threads, 0.25f, scheduler)) {
      Random r = new Random(7);
      TestData.fill(cache, 0, n, r);
      float[] q = TestData.queryWithScoreMagnitude(heads, d, 4f, r);
      float[] out = new float[heads * d];
      a.decode(0, q, out);
      assertEquals((long) heads * n * (2L * d + AttentionReport.EXP_FMAS), a.report().fmas());
      a.decode(0, q, out, 0, AttentionConfig.exact());
      assertEquals(0, a.report().fmas(), "an empty context does no arithmetic");
    }
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource({"certified", "budgeted", "sampled"})
  void approximateModesCountTheirRowsAndBounds(String mode) {
    int n = 4096, d = 32, kvHeads = 2, heads = 8;
    KvCacheLayout layout = new KvCacheLayout(1, kvHeads, d, n, DType.F32, 64);
    try (KvCache cache = KvCache.allocate(layout);
        DecodeAttention a = DecodeAttention.create(cache, heads, 1, 0.2f)) {
      Random r = new Random(11);
      TestData.fill(cache, 0, n, r);
      float[] q = TestData.queryWithScoreMagnitude(heads, d, 25f, r);
      float[] out = new float[heads * d];
      AttentionConfig config = switch (mode) {
        case "certified" -> AttentionConfig.certified(1e-2);
        case "budgeted" -> AttentionConfig.budgetedTiles(4);
        default -> AttentionConfig.sampled();
      };
      a.decode(0, q, out, config);
      AttentionReport rep = a.report();
      long rowFmas = (long) (heads / kvHeads) * d;
      long kRows = rep.keysScored();
      long vRows = rep.kvBytesRead() / layout.rowBytes() - kRows;
      long sampleRows = rep.sampleBytesRead() / layout.rowBytes();
      long dots = (kRows + vRows + sampleRows) * rowFmas;
      assertTrue(rep.fmas() >= dots, () -> rep + " rows " + kRows + "+" + vRows + "+" + sampleRows);
      assertTrue(rep.fmas() <= dots + kRows * (heads / kvHeads) * AttentionReport.EXP_FMAS
          + (rep.summaryBytesRead() > 0 ? 4L * heads * d * (n / 64 + n / 64 / 16 + 1) : 0), rep::toString);
      if (!mode.equals("sampled")) {
        assertTrue(rep.summaryBytesRead() > 0 && rep.fmas() > dots, "bound work counts: " + rep);
      }
    }
  }
}
