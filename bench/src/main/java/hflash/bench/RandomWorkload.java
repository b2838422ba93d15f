package hflash.bench;

import hflash.memory.KvCache;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * {@code --workload random}: query, keys and values uniform in [-1, 1) from one seeded generator
 * (the query first, then the cache from a split of it). Scores stay moderate and every dtype holds
 * every value; there is no locality, so the approximate modes find little to skip.
 */
public final class RandomWorkload implements Workload {

  /** Positions appended per batched {@code append} call while filling the cache. */
  private static final int FILL_BATCH = 1024;

  private final Shape shape;
  private final float[] query; // (heads, dim)
  private final long seed;

  public RandomWorkload(Shape shape, long seed) {
    this.shape = shape;
    SplittableRandom random = new SplittableRandom(seed);
    query = new float[shape.heads() * shape.dim()];
    for (int i = 0; i < query.length; i++) {
      query[i] = uniform(random);
    }
    this.seed = seed;
  }

  @Override
  public String name() {
    return "random";
  }

  @Override
  public float[] query() {
    return query;
  }

  @Override
  public void fill(KvCache cache, int layer, Consumer<String> progress) {
    SplittableRandom random = afterQuery();
    int n = shape.context();
    int row = shape.kvHeads() * shape.dim();
    int batch = Math.min(FILL_BATCH, n);
    float[] k = new float[batch * row]; // (batch, kvHeads, dim)
    float[] v = new float[batch * row]; // (batch, kvHeads, dim)
    int reported = 0;
    for (int pos = 0; pos < n; pos += batch) {
      int count = Math.min(batch, n - pos);
      if (count != batch) {
        k = new float[count * row];
        v = new float[count * row];
      }
      for (int i = 0; i < k.length; i++) {
        k[i] = uniform(random);
        v[i] = uniform(random);
      }
      cache.append(layer, count, k, v);
      int percent = (int) (100L * (pos + count) / n);
      if (percent >= reported + 25) {
        reported = percent / 25 * 25;
        progress.accept("filled " + (pos + count) + "/" + n + " positions (" + reported + "%)");
      }
    }
  }

  /** The generator as it stood after the query, split: the same bits on every call. */
  private SplittableRandom afterQuery() {
    SplittableRandom after = new SplittableRandom(seed);
    for (int i = 0; i < query.length; i++) {
      after.nextDouble();
    }
    return after.split();
  }

  /** Keys and values uniform in [-1, 1): the same bits as {@link #fill}, however the counts split them. */
  @Override
  public Stream stream() {
    SplittableRandom random = afterQuery();
    int row = shape.kvHeads() * shape.dim();
    return (cache, layer, count) -> {
      float[] k = new float[count * row]; // (count, kvHeads, dim)
      float[] v = new float[count * row]; // (count, kvHeads, dim)
      for (int i = 0; i < k.length; i++) {
        k[i] = uniform(random);
        v[i] = uniform(random);
      }
      cache.append(layer, count, k, v);
    };
  }

  /** Uniform in [-1, 1). */
  private static float uniform(SplittableRandom random) {
    return (float) (random.nextDouble() * 2 - 1);
  }
}
