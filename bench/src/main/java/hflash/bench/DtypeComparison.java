package hflash.bench;

import hflash.memory.DType;
import hflash.memory.KvCache;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@code bench --dtype a,b,c}: the same bench (same workload, seed, modes, schedulers) for each
 * dtype, in one process. Each dtype's cache is filled from the same keys and values (the workload is
 * regenerated from the seed); all are held at once and timed in alternating iterations
 * ({@link BenchRunner#runDtypes}), so the ratios between dtypes come from one time window. Every JSON line
 * keeps the single-dtype fields and adds {@code speedupVsFirstDtype} (the first dtype's median of
 * the same mode and scheduler over this one's) and {@code bytesPerToken} (K and V bytes per
 * position per layer, sample store and summaries included: {@link KvCache#bytesPerPosition}).
 */
public final class DtypeComparison {

  private DtypeComparison() {}

  /** Adds speedupVsFirstDtype (first's median / r's) and bytesPerToken to a bench JSON object. */
  public static Map<String, Object> withDtypeFields(Map<String, Object> m, BenchRunner.Result r, BenchRunner.Result first) {
    m.put("speedupVsFirstDtype", Format.finite(first.samples().medianMs() / r.samples().medianMs()));
    m.put("bytesPerToken", KvCache.bytesPerPosition(r.config().layout(r.config().context())));
    m.put("kvRotation", r.config().hadamard() ? "hadamard" : "none");
    return m;
  }

  /** The same bench with another dtype. */
  public static BenchRunner.Config with(BenchRunner.Config c, DType dt) {
    return new BenchRunner.Config(new ArrayList<>(c.modes()), c.workload(), c.context(), c.heads(), c.kvHeads(),
        c.dim(), dt, c.threads(), c.schedulers(), c.tileTokens(), c.seed(), c.maxWarmup(), c.iterations(),
        c.oracleEpsilon(), c.hadamard());
  }
}
