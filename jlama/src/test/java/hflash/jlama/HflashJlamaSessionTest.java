package hflash.jlama;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.github.tjake.jlama.model.AbstractModel;
import com.github.tjake.jlama.model.ModelSupport;
import com.github.tjake.jlama.model.functions.Generator;
import com.github.tjake.jlama.safetensors.DType;
import com.github.tjake.jlama.safetensors.prompt.PromptContext;
import com.github.tjake.jlama.tensor.AbstractTensor;
import com.github.tjake.jlama.tensor.KvBufferCache;
import hflash.memory.PagePool;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Sessions on one random llama (GQA, 2 layers): rewinds, interleaving, generate(), release, limits. */
class HflashJlamaSessionTest {

  static final RandomModel SPEC = new RandomModel("llama", 128, 4, 2, 2, 96, 300, 1024, 3f, 21);

  @TempDir static Path dir;
  static Path modelDir;
  static AbstractModel stock;
  static AbstractModel ours;

  @BeforeAll
  static void load() throws Exception {
    modelDir = SPEC.write(dir.resolve("llama"));
    stock = ModelSupport.loadModel(modelDir.toFile(), DType.F32, DType.I8);
    // room for every session the tests below leave open (pages of 512 positions)
    ours = HflashJlama.loadModel(modelDir, HflashJlama.Options.defaults().threads(2).poolCapacity(8 * 1024));
  }

  @AfterAll
  static void close() {
    if (stock != null) {
      stock.close();
    }
    if (ours != null) {
      ours.close();
    }
  }

  private static KvBufferCache.KvBuffer stockBuffer() {
    return new KvBufferCache(stock).getKvBuffer(UUID.randomUUID());
  }

  @Test
  void rewoundSessionMatchesStock() {
    int[] first = Runs.prompt(300, SPEC.vocab(), 31);
    int[] second = Runs.prompt(40, SPEC.vocab(), 32);
    second[0] = 7; // a continuation, not a new BOS
    KvBufferCache.KvBuffer s = stockBuffer();
    UUID id = UUID.randomUUID();
    KvBufferCache.KvBuffer o = HflashJlama.kvBuffer(ours, id);
    Runs.greedy(stock, s, first, 0, 16);
    Runs.greedy(ours, o, first, 0, 16);
    assertEquals(315, HflashJlama.sessionLength(ours, id));
    // back to position 200: Jlama overwrites its buffer from there, the adapter truncates its cache
    Runs.Greedy a = Runs.greedy(stock, s, second, 200, 32);
    Runs.Greedy b = Runs.greedy(ours, o, second, 200, 32);
    assertArrayEquals(a.tokens(), b.tokens());
    assertTrue(Runs.relative(b.lastLogits(), a.lastLogits()) <= 1e-4);
    assertEquals(200 + 40 + 31, HflashJlama.sessionLength(ours, id));
    HflashJlama.release(ours, id);
  }

  @Test
  void interleavedSessionsMatchStock() {
    int[] pa = Runs.prompt(120, SPEC.vocab(), 41);
    int[] pb = Runs.prompt(77, SPEC.vocab(), 42);
    Runs.Greedy sa = Runs.greedy(stock, stockBuffer(), pa, 0, 24);
    Runs.Greedy sb = Runs.greedy(stock, stockBuffer(), pb, 0, 24);
    UUID ia = UUID.randomUUID();
    UUID ib = UUID.randomUUID();
    KvBufferCache.KvBuffer a = HflashJlama.kvBuffer(ours, ia);
    KvBufferCache.KvBuffer b = HflashJlama.kvBuffer(ours, ib);
    int vocab = SPEC.vocab();
    int[] ta = new int[24];
    int[] tb = new int[24];
    try (AbstractTensor l = ours.makeDenseTensor(vocab)) {
      ta[0] = first(ours.batchForward(pa, 0, a), l);
      tb[0] = first(ours.batchForward(pb, 0, b), l);
      for (int i = 1; i < 24; i++) { // one token of a, one of b, in turn
        ta[i] = step(ours.forward(ta[i - 1], pa.length + i - 1, a, Optional.empty()), l);
        tb[i] = step(ours.forward(tb[i - 1], pb.length + i - 1, b, Optional.empty()), l);
      }
    }
    assertArrayEquals(sa.tokens(), ta);
    assertArrayEquals(sb.tokens(), tb);
    HflashJlama.release(ours, ia);
    HflashJlama.release(ours, ib);
  }

