package hflash.bench;

import hflash.engine.AttentionMode;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A hand-written SVG line plot for {@code eval --svg}: relative error (log y) against the share of KV
 * bytes read (linear x), one curve per mode. Solid lines and filled markers are measured errors,
 * dashed lines and open markers the stated bounds. Values of 0 (an exact result, or no bound) are
 * drawn on the bottom axis. No dependencies: plain strings, so the file opens in any browser.
 */
public final class ErrorBytesPlot {

  /** One point: x the bytes fraction, y the measured error, bound the stated bound (NaN for none). */
  public record Point(double x, double y, double bound, String label) {}

  /** One mode's curve. */
  public record Series(String name, String color, List<Point> points) {
    public Series(String name, String color) {
      this(name, color, new ArrayList<>());
    }
  }

  private static final int W = 820, H = 520;
  private static final int LEFT = 80, RIGHT = 180, TOP = 70, BOTTOM = 60;
  private static final double FLOOR = 1e-10; // lowest decade drawn
  private static final double LABEL_GAP = 14; // pixels

  private ErrorBytesPlot() {}

  /** One color per mode in declaration order (exact, sampled, certified, budgeted, estimated), then again. */
  private static final String[] PALETTE = {"#222222", "#7b3294", "#1f77b4", "#e66101", "#1a9641", "#d01c8b"};

  /** The mode's color: by its place among the modes, so a new mode gets one without a change here. */
  public static String color(AttentionMode m) {
    return PALETTE[m.ordinal() % PALETTE.length];
  }

  public static String render(String title, String subtitle, List<Series> series) {
    double xMax = 1, yMin = Double.POSITIVE_INFINITY, yMax = 0;
    for (Series s : series) {
      for (Point p : s.points()) {
        xMax = Math.max(xMax, p.x());
        for (double y : new double[] {p.y(), p.bound()}) {
          if (y > 0 && Double.isFinite(y)) {
            yMin = Math.min(yMin, y);
            yMax = Math.max(yMax, y);
          }
        }
      }
    }
    if (!(yMax > 0)) {
      yMin = 1e-8;
      yMax = 1;
    }
    int lo = (int) Math.floor(Math.log10(Math.max(yMin, FLOOR)));
    int hi = (int) Math.ceil(Math.log10(yMax));
    if (hi <= lo) {
      hi = lo + 1;
    }
    double xTop = Math.ceil(xMax * 10 - 1e-9) / 10;
    Axes a = new Axes(xTop, lo, hi);

    StringBuilder sb = new StringBuilder();
    sb.append("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"").append(W).append("\" height=\"").append(H)
        .append("\" viewBox=\"0 0 ").append(W).append(' ').append(H)
        .append("\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n");
    sb.append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    sb.append(text(W / 2.0, 24, "middle", 16, "bold", title));
    sb.append(text(W / 2.0, 44, "middle", 11, "normal", subtitle));
    // grid and ticks
    double xStep = xTop <= 1 ? 0.1 : xTop <= 2 ? 0.2 : 0.5;
    for (int i = 0; i * xStep <= xTop + 1e-9; i++) {
      double x = i * xStep;
      double px = a.px(x);
      sb.append(line(px, TOP, px, H - BOTTOM, "#e6e6e6", 1, null));
      sb.append(text(px, H - BOTTOM + 18, "middle", 11, "normal", fmt(x, xStep < 0.1 ? 2 : 1)));
    }
    for (int e = lo; e <= hi; e++) {
      double py = a.py(Math.pow(10, e));
      sb.append(line(LEFT, py, W - RIGHT, py, "#e6e6e6", 1, null));
      sb.append(text(LEFT - 8, py + 4, "end", 11, "normal", "1e" + e));
    }
    sb.append(line(LEFT, H - BOTTOM, W - RIGHT, H - BOTTOM, "#000", 1, null));
    sb.append(line(LEFT, TOP, LEFT, H - BOTTOM, "#000", 1, null));
    sb.append(text((LEFT + W - RIGHT) / 2.0, H - 18, "middle", 12, "normal",
        "bytes read / K+V bytes of exact attention (summaries and samples included)"));
    sb.append("<text x=\"20\" y=\"").append(fmt((TOP + H - BOTTOM) / 2.0, 1))
        .append("\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 20 ")
        .append(fmt((TOP + H - BOTTOM) / 2.0, 1)).append(")\">relative error (log scale)</text>\n");
    // curves
    for (Series s : series) {
      List<double[]> measured = new ArrayList<>();
      List<double[]> bounds = new ArrayList<>();
      for (Point p : s.points()) {
        measured.add(new double[] {a.px(p.x()), a.py(p.y())});
        if (!Double.isNaN(p.bound())) {
          bounds.add(new double[] {a.px(p.x()), a.py(p.bound())});
        }
      }
      sb.append(polyline(bounds, s.color(), "5,4"));
      sb.append(polyline(measured, s.color(), null));
      for (double[] b : bounds) {
        sb.append(circle(b[0], b[1], 3, "white", s.color()));
      }
      // points closer than LABEL_GAP pixels to the one that opened a label share it: "1%-20%"
      int first = -1;
      for (int i = 0; i <= measured.size(); i++) {
        boolean near = i < measured.size() && first >= 0
            && Math.hypot(measured.get(i)[0] - measured.get(first)[0], measured.get(i)[1] - measured.get(first)[1])
                < LABEL_GAP;
        if (!near && first >= 0) {
          String from = s.points().get(first).label(), to = s.points().get(i - 1).label();
          if (!from.isEmpty()) {
            double[] m = measured.get(first);
            sb.append(text(m[0] + 7, m[1] - 7, "start", 10, "normal", i - 1 == first ? from : from + "\u2013" + to, s.color()));
          }
        }
        if (i < measured.size()) {
          double[] m = measured.get(i);
          sb.append(circle(m[0], m[1], 4, s.color(), s.color()));
          if (!near) {
            first = i;
          }
        }
      }
    }
    // legend
    double lx = W - RIGHT + 20, ly = TOP + 10;
    for (Series s : series) {
      sb.append(line(lx, ly, lx + 26, ly, s.color(), 2, null));
      sb.append(circle(lx + 13, ly, 4, s.color(), s.color()));
      sb.append(text(lx + 34, ly + 4, "start", 12, "normal", s.name()));
      ly += 22;
    }
    ly += 8;
    sb.append(line(lx, ly, lx + 26, ly, "#555", 2, null));
    sb.append(text(lx + 34, ly + 4, "start", 11, "normal", "measured"));
    ly += 20;
    sb.append(line(lx, ly, lx + 26, ly, "#555", 2, "5,4"));
    sb.append(circle(lx + 13, ly, 3, "white", "#555"));
    sb.append(text(lx + 34, ly + 4, "start", 11, "normal", "stated bound"));
    ly += 20;
    sb.append(text(lx, ly + 4, "start", 10, "normal", "0 is drawn at 1e" + lo));
    sb.append("</svg>\n");
    return sb.toString();
  }

