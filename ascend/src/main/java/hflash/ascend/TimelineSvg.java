package hflash.ascend;

import hflash.ascend.TaskGraph.Lane;
import hflash.ascend.TaskGraph.Op;
import java.util.Locale;

/**
 * A hand-written SVG timeline of a simulated run. Three panels:
 *
 * <ol>
 *   <li>the whole run of core 0 (and core 1 when there are two): lanes DMA in, unit 1, unit 2,
 *       cube, DMA out; neighbouring boxes closer than a pixel are merged so the file stays small;
 *   <li>a zoom on the first tiles of core 0, where each box is one task and the two buffers of the
 *       ping-pong pair have the two shades of their colour (darker = buffer 0, lighter = buffer 1);
 *   <li>with more than two cores, every core summarised: per lane, the share of cores busy in each
 *       of 120 time bins, as a grey level.
 * </ol>
 */
public final class TimelineSvg {

  private static final int WIDTH = 1100;
  private static final int LEFT = 120;
  private static final int LANE_H = 16;
  private static final int GAP = 4;

  private TimelineSvg() {}

  /** The SVG text of a prediction's run. */
  public static String render(AscendModel.Prediction pr, String title) {
    Simulator.Run run = pr.run();
    TaskGraph g = run.graph();
    StringBuilder b = new StringBuilder();
    int cores = g.cores();
    int detail = cores <= 2 ? cores : 1;
    double span = run.makespanNs();
    double zoomEnd = zoomEnd(run);
    int y = 40;
    StringBuilder body = new StringBuilder();
    text(body, 10, 20, 14, esc(title));
    text(body, 10, 34, 11, String.format(Locale.ROOT,
        "predicted %.1f us, roofline %.1f us, bound: %s; %s path, %s mapping, T=%d keys, %d buffers",
        pr.predictedUs(), pr.rooflineUs(), pr.bound(), pr.spec().path().name().toLowerCase(Locale.ROOT),
        pr.spec().mapping().name().toLowerCase(Locale.ROOT), pr.spec().plan().tileTokens(),
        pr.spec().plan().buffers()));
    y += 10;
    for (int c = 0; c < detail; c++) {
      text(body, 10, y, 12, "core " + c + ", whole run (0 - " + us(span) + " us)");
      y += 6;
      y = lanes(body, run, c, 0, span, y, true);
      y += 14;
    }
    text(body, 10, y, 12, "core 0, first tiles (0 - " + us(zoomEnd)
        + " us): one box per task; dark/light = buffer 0/1 (ping-pong)");
    y += 6;
    y = lanes(body, run, 0, 0, zoomEnd, y, false);
    y += 14;
    if (cores > 2) {
      text(body, 10, y, 12, "all " + cores + " cores: share of cores busy per lane (white 0, black 1)");
      y += 6;
      y = summary(body, run, span, y);
      y += 14;
    }
    y = legend(body, y);
    b.append("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"").append(WIDTH).append("\" height=\"")
        .append(y + 10).append("\" font-family=\"sans-serif\">\n");
    b.append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    b.append(body).append("</svg>\n");
    return b.toString();
  }

  /** The end of the zoom window: the 8th accumulation of core 0 (or the run). */
  private static double zoomEnd(Simulator.Run run) {
    TaskGraph g = run.graph();
    int seen = 0;
    for (int t = 0; t < g.size(); t++) {
      if (g.core(t) == 0 && (g.op(t) == Op.ACCUMULATE || g.op(t) == Op.RESCALE)) {
        if (++seen == 8) {
          return Math.min(run.makespanNs(), run.done()[t] * 1.02);
        }
      }
    }
    return run.makespanNs();
  }

  private static int lanes(StringBuilder b, Simulator.Run run, int core, double from, double to,
      int y, boolean merge) {
    TaskGraph g = run.graph();
    double scale = (WIDTH - LEFT - 20) / Math.max(1e-9, to - from);
    for (Lane l : Lane.values()) {
      text(b, 10, y + 12, 11, l.label());
      b.append(String.format(Locale.ROOT,
          "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#f4f4f4\"/>\n", LEFT, y,
          WIDTH - LEFT - 20, LANE_H));
      double openX = -1;
      double openEnd = -1;
      String openFill = null;
      for (int t : g.laneTasks(core * TaskGraph.LANES + l.ordinal())) {
        double s = run.start()[t];
        double e = run.end()[t];
        if (e < from || s > to) {
          continue;
        }
        double x0 = LEFT + (Math.max(s, from) - from) * scale;
        double x1 = LEFT + (Math.min(e, to) - from) * scale;
        String fill = fill(g.op(t), g.slot(t), merge);
        if (merge && openFill != null && openFill.equals(fill) && x0 - openEnd < 1) {
          openEnd = Math.max(openEnd, x1);
          continue;
        }
        if (openFill != null) {
          box(b, openX, y, openEnd, openFill);
        }
        openX = x0;
        openEnd = x1;
        openFill = fill;
      }
      if (openFill != null) {
        box(b, openX, y, openEnd, openFill);
      }
      y += LANE_H + GAP;
    }
    axis(b, from, to, y);
    return y + 14;
  }