  @Test
  void sessionsTakePagesAsTheyGrowAndGiveThemBack() {
    // one layer's worth of a session: every layer's K and V of 512 positions per page
    try (AbstractModel m = HflashJlama.loadModel(modelDir, HflashJlama.Options.defaults().threads(1).poolCapacity(1024))) {
      assertTrue(HflashJlama.poolStats(m).isEmpty(), "no pool before the first forward");
      UUID a = UUID.randomUUID();
      UUID b = UUID.randomUUID();
      KvBufferCache.KvBuffer ka = HflashJlama.kvBuffer(m, a);
      KvBufferCache.KvBuffer kb = HflashJlama.kvBuffer(m, b);
      m.batchForward(Runs.prompt(520, SPEC.vocab(), 61), 0, ka).close();
      PagePool.Stats st = HflashJlama.poolStats(m).orElseThrow();
      assertEquals(2, st.pagesTotal());
      assertEquals(2, st.pagesUsed(), "520 positions take 2 pages: " + st);
      // a full pool: the error names the pages needed and free, and the option that sizes the pool
      IllegalStateException full = assertThrows(IllegalStateException.class,
          () -> m.batchForward(Runs.prompt(10, SPEC.vocab(), 62), 0, kb));
      assertTrue(full.getMessage().startsWith("the sessions' page pool is full: 10 positions at 0 (layer=0) need 1 pages, 0 free of 2")
          && full.getMessage().contains("HflashJlama.Options.poolCapacity"), full.getMessage());
      assertEquals(0, HflashJlama.sessionLength(m, b));
      assertEquals(520, HflashJlama.sessionLength(m, a), "a full pool changes no session");
      // a rewind truncates: back to position 100, the second page goes back to the pool
      int[] more = Runs.prompt(10, SPEC.vocab(), 63);
      more[0] = 9;
      m.batchForward(more, 100, ka).close();
      assertEquals(110, HflashJlama.sessionLength(m, a));
      assertEquals(1, HflashJlama.poolStats(m).orElseThrow().pagesUsed());
      m.batchForward(Runs.prompt(10, SPEC.vocab(), 62), 0, kb).close();
      assertEquals(new PagePool.Stats(2, 2, 0, 0, st.bytes(), HflashJlama.poolStats(m).orElseThrow().bytesUsed(), 2),
          HflashJlama.poolStats(m).orElseThrow());
      HflashJlama.release(m, a);
      assertEquals(1, HflashJlama.poolStats(m).orElseThrow().pagesUsed(), "release gives the session's pages back");
      assertEquals(10, HflashJlama.sessionLength(m, b));
      HflashJlama.release(m, b);
      PagePool.Stats empty = HflashJlama.poolStats(m).orElseThrow();
      assertEquals(0, empty.pagesUsed());
      assertEquals(0, empty.sequences());
      m.close();
      assertTrue(HflashJlama.poolStats(m).isEmpty(), "closing the model frees the pool");
    }
  }

  private static int first(AbstractTensor last, AbstractTensor logits) {
    int t = ours.sample(last.slice(last.shape().first() - 1), 0f, 0f, logits);
    last.close();
    return t;
  }

  private static int step(AbstractTensor out, AbstractTensor logits) {
    int t = ours.sample(out, 0f, 0f, logits);
    out.close();
    return t;
  }

  @Test
  void generateOnASessionMatchesStockTwice() {
    String text = "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.";
    UUID s = UUID.randomUUID();
    UUID o = UUID.randomUUID();
    for (int round = 0; round < 2; round++) { // the second call continues (Jlama rewinds to its counter)
      Generator.Response a = stock.generate(s, PromptContext.of(text), 0f, 140, (x, f) -> {});
      Generator.Response b = ours.generate(o, PromptContext.of(text), 0f, 140, (x, f) -> {});
      assertEquals(a.responseText, b.responseText, "round " + round);
      assertEquals(a.generatedTokens, b.generatedTokens, "round " + round);
    }
    assertTrue(HflashJlama.sessionLength(ours, o) > 0);
    HflashJlama.release(ours, o);
    assertEquals(0, HflashJlama.sessionLength(ours, o));
  }

