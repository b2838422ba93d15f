package hflash.jlama;

import com.github.tjake.jlama.model.AbstractModel;
import com.github.tjake.jlama.model.MLPBlock;
import com.github.tjake.jlama.model.RMSNorm;
import com.github.tjake.jlama.model.TransformerBlock;
import com.github.tjake.jlama.safetensors.Config;
import com.github.tjake.jlama.safetensors.DType;
import com.github.tjake.jlama.safetensors.WeightLoader;
import com.github.tjake.jlama.tensor.AbstractTensor;
import java.util.Optional;
import java.util.stream.IntStream;

/**
 * The transformer blocks of a llama-family model as Jlama 0.8.4's {@code LlamaModel} and
 * {@code Qwen2Model} build them (the same tensor names, the same row/column sharding flags, the
 * same quantization), with {@link HflashAttention} in place of {@code CausalSelfAttention}. The
 * blocks' attention field is final, so the blocks are built here rather than patched afterwards.
 */
final class Blocks {

  private Blocks() {}

  static TransformerBlock[] load(AbstractModel model, Config c, WeightLoader weights, DType qType,
      boolean qkvBiases) {
    TransformerBlock[] blocks = new TransformerBlock[c.dctx().numberOfLayers];
    IntStream.range(c.dctx().layerStart, c.dctx().layerEnd).parallel().forEach(i -> {
      int layer = i - c.dctx().layerStart;
      String base = "model.layers." + i + ".";
      String attn = base + "self_attn.";
      Optional<AbstractTensor> qb = qkvBiases ? Optional.of(weights.load(attn + "q_proj.bias").quantize(qType)) : Optional.empty();
      Optional<AbstractTensor> kb = qkvBiases ? Optional.of(weights.load(attn + "k_proj.bias").quantize(qType)) : Optional.empty();
      Optional<AbstractTensor> vb = qkvBiases ? Optional.of(weights.load(attn + "v_proj.bias").quantize(qType)) : Optional.empty();
      HflashAttention attention = new HflashAttention(model, layer, qb, kb, vb,
          weights.load(attn + "q_proj.weight", c.dctx(), true, false).quantize(qType),
          weights.load(attn + "k_proj.weight", c.dctx(), true, false).quantize(qType),
          weights.load(attn + "v_proj.weight", c.dctx(), true, false).quantize(qType),
          Optional.empty(),
          weights.load(attn + "o_proj.weight", c.dctx(), false, true).quantize(qType));
      String mlp = base + "mlp.";
      MLPBlock ff = new MLPBlock(model, c.activationFunction,
          weights.load(mlp + "gate_proj.weight", c.dctx(), true, false).quantize(qType),
          weights.load(mlp + "down_proj.weight", c.dctx(), false, true).quantize(qType),
          weights.load(mlp + "up_proj.weight", c.dctx(), true, false).quantize(qType));
      blocks[layer] = new TransformerBlock(model, layer,
          new RMSNorm(model, weights.load(base + "input_layernorm.weight").quantize(qType)),
          attention,
          new RMSNorm(model, weights.load(base + "post_attention_layernorm.weight").quantize(qType)),
          ff);
    });
    return blocks;
  }
}
