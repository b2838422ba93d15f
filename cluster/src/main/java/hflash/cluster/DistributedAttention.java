package hflash.cluster;

import com.hazelcast.cluster.Member;
import hflash.engine.AttentionConfig;
import hflash.engine.ModeConfig;
import hflash.engine.AttentionState;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.Future;

/**
 * Decode attention over a {@link DistributedKvCache}: context parallelism. Per call, one request
 * (serialised once, sent to every member asked) carries {@code q} and each member's part (its
 * shards and their modes); each member runs hflash's
 * {@link hflash.engine.DecodeAttention#decodeState} on each shard it is asked for (one thread per
 * shard, over the shard's first {@code shardLength(keys, s)} positions) and sends back the
 * partial states {@code (m, l, acc)}; the caller merges them with {@link AttentionState#merge} in
 * shard order 0, 1, 2, ... and normalises. The output bits are those of a local split-K over the
 * same key ranges merged in the same order: each shard's state is what a local
 * {@code DecodeAttention} with one thread computes over a cache holding that shard's positions.
 *
 * <p>Modes: exact, sampled and certified run unchanged on every shard (certified's stopping rule
 * per shard, unread mass &lt;= epsilon * read mass, sums to the same rule globally, and shards
 * whose whole mass cannot matter are not asked); budgeted splits its tile or byte budget over the
 * shards by the bounds of their top-level summaries ({@link BudgetSplit}; a shard given nothing
 * is not asked; a share budget applies per shard as it is). The bounds of the merged result are recombined from the shards' (see
 * {@link ClusterReport#errorBound}). Windowed (sinks + window) configs are not supported: the
 * window is not a prefix of the shards.
 *
 * <p>Faults: when a member fails during the call, its shards are asked of their next copy and the
 * call completes with the same bits; with no copy left the call throws {@link ShardLostException}
 * and writes nothing. One call at a time per instance (the cache's lock).
 */
public final class DistributedAttention implements AutoCloseable {

  private final DistributedKvCache cache;
  private final int numHeads;
  private final int headDim;
  private final float scale;
  private final ClusterReport report = new ClusterReport();
  private final AttentionState merged;
  private final AttentionState part;
  private volatile boolean closed;

  private DistributedAttention(DistributedKvCache cache, int numHeads, float scale) {
    this.cache = Objects.requireNonNull(cache, "cache");
    cache.ensureOpen();
    int kvHeads = cache.layout().kvHeads();
    if (numHeads <= 0) {
      throw new IllegalArgumentException("numHeads must be positive: " + numHeads);
    }
    if (numHeads % kvHeads != 0) {
      throw new IllegalArgumentException("numHeads must be a multiple of numKvHeads: "
          + numHeads + " % " + kvHeads + " != 0");
    }
    if (!Float.isFinite(scale) || scale <= 0f) {
      throw new IllegalArgumentException("scale must be finite and positive: " + scale);
    }
    this.numHeads = numHeads;
    this.headDim = cache.layout().headDim();
    this.scale = scale;
    this.merged = new AttentionState(numHeads, headDim);
    this.part = new AttentionState(numHeads, headDim);
  }

  /** Attention with scale {@code 1/sqrt(headDim)}. */
  public static DistributedAttention create(DistributedKvCache cache, int numHeads) {
    return create(cache, numHeads, (float) (1.0 / Math.sqrt(cache.layout().headDim())));
  }

  public static DistributedAttention create(DistributedKvCache cache, int numHeads, float scale) {
    return new DistributedAttention(cache, numHeads, scale);
  }

  public int numHeads() {
    return numHeads;
  }

  public float scale() {
    return scale;
  }

  /** Counters of the last call (overwritten by the next). */
  public ClusterReport report() {
    return report;
  }

  /** Exact attention to every stored position of {@code layer}. */
  public void decode(int layer, float[] q, float[] out) {
    decode(layer, q, out, cache.length(layer), AttentionConfig.exact());
  }

  /** Attention to every stored position of {@code layer} in the given mode. */
  public void decode(int layer, float[] q, float[] out, AttentionConfig config) {
    decode(layer, q, out, cache.length(layer), config);
  }

