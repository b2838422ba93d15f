package hflash.jlama;

import static com.github.tjake.jlama.util.JsonSupport.om;

import com.fasterxml.jackson.databind.JsonNode;
import com.github.tjake.jlama.model.AbstractModel;
import com.github.tjake.jlama.model.ModelSupport;
import com.github.tjake.jlama.safetensors.Config;
import com.github.tjake.jlama.safetensors.DType;
import com.github.tjake.jlama.safetensors.SafeTensorSupport;
import com.github.tjake.jlama.safetensors.WeightLoader;
import com.github.tjake.jlama.safetensors.tokenizer.Tokenizer;
import com.github.tjake.jlama.tensor.KvBufferCache;
import hflash.engine.AttentionConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.reflect.InvocationTargetException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;
import java.util.UUID;

/**
 * Runs a Jlama 0.8.4 model with hflash as its KV cache and attention, without forking Jlama.
 *
 * <pre>
 *   AbstractModel m = HflashJlama.loadModel(Path.of("models/Llama-3.2-1B-Instruct"),
 *       HflashJlama.Options.defaults().kvDtype("f16"));
 *   var r = m.generate(UUID.randomUUID(), PromptContext.of("Why is the sky blue?"), 0f, 256, (s, f) -&gt; {});
 *   m.close();                                       // frees every session's cache
 * </pre>
 *
 * <p>The returned model is a subclass of Jlama's own model class for the type (llama, mistral,
 * qwen2): config, tokenizer and weights come from Jlama's loaders, and Jlama's projections,
 * biases, RoPE and scaling run unchanged. Only each layer's {@code CausalSelfAttention} is
 * replaced (Jlama 0.8.4 has no attention SPI: the blocks are built with a subclass that overrides
 * {@code forward}), so the key/value rows go into an hflash {@code KvCache} per session instead of
 * Jlama's {@code KvBufferCache}, and attention runs on hflash: a prompt batch as one tiled prefill
 * call per layer, a generated token as one decode call per layer.
 *
 * <p>Sessions: each Jlama session UUID (and each {@code KvBuffer} a caller makes) is a sequence
 * of the model's one page pool ({@link Options#poolCapacity} positions, allocated at the first
 * forward), of at most {@link Options#capacity} positions; it holds only the pages its positions
 * need. A forward at a start position below the session's length rewinds it to that position (as
 * Jlama overwrites its buffer); a start past the length is refused. {@link #release} frees one
 * session's pages, {@code model.close()} frees the pool.
 */
public final class HflashJlama {

  /** The model types the adapter runs (their attention is Jlama's plain causal self-attention). */
  public static final List<String> SUPPORTED_TYPES = List.of("llama", "mistral", "qwen2");

  /** Positions a session holds at most by default, whatever the model's context length. */
  public static final int MAX_DEFAULT_CAPACITY = 32768;

  private HflashJlama() {}

