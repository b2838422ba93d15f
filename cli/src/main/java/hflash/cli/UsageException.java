package hflash.cli;

/** A problem with the arguments or an input file that the user can fix: exit code 2, one line. */
final class UsageException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  UsageException(String message) {
    super(message);
  }

  UsageException(String message, Throwable cause) {
    super(message, cause);
  }

  /** Throws unless {@code value > 0}, naming the option: "--context must be positive: 0". */
  static int positive(String option, int value) {
    if (value <= 0) {
      throw new UsageException(option + " must be positive: " + value);
    }
    return value;
  }
}
