package hflash.bench;

/**
 * A register-resident multiply-add loop: the arithmetic ceiling the decode kernels are compared
 * against (the compute half of the roofline), as {@link StreamReader} is the memory half.
 * {@link ComputeProbe#fmaLoops(hflash.tiles.TileKernels)} lists the shapes at the lane width of a set of
 * kernels; a fair probe times them all and keeps the fastest, as {@code ../shared/tools/fmapeak.c}
 * does in C.
 */
public interface FmaLoop {

  /** For reports, e.g. {@code "vector-256x12"}: lane width and independent accumulators. */
  String name();

  /** Fused multiply-adds one {@link #run} iteration performs (lanes times accumulators). */
  long fmasPerIteration();

  /**
   * Runs {@code iterations} rounds of {@code a_i = a_i * x + y} over the loop's accumulators, all in
   * registers, and returns the sum of the accumulators so the JIT cannot drop the work.
   * {@code seed} starts the accumulators (pass a small positive value, e.g. 1e-3).
   */
  float run(long iterations, float seed);
}
