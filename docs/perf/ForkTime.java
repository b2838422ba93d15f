import hflash.memory.*;
import java.util.Arrays;
import java.util.Random;

/** Median fork() time of a sequence holding a 32768-position W1 prefix (f16, 512-position pages), and pool bytes. */
public class ForkTime {
  public static void main(String[] args) {
    int prefix = 32768, suffix = 512, b = 16;
    KvCacheLayout l = new KvCacheLayout(1, 8, 128, prefix + suffix, DType.F16, 128);
    int pages = 64 + 2 * b + 8;
    try (PagePool pool = PagePool.allocate(l, 512, pages)) {
      KvCache root = pool.newSequence();
      Random r = new Random(42);
      float[] k = new float[prefix * 8 * 128], v = new float[k.length];
      for (int i = 0; i < k.length; i++) { k[i] = r.nextFloat() * 2 - 1; v[i] = r.nextFloat() * 2 - 1; }
      root.append(0, prefix, k, v);
      int rounds = Integer.parseInt(args.length > 0 ? args[0] : "400");
      long[] ns = new long[rounds];
      for (int i = 0; i < rounds; i++) {
        long t0 = System.nanoTime();
        KvCache f = root.fork();
        long t1 = System.nanoTime();
        f.close();
        ns[i] = t1 - t0;
      }
      long[] tail = Arrays.copyOfRange(ns, rounds / 2, rounds); // after warm-up
      Arrays.sort(tail);
      KvCache[] forks = new KvCache[b];
      float[] ks = Arrays.copyOf(k, suffix * 8 * 128), vs = Arrays.copyOf(v, suffix * 8 * 128);
      for (int i = 0; i < b; i++) { forks[i] = root.fork(); forks[i].append(0, suffix, ks, vs); }
      root.close();
      PagePool.Stats s = pool.stats();
      System.out.printf("forkMedianUs=%.1f forkP10Us=%.1f forkP90Us=%.1f poolBytesUsed=%d pagesUsed=%d pageBytes=%d%n",
          tail[tail.length / 2] / 1e3, tail[tail.length / 10] / 1e3, tail[tail.length * 9 / 10] / 1e3,
          s.bytesUsed(), s.pagesUsed(), PagePool.pageBytes(l, 512));
    }
  }
}
