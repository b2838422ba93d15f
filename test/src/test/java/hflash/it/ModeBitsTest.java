package hflash.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import hflash.engine.AttentionConfig;
import hflash.engine.AttentionReport;
import hflash.engine.AttentionState;
import hflash.engine.DecodeAttention;
import hflash.engine.Scheduler;
import hflash.memory.DType;
import hflash.memory.HadamardRotation;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import hflash.io.Safetensors;
import hflash.tiles.TileKernels;
import hflash.tiles.TileKernelsProvider;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Before/after bits check of the engine: every mode (exact, exact with sinks + window, sampled on
 * and off the sample store, certified by epsilon and by output-error target, budgeted by tiles,
 * share and bytes, estimated, the certified oracle, the unnormalised state and the prefill), every
 * scheduler and thread count, and every cache dtype, plain and rotated, on the embedded trace
 * ({@code data/stories260K-seq0-256.safetensors}) and on a small seeded W1-shaped workload (32 query
 * heads, 8 KV heads, d = 128). Each case hashes the output float bits, the per-head bounds and the
 * counters that define the work (keys scored, tiles, bytes, rescales, guard firings, FMAs) and is
 * compared with {@code mode-bits.golden}, taken from the engine before its restructuring: a
 * refactor of the engine must reproduce these bits exactly.
 *
 * <p>The bits depend on the kernels (scalar, vector width, register shape), so the golden file is
 * keyed by the kernel name plus a hash of a small kernel probe. Where no golden exists for this
 * machine's kernels the test is skipped with a message; the actual hashes are always written to
 * {@code target/mode-bits-<kernels>.actual}, which is how the golden lines were produced (run the test on
 * the reference commit and append that file's lines).
 */
class ModeBitsTest {

  private static final String GOLDEN = "/hflash/it/mode-bits.golden";

  /** The approximate and exact configurations, by a stable case name. */
  static Map<String, AttentionConfig> modes() {
    Map<String, AttentionConfig> m = new LinkedHashMap<>();
    m.put("exact", AttentionConfig.exact());
    m.put("streaming-4-96", AttentionConfig.streaming(4, 96));
    m.put("sampled", AttentionConfig.sampled());
    m.put("sampled-12-20-1", AttentionConfig.sampled(12, 20, 1f));
    m.put("certified-1e-3", AttentionConfig.certified(1e-3));
    m.put("certified-0.3", AttentionConfig.certified(0.3));
    m.put("certified-maxerror-1e-2", AttentionConfig.certifiedMaxError(1e-2));
    m.put("budgeted-tiles-6", AttentionConfig.budgetedTiles(6));
    m.put("budgeted-share-0.2", AttentionConfig.budgetedShare(0.2));
    m.put("budgeted-bytes-200000", AttentionConfig.budgetedBytes(200_000));
    m.put("estimated-0.05", AttentionConfig.estimated(0.05));
    m.put("estimated-0.02-0.9-7", AttentionConfig.estimated(0.02, 0.9, 7));
    return m;
  }

  /** Scheduler and thread count. */
  record Sched(Scheduler scheduler, int threads) {
    String id() {
      return scheduler.id() + threads;
    }
  }

  static final List<Sched> SCHEDULERS = List.of(new Sched(Scheduler.SERIAL, 1),
      new Sched(Scheduler.SPLITK, 2), new Sched(Scheduler.SPLITK, 3), new Sched(Scheduler.PIPELINE, 2),
      new Sched(Scheduler.PIPELINE, 4));

  @Test
  void everyModeSchedulerAndDtypeReturnsTheGoldenBits() throws IOException {
    // the golden bits are the Java kernels': the native decode kernel (when loaded) rounds differently
    // and is held to float64 and the scalar twin by NativeDecodeTilesTest and NativeEngineTest instead
    TileKernels kernels = TileKernelsProvider.javaOnly();
    assertEquals(null, kernels.nativeVariant(), "the Java kernels");
    String key = kernels.name() + "/" + Long.toHexString(probe(kernels));
    Map<String, String> actual = new LinkedHashMap<>();
    trace(kernels, actual);
    w1(kernels, actual);
    Path out = Path.of("target", "mode-bits-" + kernels.name() + ".actual");
    Files.createDirectories(out.getParent());
    StringBuilder lines = new StringBuilder();
    actual.forEach((c, h) -> lines.append(key).append('\t').append(c).append('\t').append(h).append('\n'));
    Files.writeString(out, lines.toString(), StandardCharsets.UTF_8);

    Map<String, String> golden = golden(key);
    assumeTrue(!golden.isEmpty(), "no golden bits for kernels " + key + " in " + GOLDEN
        + " (the actual hashes are in " + out.toAbsolutePath() + ")");
    List<String> differ = new ArrayList<>();
    for (var e : actual.entrySet()) {
      String want = golden.get(e.getKey());
      if (want == null || !want.equals(e.getValue())) {
        differ.add(e.getKey() + " want " + want + " got " + e.getValue());
      }
    }
    for (String c : golden.keySet()) {
      if (!actual.containsKey(c)) {
        differ.add(c + " missing from this run");
      }
    }
    assertTrue(differ.isEmpty(), differ.size() + " of " + actual.size() + " cases differ from the golden bits ("
        + key + "):\n" + String.join("\n", differ.subList(0, Math.min(40, differ.size()))));
    assertEquals(golden.size(), actual.size());
  }

  /** The embedded trace: every layer's full context and a short one, every dtype that fits d = 8. */
  private static void trace(TileKernels kernels, Map<String, String> actual) {
    Path file = embeddedTrace();
    try (Safetensors st = Safetensors.open(file)) {
      var q = st.tensor("q");
      var k = st.tensor("k");
      int layers = (int) q.shape()[0], heads = (int) q.shape()[1], n = (int) q.shape()[2];
      int d = (int) q.shape()[3], kvHeads = (int) k.shape()[1];
      float[] qa = q.toFloatArray(), ka = k.toFloatArray(), va = st.tensor("v").toFloatArray();
      float scale = Float.parseFloat(st.metadata().get("scale"));
      for (DType dtype : DType.values()) {
        if (dtype.quantized() && d % 32 != 0) {
          continue; // block dtypes need whole 32-channel blocks
        }
        for (boolean rotated : new boolean[] {false, true}) {
          KvCacheLayout layout = new KvCacheLayout(layers, kvHeads, d, n, dtype, 32);
          try (KvCache cache = rotated ? KvCache.allocate(layout, HadamardRotation.of(d, 11))
              : KvCache.allocate(layout)) {
            float[] kr = new float[n * kvHeads * d], vr = new float[n * kvHeads * d];
            for (int layer = 0; layer < layers; layer++) {
              for (int t = 0; t < n; t++) {
                for (int kh = 0; kh < kvHeads; kh++) {
                  System.arraycopy(ka, ((layer * kvHeads + kh) * n + t) * d, kr, (t * kvHeads + kh) * d, d);
                  System.arraycopy(va, ((layer * kvHeads + kh) * n + t) * d, vr, (t * kvHeads + kh) * d, d);
                }
              }
              cache.append(layer, n, kr, vr);
            }
            String base = "trace/" + dtype.id() + (rotated ? "/rot" : "");
            for (Sched s : SCHEDULERS) {
              try (DecodeAttention att = DecodeAttention.create(cache, heads, s.threads, scale, kernels, s.scheduler)) {
                for (var mode : modes().entrySet()) {
                  Hash h = new Hash();
                  for (int layer = 0; layer < layers; layer++) {
                    for (int keys : new int[] {n, 100}) {
                      float[] qRow = new float[heads * d];
                      for (int hh = 0; hh < heads; hh++) {
                        System.arraycopy(qa, ((layer * heads + hh) * n + keys - 1) * d, qRow, hh * d, d);
                      }
                      decodeInto(att, h, layer, qRow, keys, mode.getValue());
                    }
                  }
                  actual.put(base + "/" + s.id() + "/" + mode.getKey(), h.hex());
                }
                extras(att, actual, base + "/" + s.id(), qa, heads, n, d, 2);
              }
            }
          }
        }
      }
    }
  }

  /** A W1-shaped head layout on seeded Gaussian data: 32 heads, 8 KV heads, d = 128, 3000 keys. */
  private static void w1(TileKernels kernels, Map<String, String> actual) {
    int heads = 32, kvHeads = 8, d = 128, n = 3000;
    Random r = new Random(20);
    float[] k = new float[n * kvHeads * d], v = new float[n * kvHeads * d];
    for (int i = 0; i < k.length; i++) {
      k[i] = (float) r.nextGaussian();
      v[i] = (float) r.nextGaussian();
    }
    // a few strong keys per KV head, so the bounded modes have regions worth opening
    for (int kh = 0; kh < kvHeads; kh++) {
      for (int j = 0; j < 6; j++) {
        int pos = r.nextInt(n);
        for (int c = 0; c < d; c++) {
          k[(pos * kvHeads + kh) * d + c] *= 3f;
        }
      }
    }
    float[] q = new float[heads * d];
    for (int i = 0; i < q.length; i++) {
      q[i] = (float) (r.nextGaussian() * 2.5);
    }
    // the scalar kernels run about ten times slower: there the W1 part keeps one 16-bit dtype plain
    // and one block dtype rotated (the engine's logic is what this test holds; the kernels have their
    // own tests), which keeps the suite under its 10 minutes
    boolean scalar = kernels.name().equals("scalar");
    for (DType dtype : DType.values()) {
      if (scalar && dtype != DType.F16 && dtype != DType.Q8_0) {
        continue;
      }
      for (boolean rotated : new boolean[] {false, true}) {
        if (scalar && rotated != (dtype == DType.Q8_0)) {
          continue;
        }
        KvCacheLayout layout = new KvCacheLayout(1, kvHeads, d, n, dtype, 64);
        try (KvCache cache = rotated ? KvCache.allocate(layout, HadamardRotation.of(d, 13))
            : KvCache.allocate(layout)) {
          cache.append(0, n, k, v);
          String base = "w1/" + dtype.id() + (rotated ? "/rot" : "");
          for (Sched s : SCHEDULERS) {
            try (DecodeAttention att = DecodeAttention.create(cache, heads, s.threads,
                (float) (1 / Math.sqrt(d)), kernels, s.scheduler)) {
              for (var mode : modes().entrySet()) {
                Hash h = new Hash();
                for (int keys : new int[] {n, 1100}) {
                  decodeInto(att, h, 0, q, keys, mode.getValue());
                }
                actual.put(base + "/" + s.id() + "/" + mode.getKey(), h.hex());
              }
              float[] qs = new float[40 * heads * d];
              for (int i = 0; i < qs.length; i++) {
                qs[i] = q[i % q.length] * (1 + (i / q.length) * 0.01f);
              }
              extras(att, actual, base + "/" + s.id(), qs, heads, n, d, 1);
            }
          }
        }
      }
    }
  }

  /** The oracle, the unnormalised state and prefill (exact tiled, and one row-path mode). */
  private static void extras(DecodeAttention att, Map<String, String> actual, String base, float[] qa,
      int heads, int length, int d, int layers) {
    int row = heads * d;
    for (int layer = 0; layer < layers; layer++) {
      // the oracle and the state read query row 0 of the trace layout (trace: head-major; w1: row-major)
      float[] q = new float[row];
      System.arraycopy(qa, 0, q, 0, row);
      Hash h = new Hash();
      h.add(att.oracleTiles(layer, q, length, 1e-3));
      h.add(att.report(), att.numHeads());
      actual.merge(base + "/oracle-1e-3", h.hex(), (a, b) -> a + "+" + b);
      AttentionState st = new AttentionState(heads, d);
      Hash hs = new Hash();
      att.decodeState(layer, q, length, AttentionConfig.exact(), st);
      float[] packed = new float[st.packedFloats()];
      st.writeTo(packed, 0);
      hs.add(packed);
      att.decodeState(layer, q, length, AttentionConfig.certified(1e-3), st);
      st.writeTo(packed, 0);
      hs.add(packed);
      actual.merge(base + "/state", hs.hex(), (a, b) -> a + "+" + b);
    }
    int count = Math.min(24, length);
    int first = length - count;
    float[] qb = new float[count * row];
    for (int i = 0; i < qb.length; i++) {
      qb[i] = qa[(i + 7 * row) % qa.length];
    }
    float[] out = new float[count * row];
    Hash hp = new Hash();
    att.prefill(0, qb, out, first, count, AttentionConfig.exact());
    hp.add(out);
    hp.add(att.report(), att.numHeads());
    att.prefill(0, qb, out, first, count, AttentionConfig.certified(1e-2));
    hp.add(out);
    hp.add(att.report(), att.numHeads());
    actual.put(base + "/prefill", hp.hex());
  }

  private static void decodeInto(DecodeAttention att, Hash h, int layer, float[] q, int keys,
      AttentionConfig config) {
    float[] out = new float[q.length];
    att.decode(layer, q, out, keys, config);
    h.add(out);
    h.add(att.report(), att.numHeads());
  }

  /** Hash of a small fixed kernel run: tells kernel configurations with different bits apart. */
  private static long probe(TileKernels kernels) {
    int g = 4, d = 128, tokens = 64;
    Random r = new Random(1);
    float[] q = new float[g * d];
    for (int i = 0; i < q.length; i++) {
      q[i] = (float) r.nextGaussian();
    }
    Hash h = new Hash();
    for (DType dtype : DType.values()) {
      KvCacheLayout layout = new KvCacheLayout(1, 1, d, tokens, dtype, tokens);
      try (KvCache cache = KvCache.allocate(layout)) {
        float[] k = new float[tokens * d];
        for (int i = 0; i < k.length; i++) {
          k[i] = (float) r.nextGaussian();
        }
        cache.append(0, tokens, k, k);
        float[] s = new float[g * tokens];
        kernels.scores(q, 0, g, d, cache.keys(), layout.tileOffset(0, 0, 0), hflash.tiles.TileEncoding.of(dtype.id()), tokens, s, tokens);
        h.add(s);
        float[] acc = new float[g * d];
        kernels.accumulate(s, tokens, g, d, cache.values(), layout.tileOffset(0, 0, 0), hflash.tiles.TileEncoding.of(dtype.id()), tokens,
            tokens, acc, 0);
        h.add(acc);
      }
    }
    return h.value;
  }

  private static Map<String, String> golden(String key) throws IOException {
    Map<String, String> m = new LinkedHashMap<>();
    try (InputStream in = ModeBitsTest.class.getResourceAsStream(GOLDEN)) {
      if (in == null) {
        return m;
      }
      for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
        String[] f = line.split("\t");
        if (f.length == 3 && f[0].equals(key)) {
          m.put(f[1], f[2]);
        }
      }
    }
    return m;
  }

  private static Path embeddedTrace() {
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      Path p = dir.resolve("data/stories260K-seq0-256.safetensors");
      if (Files.isRegularFile(p)) {
        return p;
      }
    }
    throw new UncheckedIOException(new IOException("data/stories260K-seq0-256.safetensors not found above "
        + Path.of("").toAbsolutePath()));
  }

  /** FNV-1a over 64-bit words: floats by their raw bits, doubles by theirs. */
  static final class Hash {
    long value = 0xcbf29ce484222325L;

    void add(long x) {
      for (int i = 0; i < 8; i++) {
        value ^= (x >>> (8 * i)) & 0xff;
        value *= 0x100000001b3L;
      }
    }

    void add(float[] a) {
      for (float x : a) {
        add(Float.floatToRawIntBits(x));
      }
    }

    void add(AttentionReport r, int heads) {
      add(r.keysInContext());
      add(r.keysScored());
      add(r.tilesRead());
      add(r.kvBytesRead());
      add(r.summaryBytesRead());
      add(r.sampleBytesRead());
      add(r.rescales());
      add(r.guardFirings());
      add(r.fmas());
      for (int h = 0; h < heads; h++) {
        add(Double.doubleToRawLongBits(r.rho(h)));
        add(Double.doubleToRawLongBits(r.errorBound(h)));
        add(Double.doubleToRawLongBits(r.estimateMiss(h)));
      }
    }

    String hex() {
      return String.format("%016x", value);
    }
  }
}