  /**
   * Attends to the first {@code keys} positions of {@code layer} in the mode of {@code config};
   * {@code q} and {@code out} are (numHeads, headDim) row-major, as in
   * {@link hflash.engine.DecodeAttention#decode(int, float[], float[], int, AttentionConfig)}.
   *
   * @throws IllegalArgumentException wrong lengths, a non-finite query value
   * @throws IndexOutOfBoundsException layer or keys out of range
   * @throws UnsupportedOperationException a windowed config, or an output-error target (estimated
   *     mode, certified with maxError)
   * @throws ShardLostException some of the keys have no copy left
   */
  public void decode(int layer, float[] q, float[] out, int keys, AttentionConfig config) {
    if (closed) {
      throw new IllegalStateException("DistributedAttention is closed");
    }
    cache.ensureOpen();
    int layers = cache.layout().layers();
    Objects.checkIndex(layer, layers);
    Objects.requireNonNull(q, "q");
    Objects.requireNonNull(out, "out");
    Objects.requireNonNull(config, "config");
    int expected = numHeads * headDim;
    if (q.length != expected) {
      throw new IllegalArgumentException("q length differs from numHeads*headDim: " + q.length
          + "!=" + expected);
    }
    if (out.length != expected) {
      throw new IllegalArgumentException("out length differs from numHeads*headDim: "
          + out.length + "!=" + expected);
    }
    for (int i = 0; i < q.length; i++) {
      if (!Float.isFinite(q[i])) {
        throw new IllegalArgumentException("non-finite value at q[" + i + "]=" + q[i]);
      }
    }
    if (config.windowed()) {
      throw new UnsupportedOperationException(
          "windowed (sinks + window) configs are not supported over a distributed cache");
    }
    Spread spread = spread(config.modeConfig());
    if (spread == Spread.UNSUPPORTED) {
      // per-shard output targets do not add up to a target on the merged output: not offered yet
      throw new UnsupportedOperationException(
          "output-error targets (estimated, certified --max-error) are not supported over a distributed cache");
    }
    cache.lock.lock();
    try {
      int length = cache.length(layer);
      if (keys < 0 || keys > length) {
        throw new IndexOutOfBoundsException("keys out of range [0, " + length + "]: " + keys
            + " (layer=" + layer + ")");
      }
      run(layer, q, keys, config);
      merged.finish(out, 0);
    } finally {
      cache.lock.unlock();
    }
  }

  /**
   * The per-call scratch of {@link #run}: shard states, bounds, which shards were asked. The
   * states array (the largest part, {@code shards * numHeads * (headDim + 2)} floats) is kept from
   * call to call: a fresh 33 KB array per W1 call was a sixth of the coordinator's CPU time.
   */
  private static final class Call {
    float[] states; // (shards, numHeads * (headDim + 2))
    double[][] rho, bound; // (shards)(numHeads), bounded modes
    boolean[] asked; // (shards)
    AttentionConfig[] configs; // (shards) what each shard runs, null when not asked
    final Map<Integer, List<String>> tried = new LinkedHashMap<>();
    boolean retry;

    void reset(int shards, int stride) {
      if (asked == null || asked.length != shards) {
        states = new float[shards * stride];
        rho = new double[shards][];
        bound = new double[shards][];
        asked = new boolean[shards];
        configs = new AttentionConfig[shards];
      } else {
        java.util.Arrays.fill(rho, null);
        java.util.Arrays.fill(bound, null);
        java.util.Arrays.fill(asked, false);
        java.util.Arrays.fill(configs, null);
      }
      tried.clear();
      retry = false;
    }
  }

  private final Call call = new Call();

