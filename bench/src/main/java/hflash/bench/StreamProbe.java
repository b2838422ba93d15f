package hflash.bench;

import hflash.memory.HugePages;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The streaming-read probe: the fastest single pass over an off-heap buffer with the
 * {@link #streamReaders() readers} of every lane width, split into one contiguous chunk per thread. The buffer is written once before
 * timing so every page is backed by its own memory (an untouched allocation may map the shared zero
 * page, which reads from cache and overstates bandwidth). Owns one shared Arena and a thread pool,
 * both released by {@link #close()}.
 */
public final class StreamProbe implements AutoCloseable {

  /** Chunk boundaries are multiples of this many bytes (a page), so threads never share a page. */
  private static final long ALIGN = 4096;

  private final Arena arena = Arena.ofShared();
  private final MemorySegment buffer;
  private final int threads;
  private final ExecutorService pool;
  private final List<StreamReader> readers = streamReaders();
  private StreamReader reader; // the one being timed
  private String bestReader = "none";
  private volatile double sink;

  /**
   * Every streaming reader this JVM can run: the vector ones at 128, 256 and 512 bits when the
   * incubator module is loaded, and the scalar loop. The probe times them all and keeps the
   * fastest, so it is the best streaming read Java manages on this machine.
   */
  public static List<StreamReader> streamReaders() {
    StreamReader scalar = new StreamReader() {
      @Override
      public String name() {
        return "scalar";
      }

      @Override
      public double sum(MemorySegment seg, long off, long floatCount) {
        double sum = 0;
        for (long i = 0; i < floatCount; i++) {
          sum += seg.get(F32_LE, off + i * Float.BYTES);
        }
        return sum;
      }
    };
    if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
      return List.of(scalar);
    }
    // VectorStreamReaders is loaded only here, after the check: without the module it cannot link
    List<StreamReader> all = new ArrayList<>(VectorStreamReaders.all());
    all.add(scalar);
    return all;
  }

  private static final java.lang.foreign.ValueLayout.OfFloat F32_LE =
      java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

  /** Probe size for a KV cache of {@code kvBytes}: at least 1 GiB or 4x the KV size, whichever is smaller. */
  public static long probeBytes(long kvBytes) {
    long bytes = Math.min(1L << 30, 4 * kvBytes);
    return Math.max(ALIGN, (bytes + ALIGN - 1) / ALIGN * ALIGN);
  }

  public StreamProbe(long bytes, int threads) {
    if (bytes <= 0 || bytes % Float.BYTES != 0) {
      throw new IllegalArgumentException("probe bytes must be a positive multiple of 4: " + bytes);
    }
    this.threads = threads;
    try {
      buffer = HugePages.allocate(arena, bytes, 64); // the same pages the cache gets
      buffer.fill((byte) 0x3c); // every float 0x3c3c3c3c ~ 0.0115: finite, so the sum stays finite
    } catch (RuntimeException | OutOfMemoryError e) {
      arena.close();
      throw e;
    }
    this.pool =
        threads > 1
            ? Executors.newFixedThreadPool(
                threads,
                r -> {
                  Thread t = new Thread(r, "hflash-probe");
                  t.setDaemon(true);
                  return t;
                })
            : null;
  }

  public long bytes() {
    return buffer.byteSize();
  }

  /**
   * Best bandwidth in GB/s (1e9 bytes/s) of the passes made until both {@code minPasses} passes and
   * {@code minNanos} of wall time are done. Wall time, not a pass count, bounds small buffers: their
   * first thousands of passes run before the JIT has compiled the vector kernel.
   */
  public double bestGBps(int minPasses, long minNanos) {
    long best = Long.MAX_VALUE;
    for (StreamReader r : readers) { // every vector width and the scalar loop: keep the fastest
      if (r.name().equals("scalar") && readers.size() > 1) {
        continue; // never the fastest when a vector reader exists; saves a slow pass
      }
      reader = r;
      long start = System.nanoTime();
      for (int pass = 0; pass < minPasses || System.nanoTime() - start < minNanos; pass++) {
        long t = pass();
        if (t < best) {
          best = t;
          bestReader = r.name();
        }
      }
    }
    return buffer.byteSize() / (double) best;
  }

  /** Name of the reader that gave the best pass (e.g. {@code vector-128}). */
  public String bestReader() {
    return bestReader;
  }

  /** One pass over the whole buffer; returns its wall time in nanoseconds. */
  public long pass() {
    long t0 = System.nanoTime();
    double sum;
    if (pool == null) {
      sum = currentReader().sum(buffer, 0, buffer.byteSize() / Float.BYTES);
    } else {
      sum = parallelSum();
    }
    long t = System.nanoTime() - t0;
    if (!Double.isFinite(sum)) {
      throw new IllegalStateException("probe sum is not finite: " + sum);
    }
    sink += sum;
    return Math.max(1, t);
  }

  private double parallelSum() {
    long size = buffer.byteSize();
    long chunk = (size / threads + ALIGN - 1) / ALIGN * ALIGN;
    List<Future<Double>> parts = new ArrayList<>(threads);
    for (int i = 0; i < threads; i++) {
      long from = Math.min(size, i * chunk);
      long to = Math.min(size, from + chunk);
      StreamReader r = currentReader();
      parts.add(pool.submit(() -> r.sum(buffer, from, (to - from) / Float.BYTES)));
    }
    return ProbeTasks.join(parts, "probe");
  }

  private StreamReader currentReader() {
    return reader != null ? reader : readers.get(0);
  }

  @Override
  public void close() {
    if (pool != null) {
      pool.shutdownNow();
    }
    arena.close();
  }
}
