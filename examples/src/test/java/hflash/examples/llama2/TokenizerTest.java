package hflash.examples.llama2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
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
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

class TokenizerTest {

  @TempDir Path tmp;

  @Test
  void loadsTok512() {
    Tokenizer t = TestModels.tokenizer();
    assertEquals(512, t.vocabSize());
    assertEquals(7, t.maxTokenLength());
    assertEquals("<0x41>", t.piece('A' + 3));
  }

  @Test
  void rejectsVocabSizeMismatch() {
    Path file = SharedData.tokenizer();
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(file, 32000));
    assertEquals("tokenizer has 512 tokens but the model expects 32000: " + file, e.getMessage());
  }

  @Test
  void generatorRejectsVocabSizeMismatch() throws IOException {
    // a well-formed file with the first 511 tokens of tok512
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(SharedData.tokenizer())).order(ByteOrder.LITTLE_ENDIAN);
    int offset = Integer.BYTES; // max_token_length
    for (int i = 0; i < 511; i++) {
      offset += Float.BYTES + Integer.BYTES + b.getInt(offset + Float.BYTES);
    }
    Path file = Files.write(tmp.resolve("tok511.bin"), Arrays.copyOf(b.array(), offset));
    Tokenizer t = Tokenizer.load(file, 511);
    try (Transformer tr = TestModels.transformer("f32")) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Generator(tr, t));
      assertEquals("tokenizer has 511 tokens but the model expects 512", e.getMessage());
    }
  }

  @Test
  void rejectsTruncatedFile() throws IOException {
    byte[] bytes = Files.readAllBytes(SharedData.tokenizer());
    Path file = Files.write(tmp.resolve("cut.bin"), Arrays.copyOf(bytes, bytes.length - 2));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(file, 512));
    assertEquals("invalid llama2.c tokenizer " + file + ": truncated after 511 tokens", e.getMessage());
  }

  @Test
  void emptyTextHasNoDummyPrefix() {
    assertArrayEquals(new int[] {Tokenizer.BOS}, TestModels.tokenizer().encode("", true));
    assertArrayEquals(new int[0], TestModels.tokenizer().encode("", false));
  }

  /** The prompt of the "Zoo" reference is forced, so its encoding must open the reference token ids. */
  @Test
  void encodesZooPromptAsReference() {
    Reference zoo = Reference.greedy().stream().filter(r -> r.prompt().equals("Zoo")).findFirst().orElseThrow();
    int[] got = TestModels.tokenizer().encode("Zoo", true);
    assertTrue(got.length >= 2 && got.length < zoo.tokens().length, Arrays.toString(got));
    assertArrayEquals(Arrays.copyOf(zoo.tokens(), got.length), got, "encode(\"Zoo\") = " + Arrays.toString(got));
    assertEquals(" ", TestModels.tokenizer().piece(got[1]).substring(0, 1), "dummy prefix space");
  }

  /** Decoding run.c's token ids gives run.c's printed text, character for character. */
  @ParameterizedTest(name = "{0}")
  @MethodSource("hflash.examples.llama2.Reference#greedy")
  void decodesReferenceTokensToReferenceText(Reference ref) {
    assertEquals(ref.text(), TestModels.tokenizer().decode(ref.tokens()));
  }

  @ParameterizedTest(name = "\"{0}\"")
  @ValueSource(strings = {"Zoo", "Once upon a time, there was a little girl named Lily.", "a\nb", "  two spaces",
      "x", "caf\u00e9 na\u00efve \u2615 \ud83e\udd99", "<0x41> is not a byte token in text"})
  void roundTrips(String text) {
    Tokenizer t = TestModels.tokenizer();
    assertEquals(text, t.decode(t.encode(text, true)));
  }

  @Test
  void unknownCodePointFallsBackToBytes() {
    int[] ids = TestModels.tokenizer().encode("\u2615", false); // UTF-8 E2 98 95, not in tok512
    assertArrayEquals(new int[] {TestModels.tokenizer().encode(" ", false)[0], 0xE2 + 3, 0x98 + 3, 0x95 + 3}, ids);
  }

  @Test
  void mergesByBestScore() {
    int[] ids = TestModels.tokenizer().encode("Once upon a time", false);
    assertTrue(ids.length < "Once upon a time".length() / 2, Arrays.toString(ids));
  }
}
