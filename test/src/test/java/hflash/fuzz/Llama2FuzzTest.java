package hflash.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import hflash.examples.llama2.Llama2Checkpoint;
import hflash.examples.llama2.Tokenizer;
import hflash.examples.llama2.Transformer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;

/**
 * Fuzz targets of the llama2.c readers: the checkpoint (header and weights) and the tokenizer. A malformed file is one
 * IllegalArgumentException naming the file; a file that loads must then work: the checkpoint runs a decode step (a
 * non-finite weight may only surface as the engine's documented IllegalArgumentException), the tokenizer encodes and
 * decodes any text.
 */
class Llama2FuzzTest {

  /** Raw checkpoint bytes. */
  @FuzzTest(maxDuration = "10s")
  void checkpoint(byte[] bytes) throws IOException {
    loadAndStep(FuzzFiles.write("model.bin", bytes));
  }

  /**
   * A small header the fuzzer picks field by field (sign and magnitude of every field, vocab_size's sign
   * included) followed by as many weight bytes as the header implies give or take a few, so inputs get past the
   * size check to the weights and the decode step.
   */
  @FuzzTest(maxDuration = "10s")
  void checkpointStructured(FuzzedDataProvider data) throws IOException {
    int[] h = new int[7];
    for (int i = 0; i < 7; i++) {
      h[i] = data.consumeInt(0, 15) == 0 ? data.consumeInt() : data.consumeInt(1, 8);
    }
    if (data.consumeBoolean()) {
      h[5] = -h[5];
    }
    long d = Math.max(h[0], 1), hd = Math.max(h[1], 1), n = Math.max(h[2], 1), heads = Math.max(h[3], 1);
    long kvDim = Math.max(h[4], 1) * Math.max(d / heads, 1), vocab = Math.abs((long) h[5]);
    long floats = vocab * d * (h[5] < 0 ? 2 : 1) + n * (2 * d + 2 * d * d + 2 * kvDim * d + 3 * hd * d) + d
        + (long) Math.max(h[6], 1) * Math.max(d / heads, 1);
    long bytes = Math.min(floats * 4 + data.consumeInt(-8, 8), 1 << 20);
    ByteBuffer b = ByteBuffer.allocate((int) Math.max(28 + bytes, 28)).order(ByteOrder.LITTLE_ENDIAN);
    for (int x : h) {
      b.putInt(x);
    }
    boolean wild = data.consumeInt(0, 7) == 0;
    while (b.remaining() >= 4) {
      b.putFloat(wild ? data.consumeFloat() : data.consumeRegularFloat(-1f, 1f));
    }
    loadAndStep(FuzzFiles.write("model-structured.bin", b.array()));
  }

  /**
   * Raw tokenizer bytes, loaded with the token count a separate walk of the format finds (so that a well-formed
   * file gets past the count check), then encoding and decoding fuzzer text.
   */
  @FuzzTest(maxDuration = "10s")
  void tokenizer(FuzzedDataProvider data) throws IOException {
    String text = data.consumeString(64);
    boolean bos = data.consumeBoolean();
    byte[] bytes = data.consumeRemainingAsBytes();
    Path file = FuzzFiles.write("tokenizer.bin", bytes);
    int count = countTokens(bytes);
    Tokenizer t;
    try {
      t = Tokenizer.load(file, Math.max(count, 1));
    } catch (IllegalArgumentException e) {
      FuzzFiles.assertNamesFile(e, file);
      return;
    }
    if (t.vocabSize() != count) {
      throw new AssertionError("loaded " + t.vocabSize() + " tokens, the walk counts " + count);
    }
    int[] ids = t.encode(text, bos);
    for (int id : ids) {
      if (id < 0 || id >= t.vocabSize()) {
        throw new AssertionError("encode gave token " + id + " outside [0, " + t.vocabSize() + ")");
      }
    }
    t.decode(ids);
  }

  /** Tokens in a well-formed tokenizer file, or -1: int32 max_len, then (float32 score, int32 len, len bytes)*. */
  private static int countTokens(byte[] bytes) {
    ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    if (b.remaining() < 4) {
      return -1;
    }
    int maxLen = b.getInt();
    int count = 0;
    while (b.hasRemaining()) {
      if (b.remaining() < 8) {
        return -1;
      }
      b.getFloat();
      int len = b.getInt();
      if (len < 0 || len > maxLen || len > b.remaining()) {
        return -1;
      }
      b.position(b.position() + len);
      count++;
    }
    return count;
  }

  private static void loadAndStep(Path file) throws IOException {
    Llama2Checkpoint model;
    try {
      model = Llama2Checkpoint.load(file);
    } catch (IllegalArgumentException e) {
      FuzzFiles.assertNamesFile(e, file);
      return;
    }
    Llama2Checkpoint.Config c = model.config();
    if (!model.toString().contains(file.toString())) {
      throw new AssertionError("checkpoint does not name its file: " + model);
    }
    try (Transformer t = new Transformer(model, Math.min(c.seqLen(), 4), hflash.memory.DType.F32,
        hflash.engine.AttentionMode.EXACT, 1)) {
      float[] logits = t.forward(Math.min(1, c.vocabSize() - 1), 0);
      if (logits.length != c.vocabSize()) {
        throw new AssertionError("logits length " + logits.length + " != vocab " + c.vocabSize());
      }
    } catch (IllegalArgumentException e) {
      // the documented refusal of a non-finite query or key (weights that produce NaN or infinity)
      String m = String.valueOf(e.getMessage());
      if (!m.contains("finite") && !m.contains("NaN")) {
        throw e;
      }
    }
  }
}
