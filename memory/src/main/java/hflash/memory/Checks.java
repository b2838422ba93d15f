package hflash.memory;

/** Precondition helpers producing the house message format {@code <what> <relation> <expected>: <actual>}. */
final class Checks {

  private Checks() {}

  /** IAE "name must be > 0: value". */
  static void positive(String name, int value) {
    if (value <= 0) {
      throw new IllegalArgumentException(name + " must be > 0: " + value);
    }
  }

  /** IOOBE "name out of range [0, bound): index". */
  static void index(String name, int index, int bound) {
    if (index < 0 || index >= bound) {
      throw new IndexOutOfBoundsException(name + " out of range [0, " + bound + "): " + index);
    }
  }
}
