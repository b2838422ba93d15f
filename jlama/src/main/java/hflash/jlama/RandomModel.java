package hflash.jlama;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Writes a random-weight model directory Jlama's stock loader reads: {@code config.json}, a
 * byte-fallback BPE {@code tokenizer.json} ({@code <unk>}, {@code <s>}, {@code </s>}, the 256 byte
 * tokens {@code <0x00>..<0xFF>}, then filler tokens up to the vocabulary size) and one F32
 * {@code model.safetensors} with the tensor names of a Hugging Face llama / mistral / qwen2
 * checkpoint (qwen2 with q/k/v biases).
 *
 * <p>Weights are seeded normals scaled by {@code 1/sqrt(fan-in)}; q and k get {@code qkGain}
 * times that so that attention is peaked rather than uniform (a uniform softmax would hide
 * errors in which keys are attended), and norms are 1 plus a little noise.
 *
 * @param type llama, mistral or qwen2 (or any other string, to test refusal)
 * @param hidden hidden size
 * @param heads query heads
 * @param kvHeads key/value heads
 * @param layers transformer layers
 * @param intermediate MLP size
 * @param vocab vocabulary size, at least 259 (3 special + 256 byte tokens)
 * @param contextLength max_position_embeddings
 * @param qkGain extra scale of the q and k projections
 * @param seed weights' seed
 */
