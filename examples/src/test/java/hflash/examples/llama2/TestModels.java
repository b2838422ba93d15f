package hflash.examples.llama2;

import hflash.engine.AttentionMode;
import hflash.memory.DType;
import java.io.IOException;
import java.io.UncheckedIOException;

/** The stories260K model and tokenizer, loaded once per test JVM (read-only after loading). */
final class TestModels {

  private static Llama2Checkpoint model;
  private static Tokenizer tokenizer;

  private TestModels() {}

  static synchronized Llama2Checkpoint model() {
    if (model == null) {
      try {
        model = Llama2Checkpoint.load(SharedData.model());
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return model;
  }

  static synchronized Tokenizer tokenizer() {
    if (tokenizer == null) {
      try {
        tokenizer = Tokenizer.load(SharedData.tokenizer(), 512);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return tokenizer;
  }

  /** A transformer over the full trained context with the given KV dtype, exact attention, one thread. */
  static Transformer transformer(Llama2Checkpoint m, String dtype) {
    return new Transformer(m, m.config().seqLen(), DType.parse(dtype), AttentionMode.EXACT, 1);
  }

  static Transformer transformer(String dtype) {
    return transformer(model(), dtype);
  }
}