  /**
   * Loads the model in {@code modelDir} (config.json, tokenizer.json, safetensors) with Jlama's
   * loaders and hflash attention.
   *
   * @throws IllegalArgumentException a missing directory or config, or a model type other than
   *     llama, mistral or qwen2 (the message names it)
   */
  public static AbstractModel loadModel(Path modelDir, Options options) {
    Objects.requireNonNull(modelDir, "modelDir");
    Objects.requireNonNull(options, "options");
    Path base = Files.isRegularFile(modelDir) ? modelDir.getParent() : modelDir;
    if (base == null || !Files.isDirectory(base)) {
      throw new IllegalArgumentException("model directory does not exist: " + modelDir);
    }
    Path configFile = base.resolve("config.json");
    if (!Files.isRegularFile(configFile)) {
      throw new IllegalArgumentException("config.json in model directory does not exist: " + base);
    }
    try {
      JsonNode root = om.readTree(configFile.toFile());
      JsonNode typeNode = root.get("model_type");
      if (typeNode == null || !typeNode.isTextual()) {
        throw new IllegalArgumentException("config.json has no model_type: " + configFile);
      }
      String type = typeNode.textValue().toLowerCase(Locale.ROOT);
      if (!SUPPORTED_TYPES.contains(type)) {
        throw new IllegalArgumentException("model type '" + typeNode.textValue()
            + "' is not supported by hflash-jlama (supported: " + String.join(", ", SUPPORTED_TYPES) + ")");
      }
      ModelSupport.ModelType modelType = ModelSupport.ModelType.valueOf(type.toUpperCase(Locale.ROOT));
      Config c = om.readValue(configFile.toFile(), modelType.configClass);
      checkConfig(type, c);
      Tokenizer t = modelType.tokenizerClass.getConstructor(Path.class).newInstance(base);
      WeightLoader wl = SafeTensorSupport.loadWeights(base.toFile());
      Optional<DType> q = Optional.ofNullable(options.modelQuantization);
      AbstractModel.InferenceType it = AbstractModel.InferenceType.FULL_GENERATION;
      return switch (type) {
        case "llama" -> new HflashLlamaModel(it, c, wl, t, options.workingDType, options.workingQType, q, options);
        case "mistral" -> new HflashMistralModel(it, c, wl, t, options.workingDType, options.workingQType, q, options);
        default -> new HflashQwen2Model(it, c, wl, t, options.workingDType, options.workingQType, q, options);
      };
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the model in " + base, e);
    } catch (InvocationTargetException e) {
      Throwable cause = e.getCause();
      if (cause instanceof RuntimeException r) {
        throw r;
      }
      throw new IllegalStateException("cannot load the tokenizer of " + base, cause);
    } catch (ReflectiveOperationException e) {
      throw new IllegalStateException("cannot load the tokenizer of " + base, e);
    }
  }

  /** What the adapter does not reproduce is refused here rather than computed differently. */
  private static void checkConfig(String type, Config c) {
    if (c.attnLogitSoftCapping != null) {
      throw new IllegalArgumentException("attention logit soft-capping is not supported by hflash-jlama: "
          + c.attnLogitSoftCapping + " (model type " + type + ")");
    }
    if (c.numberOfHeads % c.numberOfKeyValueHeads != 0) {
      throw new IllegalArgumentException("num_attention_heads must be a multiple of num_key_value_heads: "
          + c.numberOfHeads + " % " + c.numberOfKeyValueHeads + " != 0");
    }
  }

  /** Frees the hflash cache of session {@code session} of {@code model}; no-op when it has none. */
  public static void release(AbstractModel model, UUID session) {
    sessions(model).release(session);
  }

  /**
   * The {@code KvBuffer} of session {@code session} (the one {@code generate} uses for that UUID),
   * for callers that drive {@code forward} and {@code batchForward} themselves.
   */
  public static KvBufferCache.KvBuffer kvBuffer(AbstractModel model, UUID session) {
    return sessions(model).getKvBuffer(session);
  }

  /** Positions the session holds in its first layer (0 before its first forward or after release). */
  public static int sessionLength(AbstractModel model, UUID session) {
    return sessions(model).length(session);
  }

  /**
   * The occupancy of {@code model}'s page pool (pages total, used, free, bytes); empty before the
   * first session's first forward allocated it.
   */
  public static Optional<hflash.memory.PagePool.Stats> poolStats(AbstractModel model) {
    return sessions(model).poolStats();
  }

  /** Live sessions (caches allocated and not yet released) of {@code model}. */
  public static int openSessions(AbstractModel model) {
    return sessions(model).open();
  }

  /** The options {@code model} was loaded with, with every default resolved. */
  public static Options options(AbstractModel model) {
    return sessions(model).options();
  }

  private static Sessions sessions(AbstractModel model) {
    Objects.requireNonNull(model, "model");
    if (!(model instanceof HflashModel h)) {
      throw new IllegalArgumentException("model was not loaded by HflashJlama.loadModel: " + model.getClass().getName());
    }
    return h.hflashSessions();
  }

