package hflash.bench;

import hflash.io.UsageException;
import hflash.memory.KvCache;
import java.util.function.Consumer;

/**
 * Keys, values and a decode query for {@code bench} ({@code --workload NAME}). A workload is made for
 * one shape and seed; {@link #query()} is the (heads, dim) row-major query of the timed step and
 * {@link #fill} appends {@code shape.context()} positions to one layer of a cache of that shape.
 * {@link #stream()} hands out the same positions a few at a time, for {@code bench --decode-steps}
 * (a prefill, then one position per generated token). Implementations must be deterministic for a
 * given shape and seed. To add one, implement this and add its name to {@link #create} and {@link #NAMES}.
 */
public interface Workload {

  /** The shape a workload is made for. */
  record Shape(int context, int heads, int kvHeads, int dim) {}

  /** Appends the workload's positions in order, as many at a time as asked; single-threaded. */
  interface Stream {
    /** Appends the next {@code count} positions to {@code layer} of {@code cache}. */
    void append(KvCache cache, int layer, int count);
  }

  /** The name {@code --workload} takes. */
  String name();

  /** The query of the timed decode step, (heads, dim) row-major; the same array every call. */
  float[] query();

  /** Appends every position to {@code layer} of {@code cache}; {@code progress} gets short status lines. */
  void fill(KvCache cache, int layer, Consumer<String> progress);

  /**
   * A fresh stream of the positions from 0, the same keys and values as {@link #fill} whatever the
   * counts; a stream may go past {@code context} only if the workload says so (random does).
   */
  Stream stream();

  /** The workloads {@code --workload} accepts, for messages. */
  String NAMES = "random, structured";

  /** Throws a usage error naming the known workloads unless {@code name} is one. */
  static void checkName(String name) {
    if (!name.equals("random") && !name.equals("structured")) {
      throw new UsageException("unknown workload: " + name + " (expected " + NAMES + ")");
    }
  }

  /** The workload called {@code name}, or a usage error naming the known ones (or the shape's problem). */
  static Workload create(String name, Shape shape, long seed) {
    checkName(name);
    return switch (name) {
      case "random" -> new RandomWorkload(shape, seed);
      default -> {
        try {
          yield new StructuredWorkload(
              StructuredWorkload.Params.of(shape.context(), shape.heads(), shape.kvHeads(), shape.dim(), seed));
        } catch (IllegalArgumentException e) {
          throw new UsageException("workload structured: " + e.getMessage(), e);
        }
      }
    };
  }
}
