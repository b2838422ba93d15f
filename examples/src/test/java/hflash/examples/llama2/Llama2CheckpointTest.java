package hflash.examples.llama2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class Llama2CheckpointTest {

  private static final String STORIES_HEADER =
      "dim=64 hidden_dim=172 n_layers=5 n_heads=8 n_kv_heads=4 vocab_size=512 seq_len=512";

  @TempDir Path tmp;

  @Test
  void loadsStories260K() throws IOException {
    Llama2Checkpoint m = Llama2Checkpoint.load(SharedData.model());
    assertEquals(new Llama2Checkpoint.Config(64, 172, 5, 8, 4, 512, 512, true), m.config());
    assertEquals(8, m.config().headDim());
    assertEquals(32, m.config().kvDim());
    assertSame(m.tokenEmbedding, m.wcls, "positive vocab_size shares the classifier");
    assertEquals(64 * 172, m.w1[4].length);
    assertEquals(Files.size(SharedData.model()), Llama2Checkpoint.expectedBytes(m.config()));
  }

  @Test
  void rejectsTruncatedFile() throws IOException {
    byte[] bytes = Files.readAllBytes(SharedData.model());
    Path file = write("truncated.bin", Arrays.copyOf(bytes, bytes.length - 4));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Llama2Checkpoint.load(file));
    assertEquals("invalid llama2.c checkpoint " + file + ": truncated: file size differs from what the header"
        + " implies: 1056536!=1056540 bytes (" + STORIES_HEADER + ")", e.getMessage());
  }

  @Test
  void rejectsTrailingBytes() throws IOException {
    byte[] bytes = Files.readAllBytes(SharedData.model());
    Path file = write("long.bin", Arrays.copyOf(bytes, bytes.length + 1));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Llama2Checkpoint.load(file));
    assertEquals("invalid llama2.c checkpoint " + file + ": corrupt: file size differs from what the header"
        + " implies: 1056541!=1056540 bytes (" + STORIES_HEADER + ")", e.getMessage());
  }

  @Test
  void rejectsFileShorterThanHeader() throws IOException {
    Path file = write("tiny.bin", new byte[10]);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Llama2Checkpoint.load(file));
    assertEquals("invalid llama2.c checkpoint " + file + ": file shorter than the 28-byte header: 10 bytes",
        e.getMessage());
  }

  @Test
  void rejectsNonPositiveDims() throws IOException {
    assertEquals("corrupt header: dim must be positive: 0", headerProblem(0, 0));
    assertEquals("corrupt header: n_layers must be positive: -5", headerProblem(2, -5));
    assertEquals("corrupt header: vocab_size must be positive: 0", headerProblem(5, 0));
    assertEquals("corrupt header: seq_len must be positive: 0", headerProblem(6, 0));
  }

  @Test
  void rejectsHeadsNotMultipleOfKvHeads() throws IOException {
    assertEquals("corrupt header: n_heads must be a multiple of n_kv_heads: 8 % 3 != 0", headerProblem(4, 3));
  }

  @Test
  void rejectsDimNotMultipleOfHeads() throws IOException {
    Path file = withHeader(new int[] {64, 172, 5, 6, 3, 512, 512});
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Llama2Checkpoint.load(file));
    assertEquals("invalid llama2.c checkpoint " + file + ": corrupt header: dim must be a multiple of n_heads:"
        + " 64 % 6 != 0", e.getMessage());
  }

  @Test
  void rejectsHeaderWhoseSizeOverflows() throws IOException {
    Path file = withHeader(new int[] {1 << 30, Integer.MAX_VALUE, Integer.MAX_VALUE, 2, 2, 512, 512});
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Llama2Checkpoint.load(file));
    assertTrue(e.getMessage().contains("implied size overflows a long"), e.getMessage());
  }

  /** Negative vocab_size: the classifier is a separate wcls at the end; same weights, same greedy story. */
  @Test
  void loadsUnsharedClassifier() throws IOException {
    byte[] bytes = Files.readAllBytes(SharedData.model());
    int embeddingBytes = 512 * 64 * Float.BYTES;
    ByteBuffer b = ByteBuffer.allocate(bytes.length + embeddingBytes).order(ByteOrder.LITTLE_ENDIAN);
    b.put(bytes).put(bytes, Llama2Checkpoint.HEADER_BYTES, embeddingBytes).putInt(5 * Integer.BYTES, -512);
    Llama2Checkpoint m = Llama2Checkpoint.load(write("unshared.bin", b.array()));
    assertFalse(m.config().sharedClassifier());
    assertEquals(512, m.config().vocabSize());
    assertNotSame(m.tokenEmbedding, m.wcls);
    assertArrayEquals(m.tokenEmbedding, m.wcls);
    Reference ref = Reference.greedy().get(0);
    try (Transformer t = TestModels.transformer(m, "f32")) {
      int[] got = new Generator(t, TestModels.tokenizer()).generate("", 20, 0f, 0, null).tokens();
      assertArrayEquals(Arrays.copyOf(ref.tokens(), 21), got);
    }
  }

  /** Loads the real file with header int {@code index} replaced; returns the problem part of the message. */
  private String headerProblem(int index, int value) throws IOException {
    int[] header = {64, 172, 5, 8, 4, 512, 512};
    header[index] = value;
    Path file = withHeader(header);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Llama2Checkpoint.load(file));
    String prefix = "invalid llama2.c checkpoint " + file + ": ";
    assertTrue(e.getMessage().startsWith(prefix), e.getMessage());
    return e.getMessage().substring(prefix.length());
  }

  private Path withHeader(int[] header) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(SharedData.model())).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < header.length; i++) {
      b.putInt(i * Integer.BYTES, header[i]);
    }
    return write("header.bin", b.array());
  }

  private Path write(String name, byte[] bytes) throws IOException {
    return Files.write(tmp.resolve(name), bytes);
  }
}