  private void run(int layer, float[] q, int keys, AttentionConfig config) {
    Spread spread = spread(config.modeConfig());
    Striping st = cache.striping();
    int shards = st.shards();
    report.reset(numHeads);
    report.keysInContext = (long) keys * cache.layout().kvHeads();
    int[] localKeys = new int[shards];
    List<Integer> wanted = new ArrayList<>();
    for (int s = 0; s < shards; s++) {
      localKeys[s] = st.shardLength(keys, s);
      if (localKeys[s] > 0) {
        wanted.add(s);
      }
    }
    int stride = numHeads * (headDim + 2);
    call.reset(shards, stride);
    double[] skipped = null; // mass bound of the shards not asked, per head (absolute log frame)
    ShardSummaries summaries = cache.summaries();
    boolean bounded = summaries.complete() && wanted.size() > 1;
    if (spread == Spread.CERTIFIED_ROUNDS && bounded) {
      skipped = certifiedRounds(layer, q, localKeys, wanted, config.epsilon(), call);
    } else if (spread == Spread.BUDGET_SPLIT && config.budgetShare() == 0 && wanted.size() > 1) {
      skipped = budgeted(layer, q, localKeys, wanted, config, bounded, call);
    } else {
      AttentionConfig c = spread == Spread.CERTIFIED_ROUNDS && wanted.size() > 1
          ? AttentionConfig.certified(config.epsilon() / 2) : config;
      for (int s : wanted) {
        call.configs[s] = c;
      }
      ask(layer, q, localKeys, wanted, call);
    }
    merged.reset();
    for (int s = 0; s < shards; s++) { // fixed shard order: the bits do not depend on timing
      if (call.asked[s]) {
        part.readFrom(call.states, s * stride);
        merged.merge(part);
      } else if (localKeys[s] > 0) {
        report.shardsSkipped++;
        call.configs[s] = null;
      }
    }
    report.asked = call.asked.clone();
    report.configs = call.configs.clone();
    if (spread == Spread.CERTIFIED_ROUNDS || spread == Spread.BUDGET_SPLIT) {
      combineBounds(layer, call, localKeys, skipped);
    }
  }

  /**
   * How the coordinator spreads a mode over the shards: the cluster's own per-mode concern, decided
   * for every mode in {@link #spread} (a pattern switch without a default, so a new mode does not
   * compile until it is given a plan here).
   */
  enum Spread {
    /** Every shard with keys runs the mode as given; the states merge exactly. */
    EVERY_SHARD,
    /** Certified: shards are asked in rounds by their bounds, each at a share of epsilon. */
    CERTIFIED_ROUNDS,
    /** Budgeted: a tile or byte budget is split among the shards by their bounds. */
    BUDGET_SPLIT,
    /** An output-error target: per-shard targets do not add up to one on the merged output. */
    UNSUPPORTED
  }

  static Spread spread(ModeConfig mode) {
    return switch (mode) {
      case ModeConfig.Exact e -> Spread.EVERY_SHARD;
      case ModeConfig.Sampled s -> Spread.EVERY_SHARD;
      case ModeConfig.Certified c -> c.outputTarget() ? Spread.UNSUPPORTED : Spread.CERTIFIED_ROUNDS;
      case ModeConfig.CertifiedOracle o -> Spread.CERTIFIED_ROUNDS;
      case ModeConfig.Budgeted b -> Spread.BUDGET_SPLIT;
      case ModeConfig.Estimated e -> Spread.UNSUPPORTED;
    };
  }

  /**
   * Whether a distributed cache serves {@code config}: every key (no sinks + window) and no
   * output-error target (estimated, certified with a target).
   */
  public static boolean supports(AttentionConfig config) {
    return !config.windowed() && spread(config.modeConfig()) != Spread.UNSUPPORTED;
  }

  /** Per shard and head, {@code log(n_s) + bound_sh}: the log of the bound on the shard's mass. */
  private double[][] logMass(int layer, float[] q, int[] localKeys, List<Integer> wanted) {
    int group = numHeads / cache.layout().kvHeads();
    double[][] u = new double[localKeys.length][numHeads];
    for (double[] row : u) {
      java.util.Arrays.fill(row, Double.NEGATIVE_INFINITY);
    }
    for (int s : wanted) {
      for (int h = 0; h < numHeads; h++) {
        u[s][h] = Math.log(localKeys[s])
            + cache.summaries().scoreBound(s, layer, h / group, q, h * headDim, scale);
      }
    }
    return u;
  }