  private static int summary(StringBuilder b, Simulator.Run run, double span, int y) {
    TaskGraph g = run.graph();
    int bins = 120;
    double w = (WIDTH - LEFT - 20) / (double) bins;
    for (Lane l : Lane.values()) {
      double[] busy = new double[bins];
      for (int c = 0; c < g.cores(); c++) {
        for (int t : g.laneTasks(c * TaskGraph.LANES + l.ordinal())) {
          double s = run.start()[t];
          double e = run.end()[t];
          for (int i = (int) (s / span * bins); i < bins && i * span / bins < e; i++) {
            double lo = Math.max(s, i * span / bins);
            double hi = Math.min(e, (i + 1) * span / bins);
            busy[i] += Math.max(0, hi - lo) / (span / bins);
          }
        }
      }
      text(b, 10, y + 12, 11, l.label());
      for (int i = 0; i < bins; i++) {
        int grey = 255 - (int) Math.round(255 * Math.min(1, busy[i] / g.cores()));
        b.append(String.format(Locale.ROOT,
            "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"rgb(%d,%d,%d)\"/>\n",
            LEFT + i * w, y, w + 0.2, LANE_H, grey, grey, grey));
      }
      y += LANE_H + GAP;
    }
    axis(b, 0, span, y);
    return y + 14;
  }

  private static void axis(StringBuilder b, double from, double to, int y) {
    double scale = (WIDTH - LEFT - 20) / Math.max(1e-9, to - from);
    double step = niceStep((to - from) / 8);
    for (double v = Math.ceil(from / step) * step; v <= to; v += step) {
      double x = LEFT + (v - from) * scale;
      b.append(String.format(Locale.ROOT,
          "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#999\"/>\n", x, y - 2, x, y + 2));
      text(b, (int) x - 10, y + 12, 10, us(v));
    }
  }

  private static double niceStep(double raw) {
    double p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-9))));
    for (double m : new double[] {1, 2, 5, 10}) {
      if (m * p >= raw) {
        return m * p;
      }
    }
    return 10 * p;
  }

  private static int legend(StringBuilder b, int y) {
    Op[] ops = {Op.LOAD_K, Op.LOAD_V, Op.LOAD_SUMMARY, Op.LOAD_SAMPLE, Op.SCORE, Op.ACCUMULATE,
        Op.QK, Op.PV, Op.SOFTMAX, Op.RESCALE, Op.BOUNDS, Op.SAMPLE, Op.REFINE, Op.SORT, Op.PLAN,
        Op.MERGE, Op.STORE};
    int x = 10;
    for (Op o : ops) {
      if (x > WIDTH - 110) {
        x = 10;
        y += 16;
      }
      b.append(String.format(Locale.ROOT,
          "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>\n", x, y, colour(o, 0)));
      text(b, x + 13, y + 9, 10, o.name().toLowerCase(Locale.ROOT).replace('_', ' '));
      x += 105;
    }
    return y + 16;
  }

  private static void box(StringBuilder b, double x0, int y, double x1, String fill) {
    b.append(String.format(Locale.ROOT,
        "<rect x=\"%.1f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\"/>\n", x0, y,
        Math.max(0.4, x1 - x0), LANE_H, fill));
  }

  private static String fill(Op o, int slot, boolean merge) {
    return colour(o, merge ? 0 : Math.max(0, slot) % 2);
  }

  private static String colour(Op o, int shade) {
    String[] pair = switch (o) {
      case LOAD_K -> new String[] {"#1f5fa8", "#7fb0e8"};
      case LOAD_V -> new String[] {"#2e8b57", "#8fd6aa"};
      case LOAD_SUMMARY, LOAD_SAMPLE -> new String[] {"#7a4fb0", "#c2a6e6"};
      case SCORE, QK, REFINE -> new String[] {"#d2691e", "#f4b27a"};
      case ACCUMULATE, PV -> new String[] {"#b22222", "#ee8a8a"};
      case SOFTMAX, RESCALE -> new String[] {"#c71585", "#f29ad0"};
      case BOUNDS, SAMPLE, SORT, PLAN -> new String[] {"#8b8000", "#d9d060"};
      case MERGE, STORE -> new String[] {"#444444", "#999999"};
    };
    return pair[shade];
  }

  private static void text(StringBuilder b, int x, int y, int size, String s) {
    b.append("<text x=\"").append(x).append("\" y=\"").append(y).append("\" font-size=\"")
        .append(size).append("\">").append(s).append("</text>\n");
  }

  private static String us(double ns) {
    return String.format(Locale.ROOT, ns >= 10_000 ? "%.0f" : "%.1f", ns / 1000);
  }

  private static String esc(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
  }
}
