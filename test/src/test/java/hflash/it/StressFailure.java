package hflash.it;

/** One failure of a stress test, with everything needed to replay it: where (round, thread) and what. */
record StressFailure(String where, String what) {
  @Override
  public String toString() {
    return where + ": " + what;
  }
}
