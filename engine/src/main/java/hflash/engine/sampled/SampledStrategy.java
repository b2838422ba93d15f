package hflash.engine.sampled;

import hflash.engine.pass.Encodings;
import hflash.engine.ModeConfig;
import hflash.engine.pass.ModeStrategy;
import hflash.engine.pass.Tiles;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.memory.TileLayout;
import hflash.tiles.TileKernels;
import java.util.Arrays;

/**
 * Sampled mode, the design note's estimator: stage 1 scores every {@code delta}-th key (from the
 * cache's sample store when the stride allows), stage 2 scores the keys within {@code radius} of
 * each head's best sample, and the estimate plus {@code margin} becomes each head's fixed softmax
 * reference; then one pass over every tile with that reference, where a tile whose max beats it by
 * more than {@code guard} rescales (a guard firing). Float32-exact on every input; the report's
 * miss is each head's true max minus its estimate.
 */
public final class SampledStrategy implements ModeStrategy<ModeConfig.Sampled> {

  private final float[] trueMax; // (numHeads): the true max of each head
  private final float[] estimate; // (numHeads): the estimate before the margin
  private final int[] argmax; // (numHeads): key of the best sample

  public SampledStrategy(int numHeads) {
    this.trueMax = new float[numHeads];
    this.estimate = new float[numHeads];
    this.argmax = new int[numHeads];
  }

  @Override
  public void run(ModeConfig.Sampled cfg, Tiles tiles, int kh, int from, int to) {
    int g = tiles.group();
    int h0 = kh * g;
    int keys = tiles.keys();
    tiles.resetGroup(kh);
    if (keys == 0) {
      return;
    }
    estimateBySamples(tiles, kh, cfg.delta());
    refine(tiles, kh, cfg.radius());
    for (int i = 0; i < g; i++) {
      tiles.setReference(h0 + i, estimate[h0 + i] + cfg.margin());
      trueMax[h0 + i] = Float.NEGATIVE_INFINITY;
    }
    for (int t = from; t < to; t++) {
      int count = tiles.score(kh, t);
      tiles.absorbWithReference(kh, t, count, cfg.guard(), trueMax);
    }
    for (int i = 0; i < g; i++) {
      tiles.reportMiss(h0 + i, trueMax[h0 + i] - estimate[h0 + i]);
    }
  }

  /**
   * Stage 1: score every delta-th key; estimate[h] = best sample, argmax[h] = its key. Uses the
   * worker's own scratch: the pass's weight buffer may be a pipeline slot still being read.
   */
  private void estimateBySamples(Tiles tiles, int kh, int delta) {
    TileKernels kernels = tiles.kernels();
    KvCacheLayout layout = tiles.layout();
    int g = tiles.group();
    int d = layout.headDim();
    int tileTokens = layout.tileTokens();
    float[] own = tiles.ownScores();
    float[] qs = tiles.queries();
    int h0 = kh * g;
    Arrays.fill(estimate, h0, h0 + g, Float.NEGATIVE_INFINITY);
    int keys = tiles.keys();
    if (delta % KvCache.SAMPLE_STRIDE == 0) {
      // the store holds every 8th key in two phases (keys = 0 and = 8 mod 16) of 32-sample K
      // blocks: score whole blocks with the tile kernel (no horizontal sums) and keep store samples
      // i with i % step == 0; an even step never needs phase 1 (half the bytes at delta = 16)
      int step = delta / KvCache.SAMPLE_STRIDE;
      int stored = (keys + KvCache.SAMPLE_STRIDE - 1) / KvCache.SAMPLE_STRIDE; // samples below keys
      int phases = step % KvCache.SAMPLE_PHASES == 0 ? 1 : KvCache.SAMPLE_PHASES;
      int blockSize = TileLayout.KEY_BLOCK;
      for (int phase = 0; phase < phases; phase++) {
        int inPhase = (stored - phase + KvCache.SAMPLE_PHASES - 1) / KvCache.SAMPLE_PHASES;
        for (int b = 0; b * blockSize < inPhase; b++) {
          int count = Math.min(blockSize, inPhase - b * blockSize);
          kernels.scores(qs, h0 * d, g, d, tiles.sampleSegment(), tiles.sampleBlockOffset(kh, phase, b),
              Encodings.of(layout.dtype()), count, own, tileTokens);
          tiles.countSampleBytes((long) count * layout.rowBytes());
          tiles.countFmas((long) count * g * d);
          for (int j = 0; j < count; j++) {
            int sample = (b * blockSize + j) * KvCache.SAMPLE_PHASES + phase;
            if (sample % step == 0) {
              takeSample(own, tileTokens, g, h0, j, sample * KvCache.SAMPLE_STRIDE);
            }
          }
        }
      }
    } else { // strides the sample store cannot serve: read the sampled keys from the cache
      for (int j = 0; j < keys; j += delta) {
        for (int i = 0; i < g; i++) {
          float dot = 0f;
          for (int c = 0; c < d; c++) {
            dot = Math.fma(qs[(h0 + i) * d + c], tiles.key(kh, j, c), dot);
          }
          own[i * tileTokens] = dot;
        }
        takeSample(own, tileTokens, g, h0, 0, j);
        tiles.countSampleBytes(layout.rowBytes());
        tiles.countFmas((long) g * d);
      }
    }
  }

  /**
   * Folds the score of column j of {@code own} (key {@code key}) into each head's estimate; ties go
   * to the lower key, whatever order the samples come in.
   */
  private void takeSample(float[] own, int tileTokens, int g, int h0, int j, int key) {
    for (int i = 0; i < g; i++) {
      float x = own[i * tileTokens + j];
      if (x > estimate[h0 + i] || (x == estimate[h0 + i] && key < argmax[h0 + i])) {
        estimate[h0 + i] = x;
        argmax[h0 + i] = key;
      }
    }
  }

  /**
   * Stage 2: exact scores within +-radius of each head's best sample raise its estimate. Each tile
   * that any head's window touches is scored once for the whole group (a tile's scores cover every
   * head), so overlapping windows do not read a tile twice.
   */
  private void refine(Tiles tiles, int kh, int radius) {
    int g = tiles.group();
    int tileTokens = tiles.layout().tileTokens();
    int h0 = kh * g;
    int first = Integer.MAX_VALUE, last = -1;
    for (int i = 0; i < g; i++) {
      first = Math.min(first, Math.max(0, argmax[h0 + i] - radius) / tileTokens);
      last = Math.max(last, Math.min(tiles.keys() - 1, argmax[h0 + i] + radius) / tileTokens);
    }
    for (int t = first; t <= last; t++) {
      int tileLo = t * tileTokens, tileHi = tileLo + tileTokens - 1;
      boolean touched = false;
      for (int i = 0; i < g && !touched; i++) {
        touched = argmax[h0 + i] - radius <= tileHi && argmax[h0 + i] + radius >= tileLo;
      }
      if (!touched) {
        continue; // between two heads' windows
      }
      int count = tiles.score(kh, t);
      float[] s = tiles.weights();
      for (int i = 0; i < g; i++) {
        int from = Math.max(argmax[h0 + i] - radius - tileLo, 0);
        int to = Math.min(argmax[h0 + i] + radius - tileLo + 1, count);
        for (int j = from; j < to; j++) {
          estimate[h0 + i] = Math.max(estimate[h0 + i], s[i * tileTokens + j]);
        }
      }
    }
  }
}
