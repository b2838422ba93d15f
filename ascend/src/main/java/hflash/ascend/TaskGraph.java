package hflash.ascend;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The tasks of one simulated kernel: what each lane of each core does, in order, and what each
 * task waits for. Lanes are in-order queues (as Ascend's pipes are): a task starts when its lane is
 * free, the task before it on the lane has started, and every dependency is done, each plus its
 * delay (a hand-off through global memory, a barrier). Built by {@link Schedule}, run by
 * {@link Simulator}.
 */
public final class TaskGraph {

  /** The five lanes of an AI core: DMA in (MTE2), vector unit 1 (AIV0), vector unit 2 (AIV1), cube (AIC), DMA out (MTE3/FixPipe). */
  public enum Lane {
    DMA_IN("DMA in"), VEC1("unit 1 (AIV0)"), VEC2("unit 2 (AIV1)"), CUBE("cube (AIC)"), DMA_OUT("DMA out");

    final String label;

    Lane(String label) {
      this.label = label;
    }

    public String label() {
      return label;
    }
  }

  /** COMPUTE: fixed duration; HBM: a transfer sharing HBM bandwidth; L2: a transfer that hits L2. */
  public enum Kind { COMPUTE, HBM, L2 }

  /** What a task does, for the timeline's colours. */
  public enum Op { LOAD_K, LOAD_V, LOAD_SUMMARY, LOAD_SAMPLE, SCORE, ACCUMULATE, SOFTMAX, RESCALE, QK, PV, BOUNDS, SORT, SAMPLE, REFINE, PLAN, STORE, MERGE }

  public static final int LANES = Lane.values().length;

  private final int cores;
  private int size;
  private int[] core = new int[1024];
  private Lane[] lane = new Lane[1024];
  private Kind[] kind = new Kind[1024];
  private Op[] op = new Op[1024];
  private double[] duration = new double[1024]; // ns, COMPUTE only
  private long[] bytes = new long[1024]; // HBM and L2 only
  private int[] slot = new int[1024]; // buffer index, -1 when none
  private int[][] deps = new int[1024][];
  private double[][] delays = new double[1024][];
  private final List<List<Integer>> laneTasks = new ArrayList<>();

  public TaskGraph(int cores) {
    if (cores < 1) {
      throw new IllegalArgumentException("cores must be >= 1: " + cores);
    }
    this.cores = cores;
    for (int i = 0; i < cores * LANES; i++) {
      laneTasks.add(new ArrayList<>());
    }
  }

  /** A compute task of {@code ns} nanoseconds. */
  public int compute(int c, Lane l, Op o, double ns, int slot, int[] deps, double[] delays) {
    return add(c, l, Kind.COMPUTE, o, ns, 0, slot, deps, delays);
  }

  /** A transfer of {@code b} bytes, from HBM ({@code hbm}) or L2. */
  public int transfer(int c, Lane l, Op o, long b, boolean hbm, int slot, int[] deps, double[] delays) {
    if (l != Lane.DMA_IN && l != Lane.DMA_OUT) {
      throw new IllegalArgumentException("transfers run on a DMA lane: " + l);
    }
    return add(c, l, hbm ? Kind.HBM : Kind.L2, o, 0, b, slot, deps, delays);
  }

  private int add(int c, Lane l, Kind k, Op o, double ns, long b, int s, int[] d, double[] dl) {
    if (c < 0 || c >= cores) {
      throw new IndexOutOfBoundsException("core out of range [0, " + cores + "): " + c);
    }
    if (!(ns >= 0) || b < 0) {
      throw new IllegalArgumentException("duration and bytes must be >= 0: " + ns + ", " + b);
    }
    int[] dd = d == null ? new int[0] : d;
    double[] dly = dl == null ? new double[dd.length] : dl;
    if (dly.length != dd.length) {
      throw new IllegalArgumentException("one delay per dependency: " + dd.length + "!=" + dly.length);
    }
    for (int x : dd) {
      if (x < 0 || x >= size) {
        throw new IllegalArgumentException("dependency is not an earlier task: " + x);
      }
    }
    if (size == core.length) {
      int n = size * 2;
      core = Arrays.copyOf(core, n);
      lane = Arrays.copyOf(lane, n);
      kind = Arrays.copyOf(kind, n);
      op = Arrays.copyOf(op, n);
      duration = Arrays.copyOf(duration, n);
      bytes = Arrays.copyOf(bytes, n);
      slot = Arrays.copyOf(slot, n);
      deps = Arrays.copyOf(deps, n);
      delays = Arrays.copyOf(delays, n);
    }
    int id = size++;
    core[id] = c;
    lane[id] = l;
    kind[id] = k;
    op[id] = o;
    duration[id] = ns;
    bytes[id] = b;
    slot[id] = s;
    deps[id] = dd;
    delays[id] = dly;
    laneTasks.get(c * LANES + l.ordinal()).add(id);
    return id;
  }

  public int size() {
    return size;
  }

  public int cores() {
    return cores;
  }

  public int core(int t) {
    return core[t];
  }

  public Lane lane(int t) {
    return lane[t];
  }

  public Kind kind(int t) {
    return kind[t];
  }

  public Op op(int t) {
    return op[t];
  }

  public double duration(int t) {
    return duration[t];
  }

  public long bytes(int t) {
    return bytes[t];
  }

  public int slot(int t) {
    return slot[t];
  }

  int[] deps(int t) {
    return deps[t];
  }

  double[] delays(int t) {
    return delays[t];
  }

  /** Tasks of global lane {@code core * LANES + lane}, in order. */
  List<Integer> laneTasks(int globalLane) {
    return laneTasks.get(globalLane);
  }

  /** Bytes moved from or to HBM by all tasks. */
  public long hbmBytes() {
    long b = 0;
    for (int t = 0; t < size; t++) {
      if (kind[t] == Kind.HBM) {
        b += bytes[t];
      }
    }
    return b;
  }

  /** Helpers for dependency lists: ids, skipping negatives (no task). */
  static int[] ids(int... ids) {
    return Arrays.stream(ids).filter(x -> x >= 0).toArray();
  }
}
