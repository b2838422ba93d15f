package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;

/**
 * Runs {@link Main#run} in process and captures exit code, stdout and stderr. Shared with the dist
 * module's tests through cli's test jar.
 */
public record CliRun(int code, String out, String err) {

  static {
    // tests check what bench reports, not how fast: skip the 2 s minimum warm-up
    System.setProperty("hflash.minWarmupMs", "0");
  }

  public static CliRun of(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Main.run(args, new PrintWriter(out), new PrintWriter(err));
    return new CliRun(code, out.toString(), err.toString());
  }

  /** Lines of stderr, without the trailing empty one. */
  public String[] errLines() {
    return err.isEmpty() ? new String[0] : err.split("\\R");
  }

  /**
   * Asserts a usage error: exit code {@link Main#EXIT_USAGE}, one line on stderr that starts with
   * {@code prefix} ("hflash gen: ") and contains {@code expected}, nothing on stdout.
   */
  public void assertUsageError(String prefix, String expected) {
    assertEquals(Main.EXIT_USAGE, code, this::toString);
    assertEquals(1, errLines().length, () -> "expected one line on stderr\n" + this);
    assertTrue(err.startsWith(prefix), this::toString);
    assertTrue(err.contains(expected), () -> "stderr should contain '" + expected + "'\n" + this);
    assertEquals("", out, this::toString);
  }

  @Override
  public String toString() {
    return "exit " + code + "\n--- stdout\n" + out + "--- stderr\n" + err;
  }
}
