package hflash.bench;

import hflash.engine.AttentionConfig;
import hflash.engine.DecodeAttention;
import hflash.engine.ReferenceAttention;
import hflash.engine.Scheduler;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.stream.IntStream;

/**
 * The float64 check of {@code bench}, and for the structured workload its figures per head type.
 *
 * <p>Float64 attention over the stored (rounded) keys and values runs for the query heads of every
 * KV head group when that is cheap; otherwise for a sample of groups: the first and the last, or
 * with the structured workload the first KV head of each head type (streaming, retrieval, broad).
 * It is computed once and used for every mode and scheduler.
 *
 * <p>Per head type: the engine's report gives bytes for the whole call only, so each checked KV
 * head is copied into a one-KV-head cache of the same dtype and tile size and every mode is run
 * there once ({@link #replay}): KV heads are independent in every mode (each has its own traversal,
 * budget and sample store), so those are the bytes that head reads in the real call. A byte budget
 * is divided by the KV heads for the copy, which leaves the tiles per head unchanged. Errors come
 * from the real call's output; {@code errorBoundMax} and {@code rhoMax} from its report, over every
 * head of the type.
 *
 * <p>Owns the one-head caches: close it.
 */
public final class BenchReference implements AutoCloseable {

  /** Below this many multiply-adds per group the reference runs on every KV head group. */
  private static final long ALL_GROUPS_WORK = 1L << 26;

  /**
   * Errors of one output against the reference.
   *
   * @param group max over the checked groups of ||out - ref|| / ||ref|| (the group's heads together)
   * @param headMax max over the checked heads of ||out_h - ref_h|| / ||ref_h||
   * @param boundMax max over the checked heads of errorBound(h) / ||ref_h||
   * @param heads query heads checked
   * @param headMaxByGroup (checked groups) headMax of each checked group
   * @param boundByGroup (checked groups) boundMax of each checked group
   * @param covered checked heads whose error is within their stated bound (and within the
   *     {@code --max-error} target when there is one), with float slack 1e-5 ||ref_h||
   */
  public record Errors(double group, double headMax, double boundMax, int heads, double[] headMaxByGroup,
      double[] boundByGroup, int covered) {

    /** Share of the checked heads within their bound: 1 - violations / heads. */
    public double coverage() {
      return heads == 0 ? 1 : (double) covered / heads;
    }
  }

  /**
   * One head type's figures for one mode.
   *
   * @param type streaming, retrieval or broad
   * @param kvHeads KV heads of this type in the workload
   * @param checkedKvHeads of them, those checked against float64 and replayed for bytes
   * @param bytesFraction bytes the checked KV heads read (replayed) over their exact K+V bytes
   * @param relErrMax max over the checked heads of ||out_h - ref_h|| / ||ref_h||
   * @param bound max over the checked heads of errorBound(h) / ||ref_h||
   * @param errorBoundMax max over every query head of the type of the report's errorBound(h) (absolute)
   * @param rhoMax max over every query head of the type of the report's rho(h)
   */
  public record HeadTypeStats(String type, int kvHeads, int checkedKvHeads, double bytesFraction, double relErrMax,
      double bound, double errorBoundMax, double rhoMax) {}

  private final BenchRunner.Config c;
  private final int[] groups; // (checked) KV heads checked
  private final int g;
  private final int d;
  private final List<double[]> refs; // (checked) each (g, d): the float64 outputs of the group's heads
  private final StructuredWorkload.HeadType[] types; // (kvHeads), or null: no head types
  private final List<KvCache> oneHead = new ArrayList<>(); // (checked) structured only
  private final List<DecodeAttention> oneHeadAttention = new ArrayList<>(); // (checked)
  private final List<float[]> groupQueries = new ArrayList<>(); // (checked) each (g, d)
  private final Map<ModeSpec, long[]> replayBytes = new HashMap<>(); // per mode: (checked) bytes read

  private BenchReference(BenchRunner.Config c, int[] groups, List<double[]> refs,
      StructuredWorkload.HeadType[] types) {
    this.c = c;
    this.groups = groups;
    this.g = c.heads() / c.kvHeads();
    this.d = c.dim();
    this.refs = refs;
    this.types = types;
  }

