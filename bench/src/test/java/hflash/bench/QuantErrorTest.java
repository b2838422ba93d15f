package hflash.bench;

import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.engine.DecodeAttention;
import hflash.engine.ReferenceAttention;
import hflash.memory.DType;
import hflash.memory.HadamardRotation;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Error of exact attention over a quantized cache against float64 attention over the unquantized inputs (an f32
 * cache holds them exactly), per dtype, with and without the Hadamard rotation: the figures of docs/MEMORY.md.
 */
class QuantErrorTest {

  /**
   * Upper bounds per dtype, about 2x the measured relative L2 errors with or without rotation (docs/MEMORY.md). Random:
   * f16 1.9e-4, q8_0 3.9e-3 (5.6e-3 rotated), q4_0 7.3e-2 (9.6e-2). Structured (sharp softmax): f16
   * 2.6e-3, q8_0 4.1e-2 (6.2e-2), q4_0 0.91 (0.64 rotated): q4_0 loses the structured workload's peaks.
   */
  private static double bound(String workload, DType dt) {
    boolean random = workload.equals("random");
    return switch (dt) {
      case F16 -> random ? 4e-4 : 6e-3;
      case Q8_0 -> random ? 1.2e-2 : 1.3e-1;
      default -> random ? 2e-1 : 1.2;
    };
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"random", "structured"})
  void relativeErrorPerDtypeAgainstTheUnquantizedInputs(String name) {
    int n = 4096, heads = 8, kvHeads = 2, d = 128;
    long seed = 42;
    Workload.Shape shape = new Workload.Shape(n, heads, kvHeads, d);
    float[] q = Workload.create(name, shape, seed).query();
    double[] raw;
    try (KvCache f32 = KvCache.allocate(new KvCacheLayout(1, kvHeads, d, n, DType.F32, 128))) {
      Workload.create(name, shape, seed).fill(f32, 0, s -> { });
      raw = ReferenceAttention.decode(f32, 0, q, heads, n, 1 / Math.sqrt(d));
    }
    StringBuilder table = new StringBuilder(name + ":");
    for (DType dt : new DType[] {DType.F16, DType.Q8_0, DType.Q4_0}) {
      for (boolean rotated : new boolean[] {false, true}) {
        HadamardRotation rot = rotated ? HadamardRotation.of(d, HadamardRotation.DEFAULT_SEED) : null;
        try (KvCache cache = KvCache.allocate(new KvCacheLayout(1, kvHeads, d, n, dt, 128), rot);
            DecodeAttention att = DecodeAttention.create(cache, heads, 1, (float) (1 / Math.sqrt(d)))) {
          Workload.create(name, shape, seed).fill(cache, 0, s -> { });
          float[] out = new float[heads * d];
          att.decode(0, q, out);
          double rel = ReferenceAttention.relError(out, raw);
          table.append(String.format(java.util.Locale.ROOT, " %s%s %.2e", dt.id(), rotated ? "+hadamard" : "", rel));
          assertTrue(rel <= bound(name, dt), name + " seed=" + seed + " " + dt + " rotated=" + rotated + ": " + rel);
        }
      }
    }
    System.out.println(table);
  }
}
