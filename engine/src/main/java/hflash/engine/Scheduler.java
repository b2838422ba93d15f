package hflash.engine;

import java.util.Locale;

/**
 * How a {@link DecodeAttention} spreads one call over its threads. Every scheduler returns the
 * same output for the same mode; see docs/ALGORITHM.md for how each splits a call and
 * docs/BENCHMARKS.md for measured times (on 2 cores splitk wins every mode: two independent
 * halves and one merge).
 */
public enum Scheduler {
  /** One thread does everything, whatever the thread count. */
  SERIAL,
  /**
   * Exact mode: contiguous key ranges per thread, partial states merged in order (FlashDecoding);
   * approximate modes: KV heads spread over the threads. Bit-reproducible for a thread count.
   */
  SPLITK,
  /**
   * The Ascend mirror: pairs of threads, unit 1 scoring (and planning) tile t+1 while unit 2
   * rescales and accumulates tile t, through a two-slot hand-off. threads/2 pipelines run side by
   * side over split-K ranges (exact) or KV heads. Bit-equal to SERIAL with one pipeline, to
   * SPLITK with threads/2 chunks otherwise. Needs at least 2 threads.
   */
  PIPELINE;

  /** The CLI spelling: lower case. */
  public String id() {
    return name().toLowerCase(Locale.ROOT);
  }

  /** Parses a scheduler name, case-insensitively. */
  public static Scheduler parse(String name) {
    if (name != null) {
      for (Scheduler s : values()) {
        if (s.id().equalsIgnoreCase(name.trim())) {
          return s;
        }
      }
    }
    throw new IllegalArgumentException("unknown scheduler: " + name + " (expected serial, splitk or pipeline)");
  }
}