  /**
   * Load options; immutable, every builder returns a copy. {@link #defaults()}: exact mode, the KV
   * dtype of the model's working dtype, Jlama's thread count, capacity = the config's context
   * length capped at {@value HflashJlama#MAX_DEFAULT_CAPACITY} positions, a page pool of that
   * capacity for all sessions together.
   */
  public static final class Options {
    final String kvDtype; // null: the working dtype's
    final boolean kvRotation;
    final AttentionConfig attention;
    final int threads; // 0: Jlama's
    final int capacity; // 0: min(contextLength, 32768)
    final int poolCapacity; // 0: capacity
    final int pageTokens; // 0: PagePool.defaultPageTokens(tileTokens), 512 for 128-key tiles
    final int tileTokens;
    final DType workingDType;
    final DType workingQType;
    final DType modelQuantization; // null: the weights as stored

    private Options(String kvDtype, boolean kvRotation, AttentionConfig attention, int threads,
        int capacity, int poolCapacity, int pageTokens, int tileTokens, DType workingDType, DType workingQType,
        DType modelQuantization) {
      this.kvDtype = kvDtype;
      this.kvRotation = kvRotation;
      this.attention = attention;
      this.threads = threads;
      this.capacity = capacity;
      this.poolCapacity = poolCapacity;
      this.pageTokens = pageTokens;
      this.tileTokens = tileTokens;
      this.workingDType = workingDType;
      this.workingQType = workingQType;
      this.modelQuantization = modelQuantization;
    }

    /** Exact mode, working dtype F32 (quantized working dtype I8, as Jlama's examples), 128-key tiles. */
    public static Options defaults() {
      return new Options(null, false, AttentionConfig.exact(), 0, 0, 0, 0, 128, DType.F32, DType.I8, null);
    }

    /** KV cache dtype: f32, bf16, f16, q8_0 or q4_0. */
    public Options kvDtype(String dtype) {
      Objects.requireNonNull(dtype, "dtype");
      String id = dtype.toLowerCase(Locale.ROOT);
      hflash.memory.DType.parse(id); // fails with the list of dtypes
      return new Options(id, kvRotation, attention, threads, capacity, poolCapacity, pageTokens, tileTokens, workingDType,
          workingQType, modelQuantization);
    }

    /** Rotates K and V rows by a seeded Hadamard rotation before they are stored (helps q4_0). */
    public Options kvRotation(boolean rotate) {
      return new Options(kvDtype, rotate, attention, threads, capacity, poolCapacity, pageTokens, tileTokens, workingDType,
          workingQType, modelQuantization);
    }

    /** The attention mode (exact, budgeted, certified, ...). */
    public Options attention(AttentionConfig config) {
      Objects.requireNonNull(config, "config");
      return new Options(kvDtype, kvRotation, config, threads, capacity, poolCapacity, pageTokens, tileTokens, workingDType,
          workingQType, modelQuantization);
    }

    /** Threads of each session's attention, in [1, 1024]. */
    public Options threads(int n) {
      if (n < 1 || n > 1024) {
        throw new IllegalArgumentException("threads out of range [1, 1024]: " + n);
      }
      return new Options(kvDtype, kvRotation, attention, n, capacity, poolCapacity, pageTokens, tileTokens, workingDType,
          workingQType, modelQuantization);
    }

    /** Positions per session at most; a forward past it fails with an error naming the limit. */
    public Options capacity(int positions) {
      if (positions < 1) {
        throw new IllegalArgumentException("capacity must be >= 1: " + positions);
      }
      return new Options(kvDtype, kvRotation, attention, threads, positions, poolCapacity, pageTokens, tileTokens, workingDType,
          workingQType, modelQuantization);
    }

    /**
     * Positions the model's page pool holds over all its sessions (rounded up to whole pages of
     * 512 positions; default: {@link #capacity}, what one full-length session needs). The pool is
     * allocated at the first session's first forward; each session then takes pages as its
     * positions come, and a forward that needs a page when none is free fails with an error
     * naming the pages needed and free.
     */
    public Options poolCapacity(int positions) {
      if (positions < 1) {
        throw new IllegalArgumentException("poolCapacity must be >= 1: " + positions);
      }
      return new Options(kvDtype, kvRotation, attention, threads, capacity, positions, pageTokens, tileTokens, workingDType,
          workingQType, modelQuantization);
    }