  /**
   * Budgeted over members: the tile budget (a byte budget converted to tiles per KV head as the
   * local call does) split over the shards by their mass bounds ({@link BudgetSplit}); shards
   * given no tile are not asked and their whole mass bound enters the stated bound. Without
   * every shard's summary (an attach that could not read one), the split is even and every shard
   * gets at least one tile.
   *
   * @return per head, the skipped mass bound as {@code log(sum_s n_s exp(bound_s))}, or null
   */
  private double[] budgeted(int layer, float[] q, int[] localKeys, List<Integer> wanted,
      AttentionConfig config, boolean bounded, Call call) {
    hflash.memory.KvCacheLayout layout = cache.layout();
    int shards = localKeys.length;
    long tileBytes = 2L * layout.tileTokens() * layout.rowBytes() * layout.kvHeads();
    long total = config.budgetTiles() > 0 ? config.budgetTiles() : Math.max(1, config.budgetBytes() / tileBytes);
    long[] caps = new long[shards];
    for (int s : wanted) {
      caps[s] = Math.ceilDiv(localKeys[s], layout.tileTokens());
    }
    double[][] u = bounded ? logMass(layer, q, localKeys, wanted) : null;
    double[] w = new double[shards];
    for (int s : wanted) {
      w[s] = 1;
    }
    if (bounded) {
      w = BudgetSplit.weights(u);
    } else {
      total = Math.max(total, wanted.size());
    }
    long[] tiles = BudgetSplit.apportion(total, w, caps);
    List<Integer> ask = new ArrayList<>();
    double[] skip = new double[numHeads];
    java.util.Arrays.fill(skip, Double.NEGATIVE_INFINITY);
    for (int s : wanted) {
      if (tiles[s] > 0) {
        ask.add(s);
        call.configs[s] = config.budgetTiles() > 0 ? AttentionConfig.budgetedTiles((int) tiles[s])
            : AttentionConfig.budgetedBytes(tiles[s] * tileBytes);
      } else if (u != null) {
        for (int h = 0; h < numHeads; h++) {
          skip[h] = logAdd(skip[h], u[s][h]);
        }
      }
    }
    ask(layer, q, localKeys, ask, call);
    return bounded ? skip : null;
  }

  /**
   * Certified over members: first the shard with the largest score bound of each head (from the
   * shards' top-level boxes), then every other shard unless the bound on its whole mass,
   * {@code n_s * exp(bound_s - m)}, fits with the others skipped into {@code epsilon/2} of the
   * mass read so far for every head (the shards asked run certified(epsilon/2) themselves, so
   * unread &lt;= epsilon * read overall). Two rounds when some shard must be asked after all.
   *
   * @return per head, the skipped mass bound as {@code log(sum_s n_s exp(bound_s))}, or -inf
   */
  private double[] certifiedRounds(int layer, float[] q, int[] localKeys, List<Integer> wanted,
      double epsilon, Call call) {
    int group = numHeads / cache.layout().kvHeads();
    AttentionConfig perShard = AttentionConfig.certified(epsilon / 2); // the other half: shards not asked
    for (int s : wanted) {
      call.configs[s] = perShard;
    }
    double[][] ub = new double[localKeys.length][numHeads];
    List<Integer> first = new ArrayList<>();
    for (int h = 0; h < numHeads; h++) {
      int best = -1;
      for (int s : wanted) {
        ub[s][h] = cache.summaries().scoreBound(s, layer, h / group, q, h * headDim, scale);
        if (best < 0 || ub[s][h] > ub[best][h]) {
          best = s;
        }
      }
      if (!first.contains(best)) {
        first.add(best);
      }
    }
    first.sort(null);
    ask(layer, q, localKeys, first, call);
    AttentionState read = new AttentionState(numHeads, headDim);
    for (int s : first) {
      part.readFrom(call.states, s * numHeads * (headDim + 2));
      read.merge(part);
    }
    double[] skip = new double[numHeads]; // log of the skipped mass bound, absolute frame
    java.util.Arrays.fill(skip, Double.NEGATIVE_INFINITY);
    List<Integer> second = new ArrayList<>();
    for (int s : wanted) {
      if (first.contains(s)) {
        continue;
      }
      boolean fits = true;
      double[] with = new double[numHeads];
      for (int h = 0; h < numHeads && fits; h++) {
        double mass = Math.log(localKeys[s]) + ub[s][h];
        with[h] = logAdd(skip[h], mass);
        double budget = Math.log(epsilon / 2) + Math.log(read.sum(h)) + read.max(h);
        fits = read.sum(h) > 0 && with[h] <= budget;
      }
      if (fits) {
        skip = with;
      } else {
        second.add(s);
      }
    }
    if (!second.isEmpty()) {
      ask(layer, q, localKeys, second, call);
    }
    return skip;
  }

