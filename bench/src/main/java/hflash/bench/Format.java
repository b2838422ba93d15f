package hflash.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Number formatting and plain-text tables for reports. JSON results are plain maps (field order is
 * the map's order) that a front end writes with its own JSON library.
 */
public final class Format {

  private Format() {}

  /** A double for JSON: non-finite values (which JSON cannot hold) become null. */
  public static Double finite(double v) {
    return Double.isFinite(v) ? v : null;
  }

  public static String bytes(long bytes) {
    if (bytes >= 1L << 30) {
      return String.format(Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30));
    }
    if (bytes >= 1L << 20) {
      return String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
    }
    if (bytes >= 1L << 10) {
      return String.format(Locale.ROOT, "%.1f KiB", bytes / (double) (1L << 10));
    }
    return bytes + " B";
  }

  public static String fixed(double v, int decimals) {
    return String.format(Locale.ROOT, "%." + decimals + "f", v);
  }

  public static String sci(double v) {
    return String.format(Locale.ROOT, "%.2e", v);
  }

  /** A plain-text table: a header row, then rows; columns right-aligned except the first. */
  public static final class Table {
    private final List<String[]> rows = new ArrayList<>();

    public Table(String... header) {
      rows.add(header);
    }

    public Table row(Object... cells) {
      String[] r = new String[cells.length];
      for (int i = 0; i < cells.length; i++) {
        r[i] = String.valueOf(cells[i]);
      }
      rows.add(r);
      return this;
    }

    @Override
    public String toString() {
      int cols = rows.get(0).length;
      int[] width = new int[cols];
      for (String[] r : rows) {
        for (int i = 0; i < cols && i < r.length; i++) {
          width[i] = Math.max(width[i], r[i].length());
        }
      }
      StringBuilder sb = new StringBuilder();
      for (String[] r : rows) {
        sb.append(' ');
        for (int i = 0; i < cols; i++) {
          String cell = i < r.length ? r[i] : "";
          String pad = " ".repeat(width[i] - cell.length());
          sb.append(' ').append(i == 0 ? cell + pad : pad + cell).append(' ');
        }
        sb.setLength(sb.length() - 1);
        sb.append('\n');
      }
      return sb.toString();
    }
  }
}
