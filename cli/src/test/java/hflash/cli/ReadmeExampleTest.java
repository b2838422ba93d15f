package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import hflash.engine.DecodeAttention;
import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import org.junit.jupiter.api.Test;

/** The Java example of README.md, kept compiling and running (update both together). */
class ReadmeExampleTest {

  @Test
  void readmeExampleRuns() {
    long last;
    // --- README.md "Use it from Java", verbatim ---
    int layers = 2, heads = 32, kvHeads = 8, headDim = 128, capacity = 4096, tileTokens = 64;
    var layout = new KvCacheLayout(layers, kvHeads, headDim, capacity, DType.F16, tileTokens);
    try (KvCache cache = KvCache.allocate(layout);                              // owns the off-heap memory
         DecodeAttention attention = DecodeAttention.create(cache, heads, 2)) { // 2 threads, scale 1/sqrt(d)
      float[] k = new float[kvHeads * headDim];   // (kvHeads, headDim): this token's keys, after RoPE
      float[] v = new float[kvHeads * headDim];   // (kvHeads, headDim)
      float[] q = new float[heads * headDim];     // (heads, headDim): this token's queries, after RoPE
      float[] out = new float[heads * headDim];   // (heads, headDim)
      for (int layer = 0; layer < layers; layer++) {  // for every generated token, every layer:
        // ... the runtime fills q, k, v for this layer ...
        cache.append(layer, k, v);                // stored at position cache.length(layer)
        attention.decode(layer, q, out);          // attends to all cache.length(layer) positions
      }
      long bytes = attention.report().kvBytesRead();  // of the last call; the next call overwrites it
    // --- end of the README example ---
      last = bytes;
    }
    assertEquals(2L * kvHeads * headDim * DType.F16.bytes(), last, "one position of K and V, every KV head");
  }
}
