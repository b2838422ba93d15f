/**
 * The off-heap KV cache: layout, dtypes and quantized blocks, the per-tile summaries and the key
 * samples, the Hadamard rotation, huge pages. {@code hflash.memory.internal} (the derived stores
 * a decode pass reads) is exported to the engine only.
 */
module hflash.memory {
  exports hflash.memory;
  exports hflash.memory.internal to hflash.engine;
}
