package hflash.jlama;

import com.github.tjake.jlama.model.TransformerBlock;
import com.github.tjake.jlama.model.llama.LlamaModel;
import com.github.tjake.jlama.safetensors.Config;
import com.github.tjake.jlama.safetensors.DType;
import com.github.tjake.jlama.safetensors.WeightLoader;
import com.github.tjake.jlama.safetensors.tokenizer.Tokenizer;
import com.github.tjake.jlama.tensor.AbstractTensor;
import java.util.Optional;

/**
 * Jlama's {@link LlamaModel} with its attention layers on hflash: everything else (embedding,
 * norms, MLP, sampling, {@code getModelType()}) is the stock class's.
 */
final class HflashLlamaModel extends LlamaModel implements HflashModel {

  private final Sessions sessions;

  HflashLlamaModel(InferenceType inferenceType, Config config, WeightLoader weights, Tokenizer tokenizer,
      DType workingDType, DType workingQType, Optional<DType> modelQType, HflashJlama.Options options) {
    super(inferenceType, config, weights, tokenizer, workingDType, workingQType, modelQType);
    this.sessions = Sessions.install(this, options);
    this.kvBufferCache = sessions;
  }

  /** Called from Jlama's constructor: only the inherited fields are set here. */
  @Override
  protected TransformerBlock[] loadTransformerBlockWeights() {
    return Blocks.load(this, c, weights, modelQType.orElse(modelDType), false);
  }

  @Override
  public Sessions hflashSessions() {
    return sessions;
  }

  @Override
  public AbstractTensor quantizeForProjection(AbstractTensor t) {
    return maybeQuantize(t);
  }

  @Override
  public void close() {
    try {
      sessions.close();
    } finally {
      super.close();
    }
  }
}
