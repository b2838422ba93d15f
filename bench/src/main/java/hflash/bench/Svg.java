package hflash.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A small, dependency-free SVG plot: line and scatter series over linear or log axes, with ticks,
 * grid, axis labels, a legend and a title. Points that an axis cannot show (non-finite, or &le; 0 on a
 * log axis) are dropped, and a line is broken there rather than drawn through them.
 *
 * <pre>
 *   new Svg("error vs bytes", "fraction of KV bytes read", "relative error")
 *       .xAxis(Svg.Axis.LOG).yAxis(Svg.Axis.LOG)
 *       .line("certified", bytes, err).scatter("budgeted", bytes2, err2)
 *       .write(Path.of("plot.svg"));
 * </pre>
 *
 * Not thread-safe; the arrays passed in are copied.
 */
public final class Svg {

  /** How an axis maps values to pixels. */
  public enum Axis {
    LINEAR,
    LOG
  }

  private record Series(String name, double[] x, double[] y, boolean line, String color) {}

  private record Marker(double x, String label) {}

  private static final String[] PALETTE = {
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"
  };

  private final String title;
  private final String xLabel;
  private final String yLabel;
  private Axis xAxis = Axis.LINEAR;
  private Axis yAxis = Axis.LINEAR;
  private int width = 760;
  private int height = 460;
  private final List<Series> series = new ArrayList<>();
  private final List<Marker> markers = new ArrayList<>();

  public Svg(String title, String xLabel, String yLabel) {
    this.title = title == null ? "" : title;
    this.xLabel = xLabel == null ? "" : xLabel;
    this.yLabel = yLabel == null ? "" : yLabel;
  }

  public Svg xAxis(Axis axis) {
    this.xAxis = java.util.Objects.requireNonNull(axis);
    return this;
  }

  public Svg yAxis(Axis axis) {
    this.yAxis = java.util.Objects.requireNonNull(axis);
    return this;
  }

  /** Image size in pixels (default 760 x 460); at least 200 x 150. */
  public Svg size(int width, int height) {
    if (width < 200 || height < 150) {
      throw new IllegalArgumentException("svg size must be at least 200x150: " + width + "x" + height);
    }
    this.width = width;
    this.height = height;
    return this;
  }

  /** A polyline through (x[i], y[i]) in the given order. */
  public Svg line(String name, double[] x, double[] y) {
    return add(name, x, y, true);
  }

  /** Points at (x[i], y[i]). */
  public Svg scatter(String name, double[] x, double[] y) {
    return add(name, x, y, false);
  }

  /** A dashed vertical line at {@code x} with a label at its top. */
  public Svg marker(double x, String label) {
    markers.add(new Marker(x, label == null ? "" : label));
    return this;
  }

  private Svg add(String name, double[] x, double[] y, boolean line) {
    if (x == null || y == null || x.length != y.length) {
      throw new IllegalArgumentException("series x and y must be non-null and of equal length: "
          + (x == null ? "null" : x.length) + "!=" + (y == null ? "null" : y.length));
    }
    series.add(new Series(name == null ? "" : name, x.clone(), y.clone(), line, PALETTE[series.size() % PALETTE.length]));
    return this;
  }

