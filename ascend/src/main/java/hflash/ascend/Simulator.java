package hflash.ascend;

import hflash.ascend.TaskGraph.Kind;
import java.util.Arrays;
import java.util.List;

/**
 * Discrete-event simulation of a {@link TaskGraph} on the device of {@link AscendParams}.
 *
 * <p>Time advances from event to event (a compute task ends, a DMA descriptor is issued, a
 * transfer's last byte arrives, a dependency's result becomes visible). Rules:
 *
 * <ul>
 *   <li>Each lane runs its tasks one at a time, in order, from {@code launchUs} on.
 *   <li>A compute task occupies its lane for its duration.
 *   <li>A transfer occupies its DMA lane for {@code dmaIssueNs} (descriptor) and then for its data
 *       phase. During the data phase, HBM transfers share the device bandwidth equally (processor
 *       sharing: each of the k active ones moves at {@code min(dmaCoreGBps, hbmGBps / k)}); L2
 *       transfers move at {@code dmaCoreGBps} without using HBM. The result is visible
 *       {@code hbmLatencyNs} (or {@code l2LatencyNs}) after the last byte: the latency of back-to-back
 *       transfers overlaps, a dependent chain pays it each time.
 *   <li>A task's dependencies are visible at their done time plus the edge's delay (a hand-off).
 * </ul>
 *
 * Deterministic: the same graph and parameters give the same times.
 */
public final class Simulator {

  private static final double EPS = 1e-9;

  private Simulator() {}

  /** What happened: per-task times and totals. */
  public record Run(TaskGraph graph, double[] start, double[] end, double[] done, double makespanNs,
      double hbmBusyNs, double[] laneBusyNs) {

    /** Busy time of lane {@code lane} of core {@code core}. */
    public double busy(int core, TaskGraph.Lane lane) {
      return laneBusyNs[core * TaskGraph.LANES + lane.ordinal()];
    }
  }

  /**
   * Runs the graph.
   *
   * @throws IllegalStateException if the graph deadlocks (a lane waits on a task queued behind it)
   */
  public static Run run(TaskGraph g, AscendParams p) {
    int n = g.size();
    int lanes = g.cores() * TaskGraph.LANES;
    double[] start = new double[n];
    double[] end = new double[n];
    double[] done = new double[n];
    Arrays.fill(done, Double.NaN);
    int[] ptr = new int[lanes];
    int[] running = new int[lanes];
    Arrays.fill(running, -1);
    int[] phase = new int[lanes]; // 0 compute, 1 issue, 2 data
    double[] phaseEnd = new double[lanes];
    double[] remaining = new double[lanes];
    double[] busy = new double[lanes];
    double now = p.launchNs();
    double hbmBusy = 0;
    int finished = 0;
    double cap = p.dmaCoreBytesPerNs();
    while (finished < n) {
      // 1. start every lane head that can start now
      for (int l = 0; l < lanes; l++) {
        if (running[l] >= 0) {
          continue;
        }
        List<Integer> q = g.laneTasks(l);
        if (ptr[l] >= q.size()) {
          continue;
        }
        int t = q.get(ptr[l]);
        double r = readyTime(g, t, done);
        if (Double.isNaN(r) || r > now + EPS * Math.max(1, now)) {
          continue;
        }
        running[l] = t;
        ptr[l]++;
        start[t] = now;
        if (g.kind(t) == Kind.COMPUTE) {
          phase[l] = 0;
          phaseEnd[l] = now + g.duration(t);
        } else {
          phase[l] = 1;
          phaseEnd[l] = now + p.dmaIssueNs();
          remaining[l] = g.bytes(t);
        }
      }
      // 2. rates of the data phases
      int active = 0;
      for (int l = 0; l < lanes; l++) {
        if (running[l] >= 0 && phase[l] == 2 && g.kind(running[l]) == Kind.HBM) {
          active++;
        }
      }
      double hbmRate = active == 0 ? 0 : Math.min(cap, p.hbmBytesPerNs() / active);
      // 3. the next event
      double next = Double.POSITIVE_INFINITY;
      for (int l = 0; l < lanes; l++) {
        int t = running[l];
        if (t >= 0) {
          if (phase[l] == 2) {
            double rate = g.kind(t) == Kind.HBM ? hbmRate : cap;
            next = Math.min(next, now + remaining[l] / rate);
          } else {
            next = Math.min(next, phaseEnd[l]);
          }
        } else if (ptr[l] < g.laneTasks(l).size()) {
          double r = readyTime(g, g.laneTasks(l).get(ptr[l]), done);
          if (!Double.isNaN(r) && r > now) {
            next = Math.min(next, r);
          }
        }
      }
      if (next == Double.POSITIVE_INFINITY) {
        throw new IllegalStateException("task graph deadlocks at t=" + now + " ns with "
            + (n - finished) + " of " + n + " tasks left");
      }
      // 4. advance the data phases to the event
      double dt = next - now;
      for (int l = 0; l < lanes; l++) {
        int t = running[l];
        if (t >= 0 && phase[l] == 2) {
          double rate = g.kind(t) == Kind.HBM ? hbmRate : cap;
          remaining[l] -= rate * dt;
        }
      }
      if (active > 0) {
        hbmBusy += dt * (active * hbmRate) / p.hbmBytesPerNs();
      }
      now = next;
      // 5. complete what ends now
      double tol = EPS * Math.max(1, now);
      for (int l = 0; l < lanes; l++) {
        int t = running[l];
        if (t < 0) {
          continue;
        }
        if (phase[l] == 0 && phaseEnd[l] <= now + tol) {
          end[t] = now;
          done[t] = now;
        } else if (phase[l] == 1 && phaseEnd[l] <= now + tol) {
          phase[l] = 2;
          if (remaining[l] <= 0) {
            end[t] = now;
            done[t] = now + latency(g, t, p);
          } else {
            continue;
          }
        } else if (phase[l] == 2 && remaining[l] <= 1e-6 * Math.max(1, g.bytes(t))) {
          end[t] = now;
          done[t] = now + latency(g, t, p);
        } else {
          continue;
        }
        busy[l] += end[t] - start[t];
        running[l] = -1;
        finished++;
      }
    }
    double makespan = 0;
    for (int t = 0; t < n; t++) {
      makespan = Math.max(makespan, done[t]);
    }
    makespan = Math.max(makespan, p.launchNs());
    return new Run(g, start, end, done, makespan, hbmBusy, busy);
  }

  private static double latency(TaskGraph g, int t, AscendParams p) {
    return g.kind(t) == Kind.HBM ? p.hbmLatencyNs() : p.l2LatencyNs();
  }

  /** When task t may start given its dependencies, or NaN while one is not done. */
  private static double readyTime(TaskGraph g, int t, double[] done) {
    int[] d = g.deps(t);
    double[] dl = g.delays(t);
    double r = 0;
    for (int i = 0; i < d.length; i++) {
      double x = done[d[i]];
      if (Double.isNaN(x)) {
        return Double.NaN;
      }
      r = Math.max(r, x + dl[i]);
    }
    return r;
  }
}
