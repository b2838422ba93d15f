package hflash.cli;

import hflash.memory.KvCache;
import java.util.function.Consumer;

/**
 * Keys, values and a decode query for {@code bench} ({@code --workload NAME}). A workload is made for
 * one shape and seed; {@link #query()} is the (heads, dim) row-major query of the timed step and
 * {@link #fill} appends {@code shape.context()} positions to one layer of a cache of that shape.
 * Implementations must be deterministic for a given shape and seed. To add one, implement this and
 * add its name to {@link #create}.
 */
interface Workload {

  /** The shape a workload is made for. */
  record Shape(int context, int heads, int kvHeads, int dim) {}

  /** The name {@code --workload} takes. */
  String name();

  /** The query of the timed decode step, (heads, dim) row-major; the same array every call. */
  float[] query();

  /** Appends every position to {@code layer} of {@code cache}; {@code progress} gets short status lines. */
  void fill(KvCache cache, int layer, Consumer<String> progress);

  /** The workloads {@code --workload} accepts, for messages. */
  String NAMES = "random";

  /** The workload called {@code name}, or a usage error naming the known ones. */
  static Workload create(String name, Shape shape, long seed) {
    return switch (name) {
      case "random" -> new RandomWorkload(shape, seed);
      case "structured" -> throw new UsageException(
          "workload structured is not available in this build yet (expected " + NAMES + ")");
      default -> throw new UsageException("unknown workload: " + name + " (expected " + NAMES + ")");
    };
  }
}