  /** The head type of each KV head when the workload has them (structured), else null. */
  public static StructuredWorkload.HeadType[] headTypes(Workload w, int kvHeads) {
    if (!(w instanceof StructuredWorkload s)) {
      return null;
    }
    StructuredWorkload.HeadType[] t = new StructuredWorkload.HeadType[kvHeads];
    for (int kv = 0; kv < kvHeads; kv++) {
      t[kv] = s.headType(kv);
    }
    return t;
  }

  /** Computes the reference of the checked groups of the filled {@code cache} for query {@code q}. */
  public static BenchReference of(KvCache cache, BenchRunner.Config c, float[] q, StructuredWorkload.HeadType[] types,
      Consumer<String> progress) {
    int g = c.heads() / c.kvHeads();
    int n = c.context(), d = c.dim();
    int[] groups = checkedGroups(c, types);
    float[] k = new float[n * d]; // (n, 1, d): the stored keys of one KV head
    float[] v = new float[n * d]; // (n, 1, d)
    List<double[]> refs = new ArrayList<>();
    BenchReference r = new BenchReference(c, groups, refs, types);
    try {
      for (int kvHead : groups) {
        for (int pos = 0; pos < n; pos++) {
          for (int ch = 0; ch < d; ch++) {
            k[pos * d + ch] = cache.key(0, kvHead, pos, ch);
            v[pos * d + ch] = cache.value(0, kvHead, pos, ch);
          }
        }
        unrotate(cache.rotation(), k, n, d);
        unrotate(cache.rotation(), v, n, d);
        float[] qg = new float[g * d]; // (g, d): the query heads of that group
        System.arraycopy(q, kvHead * g * d, qg, 0, g * d);
        refs.add(ReferenceAttention.decode(qg, k, v, g, 1, d, n, 1.0 / Math.sqrt(d)));
        if (types != null) {
          KvCache one = KvCache.headCopy(cache, 0, kvHead); // the stored bytes (a block dtype's blocks too)
          r.oneHead.add(one);
          r.oneHeadAttention.add(DecodeAttention.create(one, g, 1, c.scale(), Scheduler.SERIAL));
          r.groupQueries.add(qg);
        }
      }
      if (types != null) {
        progress.accept("float64 reference and one-head copies for KV heads " + java.util.Arrays.toString(groups)
            + " (" + describe(groups, types) + ")");
      }
      return r;
    } catch (RuntimeException | Error e) {
      r.close();
      throw e;
    }
  }

  /**
   * A rotated cache stores R x: its rows back in the query's basis, R^T computed in double and rounded once to f32
   * (a relative 6e-8 per element, below the reference's tolerance).
   */
  private static void unrotate(hflash.memory.HadamardRotation rotation, float[] x, int n, int d) {
    if (rotation == null) {
      return;
    }
    double[] row = new double[d];
    for (int pos = 0; pos < n; pos++) {
      for (int c = 0; c < d; c++) {
        row[c] = x[pos * d + c];
      }
      rotation.rotateBack(row, 0);
      for (int c = 0; c < d; c++) {
        x[pos * d + c] = (float) row[c];
      }
    }
  }

  private static String describe(int[] groups, StructuredWorkload.HeadType[] types) {
    return String.join(", ", IntStream.of(groups).mapToObj(kv -> types[kv].id()).toList());
  }

  /** Every group when cheap; else the first of each head type, or the first and the last group. */
  private static int[] checkedGroups(BenchRunner.Config c, StructuredWorkload.HeadType[] types) {
    long work = (long) (c.heads() / c.kvHeads()) * c.context() * c.dim();
    if (work * c.kvHeads() <= ALL_GROUPS_WORK) {
      return IntStream.range(0, c.kvHeads()).toArray();
    }
    if (types != null) {
      List<Integer> first = new ArrayList<>();
      for (StructuredWorkload.HeadType t : StructuredWorkload.HeadType.values()) {
        for (int kv = 0; kv < types.length; kv++) {
          if (types[kv] == t) {
            first.add(kv);
            break;
          }
        }
      }
      return first.stream().mapToInt(Integer::intValue).sorted().toArray();
    }
    return c.kvHeads() == 1 ? new int[] {0} : new int[] {0, c.kvHeads() - 1};
  }

