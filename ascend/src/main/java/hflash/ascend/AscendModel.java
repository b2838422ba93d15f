package hflash.ascend;

import hflash.ascend.TaskGraph.Lane;
import hflash.engine.AttentionMode;

/**
 * The model's entry point: a shape, a mode and what the mode reads per KV head in, a predicted
 * time out, with the roofline beside it and what bounds the run.
 */
public final class AscendModel {

  /** A run is "bound" by a resource busy at least this share of the predicted time. */
  public static final double BOUND_SHARE = 0.7;

  private AscendModel() {}

  /**
   * The prediction.
   *
   * @param predictedUs launch to the last byte written, microseconds
   * @param rooflineUs hbmBytes / HBM bandwidth, microseconds
   * @param hbmBytes bytes moved from and to HBM
   * @param bound hbm, vector, cube, dma, sync or launch (see {@link #bound})
   * @param dma mean utilisation of the cores' DMA-in lanes
   * @param vec1 mean utilisation of unit 1 (AIV0)
   * @param vec2 mean utilisation of unit 2 (AIV1)
   * @param cube mean utilisation of the cube (AIC)
   * @param hbm share of the predicted time HBM was moving data at full bandwidth
   */
  public record Prediction(double predictedUs, double rooflineUs, long hbmBytes, String bound,
      double dma, double vec1, double vec2, double cube, double hbm, Schedule.Spec spec,
      Simulator.Run run) {}

  /** Builds and simulates the schedule; {@code path == null} simulates both paths and keeps the faster. */
  public static Prediction predict(AscendParams p, Shape shape, AttentionMode mode,
      Schedule.HeadWork work, TilePlan plan, Schedule.Mapping mapping, Schedule.Path path) {
    if (path == null) {
      Prediction v = predict(p, shape, mode, work, plan, mapping, Schedule.Path.VECTOR);
      Prediction c = predict(p, shape, mode, work, plan, mapping, Schedule.Path.CUBE);
      return c.predictedUs() < v.predictedUs() ? c : v;
    }
    Schedule.Spec spec = new Schedule.Spec(shape, mode, work, plan, mapping, path);
    TaskGraph graph = Schedule.build(p, spec);
    Simulator.Run run = Simulator.run(graph, p);
    long bytes = graph.hbmBytes();
    double span = run.makespanNs();
    int cores = p.cores();
    double[] u = new double[TaskGraph.LANES];
    double[] uMax = new double[TaskGraph.LANES];
    for (int c = 0; c < cores; c++) {
      for (Lane l : Lane.values()) {
        double x = run.busy(c, l) / span;
        u[l.ordinal()] += x / cores;
        uMax[l.ordinal()] = Math.max(uMax[l.ordinal()], x);
      }
    }
    double hbm = run.hbmBusyNs() / span;
    String bound = bound(hbm, uMax, p.launchNs() / span);
    return new Prediction(span / 1000, bytes / p.hbmBytesPerNs() / 1000, bytes, bound,
        u[Lane.DMA_IN.ordinal()], u[Lane.VEC1.ordinal()], u[Lane.VEC2.ordinal()],
        u[Lane.CUBE.ordinal()], hbm, spec, run);
  }

  /**
   * What bounds a run: {@code hbm} when HBM moved data at full bandwidth for at least 70 % of the
   * time; otherwise the busiest unit of the busiest core ({@code vector}, {@code cube} or
   * {@code dma}, the core's DMA port) when it is busy at least 70 %; otherwise {@code launch} when
   * the launch is half the time, else {@code sync}: the units wait on each other (hand-offs,
   * barriers, exposed latency).
   */
  static String bound(double hbm, double[] uMax, double launchShare) {
    if (hbm >= BOUND_SHARE) {
      return "hbm";
    }
    double vec = Math.max(uMax[Lane.VEC1.ordinal()], uMax[Lane.VEC2.ordinal()]);
    double cube = uMax[Lane.CUBE.ordinal()];
    double dma = uMax[Lane.DMA_IN.ordinal()];
    double best = Math.max(vec, Math.max(cube, dma));
    if (best >= BOUND_SHARE) {
      return best == vec ? "vector" : best == cube ? "cube" : "dma";
    }
    return launchShare >= 0.5 ? "launch" : "sync";
  }
}