  /** Writes {@link #render()} to {@code file} as UTF-8. */
  public void write(Path file) {
    try {
      Files.writeString(file, render(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + file, e);
    }
  }

  /** The SVG document. */
  public String render() {
    int left = 78;
    int longest = series.stream().mapToInt(x -> x.name().length()).max().orElse(0);
    int right = series.isEmpty() ? 24 : Math.min(width / 2, 56 + 7 * longest); // legend: about 7 px a character
    int top = 42;
    int bottom = 58;
    double pw = width - left - right;
    double ph = height - top - bottom;
    double[] xr = range(xAxis, true);
    double[] yr = range(yAxis, false);
    Scale sx = new Scale(xAxis, xr[0], xr[1], left, left + pw);
    Scale sy = new Scale(yAxis, yr[0], yr[1], top + ph, top);
    StringBuilder s = new StringBuilder();
    s.append(String.format(Locale.ROOT,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            + "font-family=\"sans-serif\" font-size=\"12\">\n", width, height, width, height));
    s.append(String.format(Locale.ROOT, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", width, height));
    s.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n",
        left + pw / 2, esc(title)));
    // grid and ticks
    for (double t : ticks(xAxis, xr)) {
      double x = sx.px(t);
      s.append(line(x, top, x, top + ph, "#e5e5e5", null));
      s.append(line(x, top + ph, x, top + ph + 5, "black", null));
      s.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
          x, top + ph + 19, esc(label(t))));
    }
    for (double t : ticks(yAxis, yr)) {
      double y = sy.px(t);
      s.append(line(left, y, left + pw, y, "#e5e5e5", null));
      s.append(line(left - 5, y, left, y, "black", null));
      s.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
          left - 8.0, y + 4, esc(label(t))));
    }
    s.append(String.format(Locale.ROOT,
        "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", left, top, pw, ph));
    s.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
        left + pw / 2, height - 14, esc(xLabel)));
    s.append(String.format(Locale.ROOT,
        "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", top + ph / 2, esc(yLabel)));
    for (Marker m : markers) {
      if (sx.shows(m.x())) {
        double x = sx.px(m.x());
        s.append(line(x, top, x, top + ph, "#555555", "4 3"));
        s.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555555\">%s</text>\n",
            x + 3, top + 12.0, esc(m.label())));
      }
    }
    for (Series ser : series) {
      plot(s, ser, sx, sy);
    }
    legend(s, left + pw + 14, top);
    return s.append("</svg>\n").toString();
  }

  private void plot(StringBuilder s, Series ser, Scale sx, Scale sy) {
    StringBuilder pts = new StringBuilder();
    for (int i = 0; i <= ser.x().length; i++) {
      boolean ok = i < ser.x().length && sx.shows(ser.x()[i]) && sy.shows(ser.y()[i]);
      if (ok && !ser.line()) {
        s.append(String.format(Locale.ROOT, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n",
            sx.px(ser.x()[i]), sy.px(ser.y()[i]), ser.color()));
      } else if (ok) {
        pts.append(String.format(Locale.ROOT, "%.2f,%.2f ", sx.px(ser.x()[i]), sy.px(ser.y()[i])));
      } else if (pts.length() > 0) { // a gap, or the end: flush the run
        s.append(String.format(Locale.ROOT,
            "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"/>\n", pts.toString().strip(), ser.color()));
        pts.setLength(0);
      }
    }
  }

  private void legend(StringBuilder s, double x, double y) {
    for (int i = 0; i < series.size(); i++) {
      Series ser = series.get(i);
      double yy = y + 8 + i * 18;
      if (ser.line()) {
        s.append(line(x, yy, x + 22, yy, ser.color(), null).replace("stroke-width=\"1\"", "stroke-width=\"2.5\""));
      } else {
        s.append(String.format(Locale.ROOT, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", x + 11, yy, ser.color()));
      }
      s.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + 28, yy + 4, esc(ser.name())));
    }
  }

  private static String line(double x1, double y1, double x2, double y2, String color, String dash) {
    return String.format(Locale.ROOT,
        "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"1\"%s/>\n",
        x1, y1, x2, y2, color, dash == null ? "" : " stroke-dasharray=\"" + dash + "\"");
  }

  /** Data range of one axis over the points it can show, widened to whole ticks. */
  private double[] range(Axis axis, boolean isX) {
    double lo = Double.POSITIVE_INFINITY;
    double hi = Double.NEGATIVE_INFINITY;
    for (Series ser : series) {
      double[] v = isX ? ser.x() : ser.y();
      double[] o = isX ? ser.y() : ser.x();
      Axis other = isX ? yAxis : xAxis;
      for (int i = 0; i < v.length; i++) {
        if (showable(axis, v[i]) && showable(other, o[i])) {
          lo = Math.min(lo, v[i]);
          hi = Math.max(hi, v[i]);
        }
      }
    }
    if (isX) {
      for (Marker m : markers) {
        if (showable(axis, m.x())) {
          lo = Math.min(lo, m.x());
          hi = Math.max(hi, m.x());
        }
      }
    }
    if (lo > hi) { // nothing to show
      return axis == Axis.LOG ? new double[] {1, 10} : new double[] {0, 1};
    }
    if (axis == Axis.LOG) {
      double a = Math.floor(Math.log10(lo) + 1e-9);
      double b = Math.ceil(Math.log10(hi) - 1e-9);
      if (b <= a) {
        b = a + 1;
      }
      return new double[] {Math.pow(10, a), Math.pow(10, b)};
    }
    if (hi == lo) {
      double pad = lo == 0 ? 1 : Math.abs(lo) * 0.1;
      lo -= pad;
      hi += pad;
    }
    double step = niceStep((hi - lo) / 5);
    return new double[] {Math.floor(lo / step + 1e-9) * step, Math.ceil(hi / step - 1e-9) * step};
  }

  /** Tick positions: multiples of a 1-2-5 step (linear); decades, plus 2 and 5 when under three decades (log). */
  public static List<Double> ticks(Axis axis, double[] r) {
    List<Double> t = new ArrayList<>();
    if (axis == Axis.LOG) {
      int a = (int) Math.round(Math.log10(r[0]));
      int b = (int) Math.round(Math.log10(r[1]));
      int every = Math.max(1, (b - a + 7) / 8); // at most about 8 labelled decades
      for (int e = a; e <= b; e++) {
        double dec = Math.pow(10, e);
        if ((e - a) % every == 0) {
          t.add(dec);
        }
        if (b - a < 3 && e < b) {
          t.add(2 * dec);
          t.add(5 * dec);
        }
      }
      return t;
    }
    double step = niceStep((r[1] - r[0]) / 5);
    for (int i = 0; r[0] + i * step <= r[1] + step * 1e-6; i++) {
      double v = r[0] + i * step;
      // 12 significant digits: 0.2 * 3 is 0.6, not 0.6000000000000001
      t.add(Math.abs(v) < step * 1e-9 ? 0.0 : Double.parseDouble(String.format(Locale.ROOT, "%.12g", v)));
    }
    return t;
  }

  private static double niceStep(double raw) {
    if (!(raw > 0) || !Double.isFinite(raw)) {
      return 1;
    }
    double mag = Math.pow(10, Math.floor(Math.log10(raw)));
    double f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  }

  /** Compact tick label: "0.05", "200", "1e-4", "3e+06". */
  public static String label(double v) {
    if (v == 0) {
      return "0";
    }
    double a = Math.abs(v);
    if (a >= 1e-3 && a < 1e5) {
      String s = String.format(Locale.ROOT, "%.6f", v);
      s = s.replaceAll("0+$", "");
      return s.endsWith(".") ? s.substring(0, s.length() - 1) : s;
    }
    String s = String.format(Locale.ROOT, "%.2e", v); // 1.00e-04 -> 1e-4
    String mant = s.substring(0, s.indexOf('e')).replaceAll("\\.?0+$", "");
    int exp = Integer.parseInt(s.substring(s.indexOf('e') + 1));
    return mant + "e" + exp;
  }

  public static String esc(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
  }

  private static boolean showable(Axis axis, double v) {
    return Double.isFinite(v) && (axis == Axis.LINEAR || v > 0);
  }

  /** Maps a value to a pixel coordinate on one axis. */
  private static final class Scale {
    final Axis axis;
    final double lo;
    final double hi;
    final double p0;
    final double p1;

    public Scale(Axis axis, double lo, double hi, double p0, double p1) {
      this.axis = axis;
      this.lo = axis == Axis.LOG ? Math.log10(lo) : lo;
      this.hi = axis == Axis.LOG ? Math.log10(hi) : hi;
      this.p0 = p0;
      this.p1 = p1;
    }

    public boolean shows(double v) {
      return showable(axis, v);
    }

    public double px(double v) {
      double t = axis == Axis.LOG ? Math.log10(v) : v;
      return p0 + (t - lo) / (hi - lo) * (p1 - p0);
    }
  }
}
