package hflash.engine.pass;

import hflash.engine.ModeConfig;
import hflash.engine.SinkWindow;

/**
 * Which keys and tiles one decode call visits and how its workers share them: the context's
 * tiles, the sinks + window mapping (a list "sink tiles, then window tiles" indexed by virtual tile,
 * keys outside both ranges masked), the split (contiguous tile ranges of every KV head for a mode
 * that {@linkplain ModeConfig#splitsKeys() splits keys}, whole KV heads round-robin otherwise) and
 * the budgeted mode's tiles per KV head. Recomputed by {@link #plan} at the start of every call
 * (no allocation); read by the schedulers and the strategies.
 */
public final class TilePlan {

  /** A split-K chunk gets at least this many keys; shorter contexts use fewer threads. */
  public static final int SPLIT_MIN_KEYS = 256;

  private final int tileTokens;
  private final int kvHeads;
  private final long tileBytes; // K + V bytes of one full tile
  private int keys;
  private int tiles; // tiles holding keys [0, keys)
  private boolean windowed;
  private int sinks; // windowed: keys [0, sinks) and [windowStart, keys) are attended
  private int windowStart;
  private int sinkTiles; // tiles holding sinks: [0, sinkTiles)
  private int windowFirstTile; // tiles holding the window: [windowFirstTile, tiles)
  private int visited; // tiles per KV head the plan visits (virtual tiles when windowed)
  private boolean splitsKeys;
  private int chunks;
  private int tileBudget; // budgeted: tiles per KV head; -1 otherwise

  /**
   * @param tileTokens keys per tile
   * @param kvHeads KV heads of the cache
   * @param rowBytes bytes of one K (or V) row
   */
  public TilePlan(int tileTokens, int kvHeads, long rowBytes) {
    this.tileTokens = tileTokens;
    this.kvHeads = kvHeads;
    this.tileBytes = 2L * tileTokens * rowBytes;
  }

  /** Plans a call over keys [0, keys) in {@code mode}, restricted by {@code window} (or null), on {@code lanes} workers. */
  public void plan(int keys, ModeConfig mode, SinkWindow window, int lanes) {
    this.keys = keys;
    this.tiles = (keys + tileTokens - 1) / tileTokens;
    this.windowed = window != null;
    if (windowed) {
      sinks = Math.min(window.sinks(), keys);
      windowStart = Math.max(sinks, keys - window.window());
      sinkTiles = (sinks + tileTokens - 1) / tileTokens;
      windowFirstTile = windowStart / tileTokens;
      visited = Math.min(sinkTiles, windowFirstTile) + (tiles - windowFirstTile);
    } else {
      visited = tiles;
    }
    splitsKeys = mode.splitsKeys();
    chunks = splitsKeys
        ? Math.max(1, Math.min(Math.min(lanes, visited), keys / SPLIT_MIN_KEYS))
        : Math.min(lanes, kvHeads); // a KV head's traversal is sequential: split over KV heads
    tileBudget = mode instanceof ModeConfig.Budgeted b ? b.tileBudget(tiles, tileBytes, kvHeads) : -1;
  }

  /** Keys of the call. */
  public int keys() {
    return keys;
  }

  /** Tiles holding the call's keys (the last may be incomplete). */
  public int tiles() {
    return tiles;
  }

  /** Complete tiles of the call: their summaries are valid. */
  public int fullTiles() {
    return keys / tileTokens;
  }

  /** Chunks of work the call's workers share (a pipeline counts once). */
  public int chunks() {
    return chunks;
  }

  /** First KV head chunk c visits. */
  public int firstKvHead(int c) {
    return splitsKeys ? 0 : c;
  }

  /** Step between the KV heads a chunk visits. */
  public int kvHeadStep() {
    return splitsKeys ? 1 : chunks;
  }

  /** First (virtual) tile chunk c visits in each of its KV heads. */
  public int from(int c) {
    return splitsKeys ? (int) ((long) c * visited / chunks) : 0;
  }

  /** End (exclusive) of the (virtual) tiles chunk c visits in each of its KV heads. */
  public int to(int c) {
    return splitsKeys ? (int) ((long) (c + 1) * visited / chunks) : visited;
  }

  /** Whether keys are restricted to sinks plus a recent window. */
  public boolean windowed() {
    return windowed;
  }

  /** Tile of virtual index vt: itself, or in the list "sink tiles, then window tiles" (no tile twice). */
  public int tile(int vt) {
    if (!windowed) {
      return vt;
    }
    int head = Math.min(sinkTiles, windowFirstTile);
    return vt < head ? vt : windowFirstTile + (vt - head);
  }

  /** Whether key {@code key} (of a visited tile) is attended: outside the window's gap. */
  public boolean attended(int key) {
    return !windowed || key < sinks || key >= windowStart;
  }

  /** Whether any key of [first, end) is masked (falls in the gap between sinks and window). */
  public boolean masksAny(int first, int end) {
    return windowed && first < windowStart && end > sinks;
  }

  /** Budgeted: tiles per KV head the call may open; -1 for the other modes. */
  public int tileBudget() {
    return tileBudget;
  }
}
