package hflash.bench;

import hflash.engine.Scheduler;
import hflash.io.UsageException;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code --scheduler}: how a decode call spreads over its threads ({@link Scheduler}). Every command
 * that decodes takes one of serial, splitk (the default) or pipeline; {@code bench} also takes
 * several, comma-separated, or {@code all}, and times them side by side. The pipeline pairs threads
 * (a scoring unit and an accumulating unit), so it needs {@code --threads} of at least 2.
 */
public final class Schedulers {

  /** The default: split-K for exact, KV heads over the threads for the other modes. */
  public static final String DEFAULT = "splitk";

  private Schedulers() {}

  /** One scheduler, checked against the thread count. */
  public static Scheduler one(String name, int threads) {
    Scheduler s = parse(name, false);
    check(List.of(s), threads, name);
    return s;
  }

  /** Several (comma-separated in picocli, or {@code all}: serial, splitk, pipeline), each once, in order. */
  public static List<Scheduler> many(List<String> names, int threads) {
    List<Scheduler> out = new ArrayList<>();
    boolean all = false;
    for (String n : names) {
      if (n.strip().equalsIgnoreCase("all")) {
        all = true;
        for (Scheduler s : Scheduler.values()) {
          if (!out.contains(s)) {
            out.add(s);
          }
        }
      } else {
        Scheduler s = parse(n, true);
        if (!out.contains(s)) {
          out.add(s);
        }
      }
    }
    if (out.isEmpty()) {
      throw new UsageException("--scheduler needs a value (serial, splitk, pipeline or all)");
    }
    check(out, threads, all ? "all (which includes pipeline)" : "pipeline");
    return List.copyOf(out);
  }

  private static Scheduler parse(String name, boolean allowAll) {
    try {
      return Scheduler.parse(name);
    } catch (IllegalArgumentException e) {
      throw new UsageException("unknown scheduler: " + name + " (expected serial, splitk" + (allowAll ? ", pipeline or all)" : " or pipeline)"), e);
    }
  }

  private static void check(List<Scheduler> schedulers, int threads, String asked) {
    if (schedulers.contains(Scheduler.PIPELINE) && threads < 2) {
      throw new UsageException("--scheduler " + asked + " needs --threads >= 2 (one scoring and one accumulating thread per pipeline): " + threads);
    }
  }

  /** "serial", "splitk, pipeline". */
  public static String ids(List<Scheduler> schedulers) {
    return String.join(", ", schedulers.stream().map(Scheduler::id).toList());
  }
}
