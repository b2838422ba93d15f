package hflash.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class SvgTest {

  @Test
  void logAxesDropPointsTheyCannotShowAndBreakTheLine() {
    String doc = new Svg("a < b & c", "x", "y").xAxis(Svg.Axis.LOG).yAxis(Svg.Axis.LOG)
        .line("curve", new double[] {0.01, 0.1, 0, 10, 100}, new double[] {1, 2, 3, 4, 5})
        .scatter("pts", new double[] {1, 2}, new double[] {-1, 3})
        .render();
    assertTrue(doc.contains("a &lt; b &amp; c"), doc);
    assertEquals(2, count(doc, "<polyline"), "x = 0 breaks the line into two runs\n" + doc);
    assertEquals(1 + 1, count(doc, "<circle"), "one legend marker, one point (y = -1 dropped)\n" + doc);
    assertTrue(doc.contains(">0.01<") && doc.contains(">100<"), doc);
    assertFalse(doc.contains("NaN"), doc);
  }

  @Test
  void linearTicksAreRoundNumbers() {
    assertEquals(List.of(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), Svg.ticks(Svg.Axis.LINEAR, new double[] {0, 1}));
    assertEquals(List.of(1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0), Svg.ticks(Svg.Axis.LOG, new double[] {1, 100}));
    assertEquals("0.25", Svg.label(0.25));
    assertEquals("1e-4", Svg.label(1e-4));
    assertEquals("2.5e6", Svg.label(2.5e6));
    assertEquals("0", Svg.label(0));
  }

  @Test
  void emptyPlotsRenderAndMismatchedSeriesAreRejected() {
    assertTrue(new Svg("empty", "x", "y").render().contains("</svg>"));
    var e = assertThrows(IllegalArgumentException.class, () -> new Svg("t", "x", "y").line("l", new double[2], new double[3]));
    assertEquals("series x and y must be non-null and of equal length: 2!=3", e.getMessage());
  }

  private static int count(String s, String part) {
    int n = 0;
    for (int i = s.indexOf(part); i >= 0; i = s.indexOf(part, i + 1)) {
      n++;
    }
    return n;
  }
}
