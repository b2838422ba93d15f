package hflash.dist;

import hflash.cli.CliRun;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A malformed llama2.c tokenizer given to {@code hflash generate}: exit 2 and one line naming the file. Here and
 * not in {@code cli}'s tests because the generate runtime (the examples module) is only on this module's path.
 */
class MalformedTokenizerTest {

  @TempDir static Path tmp;

  private static Path tinyModel() throws IOException {
    int dim = 8, hidden = 12, layers = 1, heads = 2, kv = 1, vocab = 300, seq = 4;
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
    return Files.write(tmp.resolve("tiny-model.bin"), b.array());
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
}