  private static double logAdd(double a, double b) {
    if (a == Double.NEGATIVE_INFINITY) {
      return b;
    }
    double m = Math.max(a, b);
    return m + Math.log(Math.exp(a - m) + Math.exp(b - m));
  }

  /** Asks the members for {@code shards} (one request per member), failing over to other copies. */
  private void ask(int layer, float[] q, int[] localKeys, List<Integer> shards, Call call) {
    int stride = numHeads * (headDim + 2);
    List<Integer> wanted = shards;
    while (!wanted.isEmpty()) {
      Map<String, List<Integer>> byMember = assign(wanted, call.tried);
      List<String> members = new ArrayList<>(byMember.keySet());
      List<ShardTasks.Decode.Part> parts = new ArrayList<>();
      for (String u : members) {
        List<Integer> mine = byMember.get(u);
        int[] sh = mine.stream().mapToInt(Integer::intValue).toArray();
        int[] kk = new int[sh.length];
        AttentionConfig[] cc = new AttentionConfig[sh.length];
        for (int j = 0; j < sh.length; j++) {
          kk[j] = localKeys[sh[j]];
          cc[j] = call.configs[sh[j]];
        }
        parts.add(new ShardTasks.Decode.Part(members.size() == 1 ? null : u, sh, kk, cc));
      }
      ShardTasks.Decode task = new ShardTasks.Decode(cache.name(), layer, numHeads, scale, parts, q);
      long t0 = System.nanoTime();
      List<Future<ShardTasks.DecodeReply>> fs = cache.client().submitToAll(members, task);
      List<Integer> again = new ArrayList<>();
      for (int i = 0; i < members.size(); i++) {
        String u = members.get(i);
        List<Integer> mine = byMember.get(u);
        ShardTasks.DecodeReply reply;
        try {
          reply = Calls.get(fs.get(i));
        } catch (RuntimeException e) {
          if (!Calls.isMemberFailure(e)) {
            throw e;
          }
          cache.placement.memberFailed(u, e.toString());
          cache.countFailover();
          report.failovers++;
          again.addAll(mine);
          continue;
        }
        long got = System.nanoTime();
        long rtt = got - t0;
        long positions = 0, read = 0;
        for (int j = 0; j < mine.size(); j++) {
          int s = mine.get(j);
          System.arraycopy(reply.states, j * stride, call.states, s * stride, stride);
          call.asked[s] = true;
          positions += localKeys[s];
          int c = j * ShardTasks.DecodeReply.COUNTERS;
          long[] k = reply.counters;
          read += k[c] + k[c + 1] + k[c + 2];
          report.kvBytesRead += k[c];
          report.summaryBytesRead += k[c + 1];
          report.sampleBytesRead += k[c + 2];
          report.keysScored += k[c + 3];
          report.tilesRead += k[c + 4];
          report.fmas += k[c + 5];
          if (reply.rho.length > 0) {
            call.rho[s] = java.util.Arrays.copyOfRange(reply.rho, j * numHeads, (j + 1) * numHeads);
            call.bound[s] = java.util.Arrays.copyOfRange(reply.errorBound, j * numHeads, (j + 1) * numHeads);
          }
        }
        Member m = cache.client().member(u);
        report.calls.add(new ClusterReport.MemberCall(u, m == null ? "?" : m.getAddress().toString(),
            mine.stream().mapToInt(Integer::intValue).toArray(), positions, read,
            reply.memberNanos, reply.memberCpuNanos, rtt, reply.startNanos - t0, got - reply.startNanos - reply.memberNanos,
            task.payloadBytes, reply.payloadBytes, call.retry));
      }
      again.sort(null);
      wanted = again;
      call.retry = !again.isEmpty() || call.retry;
    }
  }