  @Test
  void releaseAndCloseFreeSessions() throws Exception {
    try (AbstractModel m = HflashJlama.loadModel(modelDir, HflashJlama.Options.defaults().threads(1))) {
      UUID a = UUID.randomUUID();
      UUID b = UUID.randomUUID();
      Runs.greedy(m, HflashJlama.kvBuffer(m, a), Runs.prompt(50, SPEC.vocab(), 1), 0, 2);
      Runs.greedy(m, HflashJlama.kvBuffer(m, b), Runs.prompt(50, SPEC.vocab(), 2), 0, 2);
      assertEquals(2, HflashJlama.openSessions(m));
      HflashJlama.release(m, a);
      HflashJlama.release(m, a); // idempotent
      assertEquals(1, HflashJlama.openSessions(m));
      assertEquals(0, HflashJlama.sessionLength(m, a));
      assertEquals(51, HflashJlama.sessionLength(m, b));
      m.close();
      assertEquals(0, HflashJlama.openSessions(m));
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> HflashJlama.kvBuffer(m, b));
      assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }
  }

  @Test
  void capacityAndGapsAreRefusedWithTheLimitNamed() {
    try (AbstractModel m = HflashJlama.loadModel(modelDir, HflashJlama.Options.defaults().threads(1).capacity(310))) {
      assertEquals(310, HflashJlama.options(m).capacity());
      KvBufferCache.KvBuffer kv = HflashJlama.kvBuffer(m, UUID.randomUUID());
      IllegalStateException full = assertThrows(IllegalStateException.class,
          () -> Runs.greedy(m, kv, Runs.prompt(300, SPEC.vocab(), 3), 0, 20));
      assertTrue(full.getMessage().contains("capacity of 310"), full.getMessage());
      KvBufferCache.KvBuffer fresh = HflashJlama.kvBuffer(m, UUID.randomUUID());
      IllegalArgumentException gap = assertThrows(IllegalArgumentException.class,
          () -> m.batchForward(Runs.prompt(10, SPEC.vocab(), 4), 50, fresh));
      assertTrue(gap.getMessage().contains("past the session's length: 50 > 0"), gap.getMessage());
    }
    assertEquals(1024, HflashJlama.options(ours).capacity(), "default: the context length, under 32768");
    assertEquals(512, HflashJlama.options(ours).pageTokens(), "default: the smallest page that keeps the key samples");
    IllegalArgumentException page = assertThrows(IllegalArgumentException.class,
        () -> HflashJlama.loadModel(modelDir, HflashJlama.Options.defaults().pageTokens(100)));
    assertEquals("pageTokens must be a multiple of tileTokens 128: 100", page.getMessage());
  }

  @Test
  void otherModelTypesAreRefusedByName() throws Exception {
    for (String type : new String[] {"gemma2", "bert", "mixtral", "gpt2"}) {
      Path d = dir.resolve("refuse-" + type);
      Files.createDirectories(d);
      Files.copy(modelDir.resolve("tokenizer.json"), d.resolve("tokenizer.json"));
      Files.writeString(d.resolve("config.json"), Files.readString(modelDir.resolve("config.json"))
          .replace("\"model_type\": \"llama\"", "\"model_type\": \"" + type + "\""));
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> HflashJlama.loadModel(d, HflashJlama.Options.defaults()));
      assertTrue(e.getMessage().contains("'" + type + "'") && e.getMessage().contains("llama, mistral, qwen2"), e.getMessage());
    }
    assertThrows(IllegalArgumentException.class, () -> HflashJlama.loadModel(dir.resolve("missing"), HflashJlama.Options.defaults()));
    assertThrows(IllegalArgumentException.class, () -> HflashJlama.Options.defaults().kvDtype("f8"));
  }
}