  /** Structured workload: runs {@code spec} once on each one-head copy and keeps the bytes read. */
  public void replay(ModeSpec spec, Consumer<String> progress) {
    if (types == null || replayBytes.containsKey(spec)) {
      return;
    }
    AttentionConfig cfg = spec.budgetBytes() > 0
        ? AttentionConfig.budgetedBytes(Math.max(1, spec.budgetBytes() / c.kvHeads()))
        : spec.config();
    long[] bytes = new long[groups.length];
    float[] out = new float[g * d];
    for (int i = 0; i < groups.length; i++) {
      DecodeAttention a = oneHeadAttention.get(i);
      a.decode(0, groupQueries.get(i), out, c.context(), cfg);
      bytes[i] = a.report().bytesRead();
    }
    replayBytes.put(spec, bytes);
  }

  /** Errors of {@code out} (heads, dim) with per-head absolute bounds {@code bounds} (heads). */
  public Errors errors(float[] out, double[] bounds, double maxError) {
    double worstGroup = 0, worstHead = 0, worstBound = 0;
    int covered = 0;
    double[] headByGroup = new double[groups.length];
    double[] boundByGroup = new double[groups.length];
    float[] og = new float[g * d]; // (g, d)
    for (int i = 0; i < groups.length; i++) {
      int kvHead = groups[i];
      double[] ref = refs.get(i);
      System.arraycopy(out, kvHead * g * d, og, 0, g * d);
      double e = ReferenceAttention.relError(og, ref);
      worstGroup = Double.isNaN(e) ? Double.NaN : Math.max(worstGroup, e);
      for (int j = 0; j < g; j++) {
        double norm = TraceEval.norm(ref, j * d, d);
        double he = TraceEval.ratio(TraceEval.distance(og, ref, j * d, d), norm);
        double b = TraceEval.ratio(bounds[kvHead * g + j], norm);
        headByGroup[i] = Double.isNaN(he) ? Double.NaN : Math.max(headByGroup[i], he);
        boundByGroup[i] = Math.max(boundByGroup[i], b);
        worstHead = Double.isNaN(he) ? Double.NaN : Math.max(worstHead, he);
        worstBound = Math.max(worstBound, b);
        // NaN target (no --max-error): the comparison is false, only the bound counts
        if (he <= b + 1e-5 && !(he > maxError + 1e-5)) {
          covered++;
        }
      }
    }
    return new Errors(worstGroup, worstHead, worstBound, groups.length * g, headByGroup, boundByGroup, covered);
  }

  /** Per head type figures of one mode's call (empty without head types); {@link #replay} first. */
  public List<HeadTypeStats> byHeadType(ModeSpec spec, Errors errors, BenchRunner.AttentionFigures f) {
    if (types == null) {
      return List.of();
    }
    long[] bytes = replayBytes.get(spec);
    long exactBytesPerHead = 2L * c.context() * c.dtype().rowBytes(d);
    List<HeadTypeStats> out = new ArrayList<>();
    for (StructuredWorkload.HeadType t : StructuredWorkload.HeadType.values()) {
      int count = 0;
      double errorBoundMax = 0, rhoMax = 0;
      for (int kv = 0; kv < types.length; kv++) {
        if (types[kv] == t) {
          count++;
          for (int h = kv * g; h < (kv + 1) * g; h++) {
            errorBoundMax = Math.max(errorBoundMax, f.errorBound()[h]);
            rhoMax = Math.max(rhoMax, f.rho()[h]);
          }
        }
      }
      if (count == 0) {
        continue;
      }
      int checked = 0;
      long read = 0;
      double relErr = 0, bound = 0;
      for (int i = 0; i < groups.length; i++) {
        if (types[groups[i]] == t) {
          checked++;
          read += bytes[i];
          relErr = Double.isNaN(errors.headMaxByGroup()[i]) ? Double.NaN : Math.max(relErr, errors.headMaxByGroup()[i]);
          bound = Math.max(bound, errors.boundByGroup()[i]);
        }
      }
      double fraction = checked == 0 ? Double.NaN : (double) read / (checked * exactBytesPerHead);
      out.add(new HeadTypeStats(t.id(), count, checked, fraction, checked == 0 ? Double.NaN : relErr,
          checked == 0 ? Double.NaN : bound, errorBoundMax, rhoMax));
    }
    return out;
  }

  @Override
  public void close() {
    for (DecodeAttention a : oneHeadAttention) {
      a.close();
    }
    for (KvCache k : oneHead) {
      k.close();
    }
  }
}
