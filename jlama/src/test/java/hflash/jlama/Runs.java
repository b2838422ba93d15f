package hflash.jlama;

import com.github.tjake.jlama.model.AbstractModel;
import com.github.tjake.jlama.tensor.AbstractTensor;
import com.github.tjake.jlama.tensor.KvBufferCache;
import java.util.SplittableRandom;

/** Greedy runs driven the way Jlama's {@code generate} drives a model, for stock and adapter alike. */
final class Runs {

  private Runs() {}

  /** Tokens generated and the raw logits of the first and the last one. */
  record Greedy(int[] tokens, float[] firstLogits, float[] lastLogits) {}

  /** {@code n} prompt tokens: BOS, then seeded tokens from the byte and filler range (no BOS/EOS inside). */
  static int[] prompt(int n, int vocab, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    int[] p = new int[n];
    p[0] = 1;
    for (int i = 1; i < n; i++) {
      p[i] = RandomModel.BYTE_OFFSET + r.nextInt(vocab - RandomModel.BYTE_OFFSET);
    }
    return p;
  }

  /** Prompt at {@code start} as one batch forward, then {@code count} greedy tokens (the first from the prompt). */
  static Greedy greedy(AbstractModel m, KvBufferCache.KvBuffer kv, int[] prompt, int start, int count) {
    int vocab = m.getConfig().vocabularySize;
    int[] out = new int[count];
    float[] logits = new float[vocab];
    float[] firstLogits = new float[vocab];
    try (AbstractTensor l = m.makeDenseTensor(vocab)) {
      AbstractTensor last = m.batchForward(prompt, start, kv);
      out[0] = m.sample(last.slice(last.shape().first() - 1), 0f, 0f, l);
      last.close();
      for (int i = 0; i < vocab; i++) {
        firstLogits[i] = l.get(0, i);
      }
      for (int i = 1; i < count; i++) {
        AbstractTensor o = m.forward(out[i - 1], start + prompt.length + i - 1, kv, java.util.Optional.empty());
        out[i] = m.sample(o, 0f, 0f, l);
        o.close();
      }
      for (int i = 0; i < vocab; i++) {
        logits[i] = l.get(0, i);
      }
    }
    return new Greedy(out, firstLogits, logits);
  }

  /** max |a - b| / max |b|. */
  static double relative(float[] a, float[] b) {
    double num = 0, den = 0;
    for (int i = 0; i < a.length; i++) {
      num = Math.max(num, Math.abs(a[i] - b[i]));
      den = Math.max(den, Math.abs(b[i]));
    }
    return num / den;
  }

  static int agreement(int[] a, int[] b) {
    int n = 0;
    for (int i = 0; i < a.length; i++) {
      n += a[i] == b[i] ? 1 : 0;
    }
    return n;
  }
}