    /**
     * Positions per page of the sessions' pool, a multiple of {@link #tileTokens} (default 512 for
     * 128-key tiles: the smallest page that keeps the sampled mode's key samples). Larger pages
     * give each KV head's stream longer contiguous runs (a decode reads a page's tiles of one head
     * in one run, then jumps to the next page) at the price of a coarser memory grain per session;
     * pages that are not a multiple of 512 cannot run the sampled mode.
     */
    public Options pageTokens(int positions) {
      if (positions < 1) {
        throw new IllegalArgumentException("pageTokens must be >= 1: " + positions);
      }
      return new Options(kvDtype, kvRotation, attention, threads, capacity, poolCapacity, positions, tileTokens,
          workingDType, workingQType, modelQuantization);
    }

    /** Keys per cache tile, a positive multiple of 32 (default 128). */
    public Options tileTokens(int keys) {
      if (keys < 32 || keys % 32 != 0) {
        throw new IllegalArgumentException("tileTokens must be a positive multiple of 32: " + keys);
      }
      return new Options(kvDtype, kvRotation, attention, threads, capacity, poolCapacity, pageTokens, keys, workingDType,
          workingQType, modelQuantization);
    }

    /** Jlama's working dtypes (as {@code ModelSupport.loadModel}'s two DType arguments). */
    public Options workingDTypes(DType working, DType quantized) {
      Objects.requireNonNull(working, "working");
      Objects.requireNonNull(quantized, "quantized");
      return new Options(kvDtype, kvRotation, attention, threads, capacity, poolCapacity, pageTokens, tileTokens, working,
          quantized, modelQuantization);
    }

    /** Quantize the weights at load (Jlama's {@code modelQuantization}); null keeps them as stored. */
    public Options modelQuantization(DType dtype) {
      return new Options(kvDtype, kvRotation, attention, threads, capacity, poolCapacity, pageTokens, tileTokens, workingDType,
          workingQType, dtype);
    }

    /** The KV dtype id, or null before a model resolved it. */
    public String kvDtype() {
      return kvDtype;
    }

    public boolean kvRotation() {
      return kvRotation;
    }

    public AttentionConfig attention() {
      return attention;
    }

    /** Threads, or 0 before a model resolved Jlama's count. */
    public int threads() {
      return threads;
    }

    /** Capacity, or 0 before a model resolved it. */
    public int capacity() {
      return capacity;
    }

    /** Pool capacity in positions, or 0 before a model resolved it. */
    public int poolCapacity() {
      return poolCapacity;
    }

    /** Positions per pool page, or 0 before a model resolved it. */
    public int pageTokens() {
      return pageTokens;
    }

    public int tileTokens() {
      return tileTokens;
    }

    /** These options with every default resolved for a model of config {@code c}. */
    Options resolve(Config c, DType working, int jlamaThreads) {
      String dt = kvDtype != null ? kvDtype : switch (working) {
        case BF16 -> "bf16";
        case F16 -> "f16";
        default -> "f32";
      };
      int cap = capacity > 0 ? capacity : Math.min(c.contextLength, MAX_DEFAULT_CAPACITY);
      int th = threads > 0 ? threads : Math.max(1, jlamaThreads);
      int pool = poolCapacity > 0 ? poolCapacity : cap;
      int page = pageTokens > 0 ? pageTokens : hflash.memory.PagePool.defaultPageTokens(tileTokens);
      return new Options(dt, kvRotation, attention, th, cap, pool, page, tileTokens, workingDType, workingQType,
          modelQuantization);
    }

    @Override
    public String toString() {
      return "Options[kvDtype=" + kvDtype + ", kvRotation=" + kvRotation + ", mode=" + attention.mode().id()
          + ", threads=" + threads + ", capacity=" + capacity + ", poolCapacity=" + poolCapacity + ", pageTokens=" + pageTokens + ", tileTokens=" + tileTokens + "]";
    }
  }
}
