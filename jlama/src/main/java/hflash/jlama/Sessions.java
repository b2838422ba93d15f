package hflash.jlama;

import com.github.tjake.jlama.model.AbstractModel;
import com.github.tjake.jlama.safetensors.Config;
import com.github.tjake.jlama.tensor.KvBufferCache;
import com.github.tjake.jlama.util.PhysicalCoreExecutor;
import hflash.memory.KvCacheLayout;
import hflash.memory.PagePool;
import java.lang.ref.Cleaner;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.WeakHashMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

/**
 * The model's {@code KvBufferCache}, replaced: Jlama still hands a {@code KvBuffer} to every
 * forward (it keeps the session's position counter), but no Jlama page is ever allocated, since
 * the attention never asks the buffer for one. Each buffer is mapped to its own hflash
 * {@link Session}, created on its first forward: a sequence of the model's one {@link PagePool},
 * which is allocated (and zeroed) with the first session, so loading a model reserves no K/V.
 *
 * <p>Buffers by UUID live until {@link #release} or {@link #close}. Any other buffer (Jlama's
 * ephemeral ones, or one a caller made with its own {@code KvBufferCache}) is tracked weakly: its
 * session is freed when the buffer becomes unreachable, or at close.
 */
final class Sessions extends KvBufferCache {

  private static final Cleaner CLEANER = Cleaner.create();

  /** A session and the cleaner registration that closes it exactly once; holds no reference to its buffer. */
  private record Entry(Session session, Cleaner.Cleanable cleanable) {}

  private final Config c;
  private final HflashJlama.Options options; // every default resolved
  private final float scale;
  private final KvCacheLayout layout; // of every session: shape, KV dtype, capacity
  private PagePool pool; // null until the first session; guarded by this
  private final ConcurrentMap<UUID, KvBuffer> buffers = new ConcurrentHashMap<>();
  private final Map<KvBuffer, Entry> sessions = new WeakHashMap<>(); // KvBuffer keeps identity equals; guarded by this
  private boolean closed; // guarded by this

  private Sessions(AbstractModel model, HflashJlama.Options options, KvCacheLayout layout) {
    super(model);
    this.c = model.getConfig();
    this.options = options;
    this.layout = layout;
    // Jlama 0.8.4's scale: attentionMultiplier when the config has one, else 1/sqrt(d) in double, rounded once
    this.scale = c.attentionMultiplier != null ? c.attentionMultiplier : (float) (1.0 / StrictMath.sqrt(c.headSize));
  }

  static Sessions install(AbstractModel model, HflashJlama.Options options) {
    int jlamaThreads = PhysicalCoreExecutor.instance.get().getCoreCount();
    HflashJlama.Options resolved = options.resolve(model.getConfig(), model.getWorkingDType(), jlamaThreads);
    Config c = model.getConfig();
    // the cache layout, the pool's page count and the rotation are checked at load, not at a session's first forward
    KvCacheLayout layout = Session.layout(c.dctx().numberOfLayers, c.numberOfKeyValueHeads, c.headSize, resolved);
    if (resolved.pageTokens % layout.tileTokens() != 0) {
      throw new IllegalArgumentException("pageTokens must be a multiple of tileTokens " + layout.tileTokens() + ": "
          + resolved.pageTokens);
    }
    Math.multiplyExact(PagePool.pageBytes(layout, resolved.pageTokens),
        (long) Math.ceilDiv(resolved.poolCapacity, resolved.pageTokens));
    if (resolved.kvRotation) {
      hflash.memory.HadamardRotation.of(c.headSize, hflash.memory.HadamardRotation.DEFAULT_SEED);
    }
    return new Sessions(model, resolved, layout);
  }

  HflashJlama.Options options() {
    return options;
  }

  @Override
  public KvBuffer getKvBuffer(UUID session) {
    ensureOpen();
    return buffers.computeIfAbsent(session, s -> super.getEphemeralKvBuffer());
  }

  /** The session of {@code buffer}, created (cache allocated) on first use. */
  synchronized Session session(KvBuffer buffer) {
    ensureOpen();
    Entry e = sessions.get(buffer);
    if (e == null) {
      if (pool == null) {
        pool = Session.pool(layout, options);
      }
      Session s = new Session(pool, c.numberOfHeads, scale, options);
      e = new Entry(s, CLEANER.register(buffer, s::close));
      sessions.put(buffer, e);
    }
    return e.session();
  }

  synchronized void release(UUID session) {
    KvBuffer b = buffers.remove(session);
    if (b == null) {
      return;
    }
    Entry e = sessions.remove(b);
    if (e != null) {
      e.cleanable().clean();
    }
    b.close();
  }

  synchronized int length(UUID session) {
    KvBuffer b = buffers.get(session);
    Entry e = b == null ? null : sessions.get(b);
    return e == null ? 0 : e.session().length();
  }

  /** The session of UUID {@code session}, or null before its first forward (tests). */
  synchronized Session existing(UUID session) {
    KvBuffer b = buffers.get(session);
    Entry e = b == null ? null : sessions.get(b);
    return e == null ? null : e.session();
  }

  synchronized Optional<PagePool.Stats> poolStats() {
    return pool == null || pool.isClosed() ? Optional.empty() : Optional.of(pool.stats());
  }

  synchronized int open() {
    return sessions.size();
  }

  private synchronized void ensureOpen() {
    if (closed) {
      throw new IllegalStateException("the model is closed: its hflash sessions were freed");
    }
  }

  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    List<Entry> all = new ArrayList<>(sessions.values());
    sessions.clear();
    buffers.clear();
    RuntimeException first = null;
    for (Entry e : all) {
      try {
        e.cleanable().clean();
      } catch (RuntimeException ex) {
        if (first == null) {
          first = ex;
        } else {
          first.addSuppressed(ex);
        }
      }
    }
    if (pool != null) {
      pool.close(); // every session closed above; this frees the pages
    }
    super.close();
    if (first != null) {
      throw first;
    }
  }
}
