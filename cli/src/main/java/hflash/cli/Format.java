package hflash.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Number formatting, JSON output and plain-text tables for the commands. */
final class Format {

  private static final ObjectMapper JSON = new ObjectMapper().disable(SerializationFeature.INDENT_OUTPUT);

  private Format() {}

  /** One JSON object on one line; field order is the map's order. */
  static String json(Map<String, ?> object) {
    try {
      return JSON.writeValueAsString(object);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("cannot write JSON: " + e.getMessage(), e);
    }
  }

  /** A double for JSON: non-finite values (which JSON cannot hold) become null. */
  static Double finite(double v) {
    return Double.isFinite(v) ? v : null;
  }

  static String bytes(long bytes) {
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

  static String fixed(double v, int decimals) {
    return String.format(Locale.ROOT, "%." + decimals + "f", v);
  }

  static String sci(double v) {
    return String.format(Locale.ROOT, "%.2e", v);
  }

  /** A plain-text table: a header row, then rows; columns right-aligned except the first. */
  static final class Table {
    private final List<String[]> rows = new ArrayList<>();

    Table(String... header) {
      rows.add(header);
    }

    Table row(Object... cells) {
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
