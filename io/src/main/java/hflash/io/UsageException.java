package hflash.io;

/**
 * A problem with the arguments or an input file that the user can fix. The message names the
 * problem in one line; front ends print it without a stack trace (the CLI exits with code 2).
 */
public final class UsageException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public UsageException(String message) {
    super(message);
  }

  public UsageException(String message, Throwable cause) {
    super(message, cause);
  }

  /** Throws unless {@code value > 0}, naming the option: "--context must be positive: 0". */
  public static int positive(String option, int value) {
    if (value <= 0) {
      throw new UsageException(option + " must be positive: " + value);
    }
    return value;
  }
}
