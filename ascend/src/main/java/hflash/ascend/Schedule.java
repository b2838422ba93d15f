package hflash.ascend;

import hflash.ascend.TaskGraph.Lane;
import hflash.ascend.TaskGraph.Op;
import hflash.engine.AttentionMode;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Turns one decode call (shape, mode, and what the mode reads per KV head) into the
 * {@link TaskGraph} an Ascend kernel would run.
 *
 * <p><b>Work split.</b> Every KV head's tiles are cut into {@code S = cores / gcd(cores, kvHeads)}
 * contiguous chunks (split-K, as FlashDecoding and IncreFlashAttention do for batch 1), capped at
 * the tiles per head; chunk i of the {@code kvHeads * S} goes to core {@code i % cores}. A chunk ends
 * with its partial (m, l, acc) written out; when S &gt; 1, one core per KV head waits for the
 * chunks (a barrier through global memory: {@code syncNs}), merges them and writes the output.
 *
 * <p><b>Per chunk</b>, in order:
 *
 * <ol>
 *   <li>sampled: unit 1 scores the sample rows (stride delta, f32 sample store), streamed through
 *       its buffers; then the refinement tiles around the best sample are scored (by unit 2 in the
 *       note's mapping), and the reference is handed to the accumulating unit.
 *   <li>certified / budgeted: unit 1 streams the tile summaries, bounds every tile for the g heads
 *       and sorts them (scalar unit). Certified: unit 1 also decides, per tile, whether to open the
 *       next one; that needs the running sum l from unit 2, so each plan waits for the accumulation
 *       {@code buffers} tiles back plus a hand-off. Budgeted knows its count up front.
 *   <li>the tile loop over the opened tiles: K and V tiles stream in, {@code buffers}-deep; the
 *       vector path scores and accumulates on the vector units; the cube path runs Q.K^T and P.V on
 *       the cube with the softmax on unit 2, each step handed over through global memory.
 * </ol>
 *
 * The mapping decides where the exact scores of a tile are computed: {@link Mapping#NOTE} puts them
 * on unit 2 with the accumulation (the note: unit 1 coarse, unit 2 refinement + exp + P.V);
 * {@link Mapping#BALANCED} puts them on unit 1, which then scouts tile t+1 while unit 2 accumulates
 * tile t.
 */
public final class Schedule {

  /** Where the exact scores of a tile are computed. */
  public enum Mapping { NOTE, BALANCED }

  /** Which unit computes Q.K^T and P.V. */
  public enum Path { VECTOR, CUBE }

  /**
   * What one KV head's call reads, as hflash's engine counts it (per KV head; see
   * {@link EngineProbe}).
   *
   * @param tiles tiles covering the context
   * @param openedTiles tiles whose K and V are read and accumulated
   * @param sampleRows sample-store rows scored (sampled mode)
   * @param refineTiles K tiles re-read to refine the estimate (sampled mode)
   * @param summaryTiles tile summaries read (certified, budgeted)
   */
  public record HeadWork(int tiles, int openedTiles, int sampleRows, int refineTiles, int summaryTiles) {

    /** The exact mode: every tile, nothing else. */
    public static HeadWork exact(int tiles) {
      return new HeadWork(tiles, tiles, 0, 0, 0);
    }
  }

  /**
   * What a mode adds to the NPU schedule around its tile loop: the cost model's own per-mode
   * concern, decided for every mode in {@link #of} (a switch expression without a default, so a new
   * mode does not compile until it is modelled or refused here).
   *
   * @param sampleReference the sampled estimate of the softmax reference (sample rows, refinement tiles) runs first
   * @param sortedPlan the tile summaries are streamed and sorted into a read order first
   * @param plansAhead unit 1 decides to open each tile from the running sum (certified's stopping rule)
   * @param scanOpensTiles the CPU engine's K-scan scores K of tiles whose V it skips; the NPU has no
   *     K-only tile, so every scored tile counts as opened
   */
  public record ModeModel(boolean sampleReference, boolean sortedPlan, boolean plansAhead, boolean scanOpensTiles) {

    /**
     * The model of {@code mode}.
     *
     * @throws IllegalArgumentException for a mode the model does not cover (estimated: its random
     *     tile sample and interval are not modelled on the NPU)
     */
    public static ModeModel of(AttentionMode mode) {
      return switch (mode) {
        case EXACT -> new ModeModel(false, false, false, false);
        case SAMPLED -> new ModeModel(true, false, false, false);
        case CERTIFIED -> new ModeModel(false, true, true, true);
        case BUDGETED -> new ModeModel(false, true, false, false);
        case ESTIMATED -> throw new IllegalArgumentException(
            "the Ascend model covers exact, sampled, certified and budgeted, not " + mode.id());
      };
    }
  }

  /** Everything a schedule depends on. */
  public record Spec(Shape shape, AttentionMode mode, HeadWork work, TilePlan plan, Mapping mapping,
      Path path) {
    /** What the mode adds to the schedule. */
    public ModeModel model() {
      return ModeModel.of(mode);
    }
  }

  private final AscendParams p;
  private final Spec spec;
  private final Shape s;
  private final int g;
  private final int d;
  private final int buffers;
  private final int t; // tile tokens
  private final TaskGraph graph;
  // per core: the task that last used each buffer slot (K, V, hand-off, unit-1 stream)
  private final int[][] kSlot;
  private final int[][] vSlot;
  private final int[][] hSlot;
  private final int[][] uSlot;
  private final int[] lastOnCore;

  private Schedule(AscendParams p, Spec spec) {
    this.p = p;
    this.spec = spec;
    this.s = spec.shape();
    this.g = s.group();
    this.d = s.dim();
    this.buffers = spec.plan().buffers();
    this.t = spec.plan().tileTokens();
    int cores = p.cores();
    this.graph = new TaskGraph(cores);
    kSlot = filled(cores, buffers);
    vSlot = filled(cores, buffers);
    hSlot = filled(cores, buffers);
    uSlot = filled(cores, buffers);
    lastOnCore = new int[cores];
    Arrays.fill(lastOnCore, -1);
  }

  private static int[][] filled(int a, int b) {
    int[][] x = new int[a][b];
    for (int[] r : x) {
      Arrays.fill(r, -1);
    }
    return x;
  }

  /** Builds the task graph of one call. */
  public static TaskGraph build(AscendParams p, Spec spec) {
    return new Schedule(p, spec).build();
  }

  /** Split-K chunks per KV head. */
  public static int splits(int cores, int kvHeads, int tiles) {
    int gcd = gcd(cores, kvHeads);
    return Math.max(1, Math.min(tiles, cores / gcd));
  }

  private static int gcd(int a, int b) {
    return b == 0 ? a : gcd(b, a % b);
  }

  private TaskGraph build() {
    HeadWork w = spec.work();
    int cores = p.cores();
    int splits = splits(cores, s.kvHeads(), Math.max(1, w.tiles()));
    int[][] outs = new int[s.kvHeads()][splits];
    for (int h = 0; h < s.kvHeads(); h++) {
      for (int k = 0; k < splits; k++) {
        int item = h * splits + k;
        int core = item % cores;
        int chunkTiles = share(w.tiles(), k, splits);
        int opened = Math.min(chunkTiles, share(w.openedTiles(), k, splits) + speculative());
        outs[h][k] = chunk(core, opened,
            share(w.sampleRows(), k, splits), w.refineTiles(), share(w.summaryTiles(), k, splits),
            splits == 1);
      }
    }
    if (splits > 1) {
      for (int h = 0; h < s.kvHeads(); h++) {
        combine(h % cores, outs[h]);
      }
    }
    return graph;
  }

  /** Certified mode plans one tile ahead per buffer: up to buffers - 1 tiles read past the serial stop. */
  private int speculative() {
    return spec.model().plansAhead() && spec.work().openedTiles() < spec.work().tiles()
        ? buffers - 1 : 0;
  }

  private static int share(int total, int k, int parts) {
    return (int) ((long) (k + 1) * total / parts - (long) k * total / parts);
  }

  // ------------------------------------------------------------------------------ one chunk

  /** One chunk on one core; returns the task that writes its partial (or output). */
  private int chunk(int core, int opened, int sampleRows, int refineTiles, int summaryTiles,
      boolean last) {
    int gate = lastOnCore[core]; // items on one core run one after the other
    int refDone = -1; // the accumulating unit may not start before this (sampled reference)
    int planGate = -1; // the tile loop may not start loading before this (sorted plan)
    Lane scoreLane = spec.mapping() == Mapping.NOTE ? Lane.VEC2 : Lane.VEC1;
    ModeModel model = spec.model();
    if (model.sampleReference()) {
      int est = stream(core, sampleRows, (long) d * 4, Op.LOAD_SAMPLE, Op.SAMPLE,
          rows -> vec(rows * (double) g * (2 * d + 1), 2 * g + 2), gate);
      int ref = -1;
      for (int i = 0; i < refineTiles; i++) {
        int in = graph.transfer(core, Lane.DMA_IN, Op.LOAD_K, t * s.rowBytes(), true, -1,
            TaskGraph.ids(est), null);
        int[] deps = TaskGraph.ids(in, est, ref);
        double[] dl = new double[deps.length];
        if (scoreLane != Lane.VEC1 && est >= 0) {
          dl[1] = handoffNs((long) g * 8); // the best sample's position crosses to unit 2
        }
        ref = graph.compute(core, scoreLane, Op.REFINE, scoreNs(t), -1, deps, dl);
      }
      refDone = ref >= 0 ? ref : est;
    }
    if (model.sortedPlan()) {
      long record = (3L * d + 2) * 4;
      int perChunk = (int) Math.max(1, (long) t * d * 4 / record);
      int bounds = streamRecords(core, summaryTiles, record, perChunk, gate);
      double sortNs = summaryTiles * (Math.log(Math.max(2, summaryTiles)) / Math.log(2))
          * p.scalarNsPerCompare();
      planGate = graph.compute(core, Lane.VEC1, Op.SORT, sortNs, -1, TaskGraph.ids(bounds), null);
    }
    int lastAcc = spec.path() == Path.CUBE
        ? cubeLoop(core, opened, gate, planGate, refDone)
        : vectorLoop(core, opened, gate, planGate, refDone);
    long outBytes = last ? (long) g * d * s.dtype().bytes() : (long) g * (d + 2) * 4;
    int out = graph.transfer(core, Lane.DMA_OUT, Op.STORE, outBytes, true, -1,
        TaskGraph.ids(lastAcc), null);
    lastOnCore[core] = lastAcc;
    return out;
  }

  /** A hand-off of {@code bytes} between units through global memory (L2): write, flag, poll, read. */
  double handoffNs(long bytes) {
    return 2 * (bytes / p.dmaCoreBytesPerNs() + p.l2LatencyNs()) + p.syncNs();
  }

  private interface Cost {
    double ns(int rows);
  }

  /** Streams {@code rows} f32 rows through unit 1's buffers, computing {@code cost} per chunk. */
  private int stream(int core, int rows, long rowBytes, Op load, Op work, Cost cost, int gate) {
    int prev = gate;
    for (int first = 0, i = 0; first < rows; first += t, i++) {
      int count = Math.min(t, rows - first);
      int sl = i % buffers;
      int in = graph.transfer(core, Lane.DMA_IN, load, count * rowBytes, true, sl,
          TaskGraph.ids(uSlot[core][sl], gate), null);
      prev = graph.compute(core, Lane.VEC1, work, cost.ns(count), sl, TaskGraph.ids(in, prev), null);
      uSlot[core][sl] = prev;
    }
    return prev;
  }

  private int streamRecords(int core, int records, long recordBytes, int perChunk, int gate) {
    int prev = gate;
    for (int first = 0, i = 0; first < records; first += perChunk, i++) {
      int count = Math.min(perChunk, records - first);
      int sl = i % buffers;
      int in = graph.transfer(core, Lane.DMA_IN, Op.LOAD_SUMMARY, count * recordBytes, true, sl,
          TaskGraph.ids(uSlot[core][sl], gate), null);
      prev = graph.compute(core, Lane.VEC1, Op.BOUNDS, vec(count * (double) g * 6 * d, 6 * g), sl,
          TaskGraph.ids(in, prev), null);
      uSlot[core][sl] = prev;
    }
    return prev;
  }

  // ----------------------------------------------------------------------------- tile loops

  private int vectorLoop(int core, int opened, int gate, int planGate, int refDone) {
    boolean note = spec.mapping() == Mapping.NOTE;
    Lane scoreLane = note ? Lane.VEC2 : Lane.VEC1;
    List<Integer> accs = new ArrayList<>();
    int lastAcc = gate;
    for (int j = 0; j < opened; j++) {
      int sl = j % buffers;
      int plan = plan(core, j, accs, planGate);
      int inK = graph.transfer(core, Lane.DMA_IN, Op.LOAD_K, t * s.rowBytes(), true, sl,
          TaskGraph.ids(kSlot[core][sl], plan, gate), null);
      int inV = graph.transfer(core, Lane.DMA_IN, Op.LOAD_V, t * s.rowBytes(), true, sl,
          TaskGraph.ids(vSlot[core][sl], plan, gate), null);
      int score = graph.compute(core, scoreLane, Op.SCORE, scoreNs(t), sl,
          TaskGraph.ids(inK, note ? -1 : hSlot[core][sl]), null);
      int[] deps = TaskGraph.ids(score, inV, refDone, lastAcc);
      double[] dl = new double[deps.length];
      for (int i = 0; i < deps.length; i++) {
        if ((deps[i] == score && !note) || (deps[i] == refDone && refDone >= 0
            && laneOf(refDone) != Lane.VEC2)) {
          dl[i] = handoffNs((long) g * t * 4);
        }
      }
      int acc = graph.compute(core, Lane.VEC2, Op.ACCUMULATE, accNs(t), sl, deps, dl);
      kSlot[core][sl] = score;
      vSlot[core][sl] = acc;
      hSlot[core][sl] = acc;
      accs.add(acc);
      lastAcc = acc;
    }
    return lastAcc;
  }

  private Lane laneOf(int task) {
    return graph.lane(task);
  }

  /**
   * Certified: unit 1 decides to open tile j from the state after tile j - buffers (the running
   * sum l crosses from unit 2 to unit 1 through global memory). Other modes: no plan task.
   */
  private int plan(int core, int j, List<Integer> accs, int planGate) {
    if (!spec.model().plansAhead()) {
      return planGate;
    }
    int back = j - buffers >= 0 ? accs.get(j - buffers) : -1;
    int[] deps = TaskGraph.ids(back, planGate);
    double[] dl = new double[deps.length];
    for (int i = 0; i < deps.length; i++) {
      if (deps[i] == back) {
        dl[i] = handoffNs((long) g * 8);
      }
    }
    return graph.compute(core, Lane.VEC1, Op.PLAN, vec(4.0 * g, 4), -1, deps, dl);
  }

  /**
   * Cube path, software-pipelined as IncreFlashAttention-style kernels are: the cube runs
   * Q.K^T of round r before P.V of round r - 1, unit 2 the softmax of round r before the rescale of
   * round r - 1. Every cube/vector exchange crosses global memory with a flag, so the cube works on
   * rounds of {@link #cubeRound()} tiles at once (as many as L1 holds, buffers-deep): one hand-off
   * per round instead of per tile. Loads stay one transfer per tile.
   */
  private int cubeLoop(int core, int opened, int gate, int planGate, int refDone) {
    int per = cubeRound();
    int rounds = (opened + per - 1) / per;
    List<Integer> accs = new ArrayList<>();
    int[] sm = new int[rounds];
    int[][] inV = new int[rounds][];
    int[] tokens = new int[rounds];
    int lastRs = gate;
    for (int r = 0; r <= rounds; r++) {
      if (r < rounds) {
        int sl = r % buffers;
        int count = Math.min(per, opened - r * per);
        tokens[r] = count * t;
        int[] inK = new int[count];
        inV[r] = new int[count];
        int plan = plan(core, r, accs, planGate); // certified: one decision per round
        for (int i = 0; i < count; i++) {
          inK[i] = graph.transfer(core, Lane.DMA_IN, Op.LOAD_K, t * s.rowBytes(), true, sl,
              TaskGraph.ids(kSlot[core][sl], plan, gate), null);
          inV[r][i] = graph.transfer(core, Lane.DMA_IN, Op.LOAD_V, t * s.rowBytes(), true, sl,
              TaskGraph.ids(vSlot[core][sl], plan, gate), null);
        }
        int qk = graph.compute(core, Lane.CUBE, Op.QK, cubeNs(tokens[r], d), sl, inK, null);
        int[] deps = TaskGraph.ids(qk, refDone);
        double[] dl = new double[deps.length];
        dl[0] = handoffNs((long) g * tokens[r] * 4);
        if (deps.length > 1 && laneOf(refDone) != Lane.VEC2) {
          dl[1] = handoffNs((long) g * 8);
        }
        sm[r] = graph.compute(core, Lane.VEC2, Op.SOFTMAX, softmaxNs(tokens[r]), sl, deps, dl);
        kSlot[core][sl] = qk;
      }
      if (r > 0) {
        int i = r - 1;
        int sl = i % buffers;
        int[] deps = new int[inV[i].length + 1];
        double[] dl = new double[deps.length];
        deps[0] = sm[i];
        dl[0] = handoffNs((long) g * tokens[i] * 2);
        System.arraycopy(inV[i], 0, deps, 1, inV[i].length);
        int pv = graph.compute(core, Lane.CUBE, Op.PV, cubeNs(tokens[i], d), sl, deps, dl);
        int rs = graph.compute(core, Lane.VEC2, Op.RESCALE, vec(2.0 * g * d, 2), sl,
            TaskGraph.ids(pv), new double[] {handoffNs((long) g * d * 4)});
        vSlot[core][sl] = pv;
        accs.add(rs);
        lastRs = rs;
      }
    }
    return lastRs;
  }

  /** Tiles per cube round: K and V of a round, buffers-deep, fill L1. */
  int cubeRound() {
    long pair = 2L * t * s.rowBytes();
    return (int) Math.max(1, spec.plan().l1Bytes() >= 0 ? p.l1Bytes() / (buffers * pair) : 1);
  }

  private void combine(int core, int[] outs) {
    int[] deps = outs.clone();
    double[] dl = new double[deps.length];
    Arrays.fill(dl, p.syncNs()); // cross-core barrier through global memory
    long partial = (long) g * (d + 2) * 4;
    int in = graph.transfer(core, Lane.DMA_IN, Op.LOAD_SUMMARY, partial * outs.length, false, -1,
        deps, dl);
    int merge = graph.compute(core, Lane.VEC1, Op.MERGE, vec(3.0 * outs.length * g * d, 4), -1,
        TaskGraph.ids(in), null);
    graph.transfer(core, Lane.DMA_OUT, Op.STORE, (long) g * d * s.dtype().bytes(), true, -1,
        TaskGraph.ids(merge), null);
  }

  // ---------------------------------------------------------------------------------- costs

  /** Vector time of {@code ops} f32 element-ops in {@code instructions} instructions. */
  double vec(double ops, int instructions) {
    return (ops / p.vecF32PerCycle() + instructions * p.vecInstrCycles()) * p.cycleNs();
  }

  /** Exact scores of a tile of T keys for the g heads on a vector unit: cast K, multiply, reduce. */
  double scoreNs(int tokens) {
    return vec((double) tokens * d * (1 + 2 * g), 2 + 2 * g);
  }

  /** Softmax update and P.V of a tile on a vector unit: cast V, max/exp/sum, rescale, multiply-add. */
  double accNs(int tokens) {
    double ops = (double) tokens * d * (1 + 2 * g) + (double) g * tokens * (3 + p.expOps()) + 2.0 * g * d;
    return vec(ops, 4 + 3 * g);
  }

  /** Softmax of a tile's g x T scores (cube path): max, subtract, exp, sum, cast P to f16. */
  double softmaxNs(int tokens) {
    return vec((double) g * tokens * (4 + p.expOps()), 5);
  }

  /**
   * One Mmad of (16 x d) by (d x T) (or (16 x T) by (T x d)) on the cube: decode has one query row
   * per head, so the g heads of a group fill {@code g} of the cube's 16 rows and the rest is padding;
   * plus the L1-&gt;L0 load of the tile and the call's fixed cycles.
   */
  double cubeNs(int tokens, int dim) {
    double fractals = Math.ceil(g / 16.0) * Math.ceil(dim / 16.0) * Math.ceil(tokens / 16.0);
    double load = (double) tokens * dim * s.dtype().bytes() / p.l1ToL0BytesPerCycle();
    return (fractals + load + p.cubeStartupCycles()) * p.cycleNs();
  }
}