public record RandomModel(String type, int hidden, int heads, int kvHeads, int layers, int intermediate,
    int vocab, int contextLength, float qkGain, long seed) {

  /** Byte tokens start here (after {@code <unk>}, {@code <s>}, {@code </s>}). */
  public static final int BYTE_OFFSET = 3;

  public RandomModel {
    if (vocab < BYTE_OFFSET + 256) {
      throw new IllegalArgumentException("vocab must be >= " + (BYTE_OFFSET + 256) + ": " + vocab);
    }
    if (heads % kvHeads != 0 || hidden % heads != 0 || ((hidden / heads) & 1) != 0) {
      throw new IllegalArgumentException("heads must divide hidden into an even head size and be a multiple of kvHeads: "
          + hidden + ", " + heads + ", " + kvHeads);
    }
  }

  public int headDim() {
    return hidden / heads;
  }

  /** Writes the three files into {@code dir} (created if needed); returns {@code dir}. */
  public Path write(Path dir) throws IOException {
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("config.json"), config());
    Files.writeString(dir.resolve("tokenizer.json"), tokenizer());
    // Jlama's quantizer copies a README.md along with the model
    Files.writeString(dir.resolve("README.md"), "Random-weight " + type + " model written by hflash's tests and benchmarks.\n");
    writeWeights(dir.resolve("model.safetensors"));
    return dir;
  }

  private String config() {
    return String.format(Locale.ROOT, """
        {
          "architectures": ["%s"],
          "model_type": "%s",
          "hidden_size": %d,
          "intermediate_size": %d,
          "num_attention_heads": %d,
          "num_key_value_heads": %d,
          "num_hidden_layers": %d,
          "head_dim": %d,
          "max_position_embeddings": %d,
          "rms_norm_eps": 1e-5,
          "vocab_size": %d,
          "bos_token_id": 1,
          "eos_token_id": 2,
          "hidden_act": "silu",
          "rope_theta": 10000.0,
          "tie_word_embeddings": false,
          "torch_dtype": "float32"
        }
        """, type.substring(0, 1).toUpperCase(Locale.ROOT) + type.substring(1) + "ForCausalLM", type, hidden,
        intermediate, heads, kvHeads, layers, headDim(), contextLength, vocab);
  }

  private String tokenizer() {
    StringBuilder vocabJson = new StringBuilder();
    List<String> names = new ArrayList<>(List.of("<unk>", "<s>", "</s>"));
    for (int b = 0; b < 256; b++) {
      names.add(String.format(Locale.ROOT, "<0x%02X>", b));
    }
    for (int i = names.size(); i < vocab; i++) {
      names.add("tok" + i);
    }
    for (int i = 0; i < names.size(); i++) {
      vocabJson.append(i == 0 ? "" : ",").append('"').append(names.get(i)).append("\":").append(i);
    }
    return """
        {
          "version": "1.0",
          "added_tokens": [
            {"id": 0, "content": "<unk>", "special": true},
            {"id": 1, "content": "<s>", "special": true},
            {"id": 2, "content": "</s>", "special": true}
          ],
          "normalizer": null,
          "pre_tokenizer": null,
          "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
            "vocab": {""" + vocabJson + "}, \"merges\": []}\n}\n";
  }

  private void writeWeights(Path file) throws IOException {
    SplittableRandom rnd = new SplittableRandom(seed);
    int d = headDim();
    Map<String, float[]> t = new LinkedHashMap<>();
    Map<String, int[]> shapes = new LinkedHashMap<>();
    put(t, shapes, "model.embed_tokens.weight", normal(rnd, vocab * hidden, 1f), vocab, hidden);
    float inv = (float) (1 / Math.sqrt(hidden));
    for (int l = 0; l < layers; l++) {
      String p = "model.layers." + l + ".";
      put(t, shapes, p + "input_layernorm.weight", norm(rnd, hidden), hidden);
      put(t, shapes, p + "post_attention_layernorm.weight", norm(rnd, hidden), hidden);
      put(t, shapes, p + "self_attn.q_proj.weight", normal(rnd, heads * d * hidden, inv * qkGain), heads * d, hidden);
      put(t, shapes, p + "self_attn.k_proj.weight", normal(rnd, kvHeads * d * hidden, inv * qkGain), kvHeads * d, hidden);
      put(t, shapes, p + "self_attn.v_proj.weight", normal(rnd, kvHeads * d * hidden, inv), kvHeads * d, hidden);
      put(t, shapes, p + "self_attn.o_proj.weight", normal(rnd, hidden * heads * d, (float) (1 / Math.sqrt(heads * d))), hidden, heads * d);
      if (type.equals("qwen2")) {
        put(t, shapes, p + "self_attn.q_proj.bias", normal(rnd, heads * d, 0.5f), heads * d);
        put(t, shapes, p + "self_attn.k_proj.bias", normal(rnd, kvHeads * d, 0.5f), kvHeads * d);
        put(t, shapes, p + "self_attn.v_proj.bias", normal(rnd, kvHeads * d, 0.5f), kvHeads * d);
      }
      put(t, shapes, p + "mlp.gate_proj.weight", normal(rnd, intermediate * hidden, inv), intermediate, hidden);
      put(t, shapes, p + "mlp.up_proj.weight", normal(rnd, intermediate * hidden, inv), intermediate, hidden);
      put(t, shapes, p + "mlp.down_proj.weight", normal(rnd, hidden * intermediate, (float) (1 / Math.sqrt(intermediate))),
          hidden, intermediate);
    }
    put(t, shapes, "model.norm.weight", norm(rnd, hidden), hidden);
    put(t, shapes, "lm_head.weight", normal(rnd, vocab * hidden, inv * 4), vocab, hidden);
    writeSafetensors(file, t, shapes);
  }

  private static void put(Map<String, float[]> t, Map<String, int[]> shapes, String name, float[] data, int... shape) {
    t.put(name, data);
    shapes.put(name, shape);
  }

  private static float[] normal(SplittableRandom rnd, int n, float scale) {
    float[] a = new float[n];
    for (int i = 0; i < n; i++) {
      // Box-Muller from two uniforms in (0, 1]
      double u = 1 - rnd.nextDouble();
      double v = rnd.nextDouble();
      a[i] = (float) (Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)) * scale;
    }
    return a;
  }

  private static float[] norm(SplittableRandom rnd, int n) {
    float[] a = normal(rnd, n, 0.1f);
    for (int i = 0; i < n; i++) {
      a[i] += 1f;
    }
    return a;
  }

  /** The safetensors format: an 8-byte little-endian header length, the JSON header, the raw F32 data. */
  static void writeSafetensors(Path file, Map<String, float[]> tensors, Map<String, int[]> shapes) throws IOException {
    StringBuilder h = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
    long offset = 0;
    for (Map.Entry<String, float[]> e : tensors.entrySet()) {
      long bytes = 4L * e.getValue().length;
      StringBuilder shape = new StringBuilder();
      for (int s : shapes.get(e.getKey())) {
        shape.append(shape.isEmpty() ? "" : ",").append(s);
      }
      h.append(",\"").append(e.getKey()).append("\":{\"dtype\":\"F32\",\"shape\":[").append(shape)
          .append("],\"data_offsets\":[").append(offset).append(',').append(offset + bytes).append("]}");
      offset += bytes;
    }
    h.append('}');
    while ((h.length() + 8) % 8 != 0) { // data starts 8-byte aligned
      h.append(' ');
    }
    byte[] header = h.toString().getBytes(StandardCharsets.UTF_8);
    try (OutputStream out = Files.newOutputStream(file)) {
      ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length);
      out.write(len.array());
      out.write(header);
      ByteBuffer buf = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
      for (float[] a : tensors.values()) {
        for (float x : a) {
          if (!buf.hasRemaining()) {
            out.write(buf.array(), 0, buf.position());
            buf.clear();
          }
          buf.putFloat(x);
        }
      }
      out.write(buf.array(), 0, buf.position());
    }
  }
}
