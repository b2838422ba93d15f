package hflash.engine;

/**
 * StreamingLLM-style key restriction, an option of exact mode orthogonal to the mode's parameters:
 * a call attends to the first {@code sinks} positions and the last {@code window} positions only.
 *
 * @param sinks always-attended first positions, &gt;= 0
 * @param window most recent positions attended, &gt;= 1
 */
public record SinkWindow(int sinks, int window) {
  public SinkWindow {
    if (sinks < 0 || window < 0) {
      throw new IllegalArgumentException("sinks and window must be >= 0: " + sinks + ", " + window);
    }
    if (window < 1) {
      throw new IllegalArgumentException("window must be >= 1: " + window);
    }
  }
}