  /**
   * Picks, for each wanted shard, its first live copy not tried yet in this call; throws
   * {@link ShardLostException} for shards with none left.
   */
  private Map<String, List<Integer>> assign(List<Integer> wanted, Map<Integer, List<String>> tried) {
    Map<String, List<Integer>> byMember = new LinkedHashMap<>();
    List<Integer> lost = new ArrayList<>();
    for (int s : wanted) {
      List<String> t = tried.computeIfAbsent(s, k -> new ArrayList<>());
      String pick = null;
      for (String u : cache.placement.liveOwners(s)) {
        if (!t.contains(u)) {
          pick = u;
          break;
        }
      }
      if (pick == null) {
        lost.add(s);
        continue;
      }
      t.add(pick);
      byMember.computeIfAbsent(pick, k -> new ArrayList<>()).add(s);
    }
    if (!lost.isEmpty()) {
      throw cache.lost(lost);
    }
    return byMember;
  }

  /**
   * Global bounds from the shards': shard s skipped at most {@code e_s = rho_s / (1 - rho_s) * l_s}
   * of mass (in its own frame {@code m_s}); shards not asked at all at most their summary bound.
   * In a common frame {@code rho = E / (L + E)}, and {@code ||out - exact|| <= rho * (vmax + ||out||)}
   * with {@code vmax} the largest skipped-value norm any shard used
   * ({@code errorBound_s / rho_s - ||out_s||}) or a skipped shard's largest value norm.
   */
  private void combineBounds(int layer, Call call, int[] localKeys, double[] skipped) {
    int stride = numHeads * (headDim + 2);
    int group = numHeads / cache.layout().kvHeads();
    float[] tmp = new float[numHeads * headDim];
    merged.finish(tmp, 0);
    for (int h = 0; h < numHeads; h++) {
      double mMax = merged.max(h);
      double l = 0, e = 0, vmax = 0;
      boolean infinite = false;
      for (int s = 0; s < localKeys.length; s++) {
        if (!call.asked[s]) {
          if (localKeys[s] > 0 && skipped != null) {
            vmax = Math.max(vmax, cache.summaries().valueNormBound(s, layer, h / group));
          }
          continue;
        }
        if (call.rho[s] == null) {
          continue;
        }
        int base = s * stride;
        float ms = call.states[base + h];
        float ls = call.states[base + numHeads + h];
        double r = call.rho[s][h];
        if (ls == 0f) {
          continue;
        }
        double f = Math.exp(ms - mMax);
        l += ls * f;
        if (r >= 1) {
          infinite = true;
        } else if (r > 0) {
          e += r / (1 - r) * ls * f;
          double norm = 0;
          for (int c = 0; c < headDim; c++) {
            double x = call.states[base + 2 * numHeads + h * headDim + c] / (double) ls;
            norm += x * x;
          }
          vmax = Math.max(vmax, call.bound[s][h] / r - Math.sqrt(norm));
        }
      }
      if (skipped != null && skipped[h] != Double.NEGATIVE_INFINITY) {
        e += Math.exp(skipped[h] - mMax);
      }
      double rh = infinite ? 1 : e == 0 ? 0 : e / (l + e);
      double outNorm = 0;
      for (int c = 0; c < headDim; c++) {
        outNorm += (double) tmp[h * headDim + c] * tmp[h * headDim + c];
      }
      report.rho[h] = rh;
      report.errorBound[h] = rh == 0 ? 0 : infinite ? Double.POSITIVE_INFINITY
          : rh * (Math.max(0, vmax) + Math.sqrt(outNorm));
    }
  }

  /** One empty round trip to {@code member} (a UUID of the placement), in nanoseconds. */
  public long ping(String member) {
    long t0 = System.nanoTime();
    Calls.get(cache.submit(member, new ShardTasks.Ping()));
    return System.nanoTime() - t0;
  }

  /** Marks this instance closed; the cache stays open (its owner closes it). */
  @Override
  public void close() {
    closed = true;
  }
}