  /** Maps data to pixels: x linear in [0, xTop], y log10 in [1e lo, 1e hi]; y &lt;= 0 maps to the bottom. */
  private record Axes(double xTop, int lo, int hi) {
    public double px(double x) {
      return LEFT + x / xTop * (W - LEFT - RIGHT);
    }

    public double py(double y) {
      double e = y > 0 && Double.isFinite(y) ? Math.log10(y) : lo;
      e = Math.max(lo, Math.min(hi, e));
      return H - BOTTOM - (e - lo) / (hi - lo) * (H - TOP - BOTTOM);
    }
  }

  private static String polyline(List<double[]> pts, String color, String dash) {
    if (pts.size() < 2) {
      return "";
    }
    StringBuilder sb = new StringBuilder("<polyline fill=\"none\" stroke=\"").append(color)
        .append("\" stroke-width=\"2\"");
    if (dash != null) {
      sb.append(" stroke-dasharray=\"").append(dash).append('"');
    }
    sb.append(" points=\"");
    for (double[] p : pts) {
      sb.append(fmt(p[0], 1)).append(',').append(fmt(p[1], 1)).append(' ');
    }
    sb.setLength(sb.length() - 1);
    return sb.append("\"/>\n").toString();
  }

  private static String line(double x1, double y1, double x2, double y2, String color, double width, String dash) {
    return "<line x1=\"" + fmt(x1, 1) + "\" y1=\"" + fmt(y1, 1) + "\" x2=\"" + fmt(x2, 1) + "\" y2=\"" + fmt(y2, 1)
        + "\" stroke=\"" + color + "\" stroke-width=\"" + fmt(width, 1) + "\""
        + (dash == null ? "" : " stroke-dasharray=\"" + dash + "\"") + "/>\n";
  }

  private static String circle(double x, double y, double r, String fill, String stroke) {
    return "<circle cx=\"" + fmt(x, 1) + "\" cy=\"" + fmt(y, 1) + "\" r=\"" + fmt(r, 1) + "\" fill=\"" + fill
        + "\" stroke=\"" + stroke + "\" stroke-width=\"1.5\"/>\n";
  }

  private static String text(double x, double y, String anchor, int size, String weight, String s) {
    return text(x, y, anchor, size, weight, s, "#000");
  }

  private static String text(double x, double y, String anchor, int size, String weight, String s, String color) {
    return "<text x=\"" + fmt(x, 1) + "\" y=\"" + fmt(y, 1) + "\" text-anchor=\"" + anchor + "\" font-size=\"" + size
        + "\" font-weight=\"" + weight + "\" fill=\"" + color + "\">" + escape(s) + "</text>\n";
  }

  public static String escape(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
  }

  private static String fmt(double v, int decimals) {
    return String.format(Locale.ROOT, "%." + decimals + "f", v);
  }
}
