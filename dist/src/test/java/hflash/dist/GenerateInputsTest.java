package hflash.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hflash.cli.CliRun;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What {@code hflash generate} does with inputs it cannot serve: a malformed llama2.c tokenizer (exit 2 and one
 * line naming the file) and a model whose KV cache does not fit in memory (exit 1 and one line with the bytes
 * needed and available). Here and not in {@code cli}'s tests because the generate runtime (the examples module) is
 * only on this module's path.
 */
class GenerateInputsTest {

  @TempDir static Path tmp;

  private static Path tinyModel() throws IOException {
    return tinyModel(4);
  }

  /** A llama2.c checkpoint: dim 8, 1 layer, 2 heads sharing 1 KV head (head dim 4), 300 tokens, seq positions. */
  private static Path tinyModel(int seq) throws IOException {
    int dim = 8, hidden = 12, layers = 1, heads = 2, kv = 1, vocab = 300;
    int hd = dim / heads;
    long floats = (long) vocab * dim + layers * (2L * dim + 2L * dim * dim + 2L * kv * hd * dim + 3L * hidden * dim) + dim
        + (long) seq * hd;
    ByteBuffer b = ByteBuffer.allocate((int) (28 + 4 * floats)).order(ByteOrder.LITTLE_ENDIAN);
    for (int x : new int[] {dim, hidden, layers, heads, kv, vocab, seq}) {
      b.putInt(x);
    }
    for (long i = 0; i < floats; i++) {
      b.putFloat((float) Math.sin(i) * 0.1f);
    }
    return Files.write(tmp.resolve("tiny-model-" + seq + ".bin"), b.array());
  }

  @Test
  void malformedTokenizerExitsTwo() throws IOException {
    Path model = tinyModel();
    // a well-formed file of 300 one-byte tokens: the count matches, but there is no byte-fallback block of '<0xXX>'
    // pieces at 3..258 and no ' ' piece for encode
    ByteBuffer b = ByteBuffer.allocate(4 + 300 * 9).order(ByteOrder.LITTLE_ENDIAN).putInt(1);
    for (int i = 0; i < 300; i++) {
      b.putFloat(0).putInt(1).put((byte) ('a' + i % 26));
    }
    Path tok = Files.write(tmp.resolve("tok-no-space.bin"), b.array());
    CliRun r = CliRun.of("generate", "--model", model.toString(), "--tokenizer", tok.toString(), "--steps", "2");
    r.assertUsageError("hflash generate: ", "tok-no-space.bin");
    Path cut = Files.write(tmp.resolve("tok-cut.bin"), java.util.Arrays.copyOf(b.array(), 100));
    CliRun.of("generate", "--model", model.toString(), "--tokenizer", cut.toString(), "--steps", "2")
        .assertUsageError("hflash generate: ", "truncated after");
  }

  @Test
  void cacheLargerThanMemoryExitsOneWithTheBytes() throws IOException {
    // 65536 positions x 1 layer x 1 KV head x head dim 4 x f32, K and V: 2 MiB; the machine is told it has 1 MiB
    // (the property Resources reads), so nothing near the cache's size is ever allocated
    Path model = tinyModel(65536);
    Path tok = Files.write(tmp.resolve("tok-unread.bin"), new byte[] {1, 2, 3, 4}); // refused before it is read
    String key = "hflash.availableBytes";
    String before = System.getProperty(key);
    System.setProperty(key, String.valueOf(1L << 20));
    CliRun r;
    try {
      r = CliRun.of("generate", "--model", model.toString(), "--tokenizer", tok.toString(), "--steps", "2");
    } finally {
      if (before == null) {
        System.clearProperty(key);
      } else {
        System.setProperty(key, before);
      }
    }
    assertEquals(1, r.code(), r::toString);
    assertEquals(1, r.errLines().length, r::toString);
    assertTrue(r.err().startsWith("hflash generate: the KV cache does not fit in memory: needs "
        + (2L * 65536 * 4 * 4) + " bytes"), r::toString);
    assertTrue(r.err().contains((1L << 20) + " bytes (1.0 MiB) available"), r::toString);
    assertEquals("", r.out(), r::toString);
  }
}
