package hflash.memory;

import static hflash.memory.TileSummaries.BLOCK_TILES;

/**
 * Where one family of summary records (the key summaries, the value summaries) keeps the records of
 * a tile or a block. A flat cache has one slot holding every tile and block; a sequence of a page
 * pool has one slot per pool page, at {@code page * pageStride + partBase} of the pool's summary
 * segment, holding that page's tiles and the blocks whose last tile is in it.
 */
final class SummarySlots {

  private final PageTable pages; // a sequence's page table; null: flat
  private final long pageStride; // bytes of one page's slot in the pool's summary segment
  private final long partBase; // where this family's records start inside a page's slot
  /** Tiles per (layer, kvHead) in a slot. */
  final int tiles;
  /** Blocks per (layer, kvHead) in a slot. */
  final int blocks;

  private SummarySlots(PageTable pages, long pageStride, long partBase, int tiles, int blocks) {
    this.pages = pages;
    this.pageStride = pageStride;
    this.partBase = partBase;
    this.tiles = tiles;
    this.blocks = blocks;
  }

  /** A flat cache's single slot of {@code tiles} tiles per (layer, kvHead). */
  static SummarySlots flat(int tiles) {
    return new SummarySlots(null, 0, 0, tiles, tiles / BLOCK_TILES);
  }

  /** A sequence's slots: one per page of {@code tilesPerPage} tiles, found through {@code pages}. */
  static SummarySlots paged(PageTable pages, long pageStride, long partBase, int tilesPerPage) {
    return new SummarySlots(pages, pageStride, partBase, tilesPerPage, blocksPerPage(tilesPerPage));
  }

  /**
   * Blocks per (layer, kvHead) a page of {@code tilesPerPage} tiles keeps: those whose last tile is
   * in the page, at most {@code ceil(tilesPerPage / 16)} (so a page of fewer than 16 tiles keeps one
   * block slot, used by every 16/tilesPerPage-th page).
   */
  static int blocksPerPage(int tilesPerPage) {
    return (tilesPerPage + BLOCK_TILES - 1) / BLOCK_TILES;
  }

  boolean paged() {
    return pages != null;
  }

  /** Start of the slot holding tile {@code tile}'s records. */
  long tileSlot(int tile) {
    return pages == null ? 0 : pages.page(tile / tiles) * pageStride + partBase;
  }

  /** Index of tile {@code tile} in its slot. */
  int tileIndex(int tile) {
    return pages == null ? tile : tile % tiles;
  }

  /** Start of the slot holding block {@code block}'s records: the page of its last tile. */
  long blockSlot(int block) {
    return pages == null ? 0 : pages.page(lastTile(block) / tiles) * pageStride + partBase;
  }

  /** Index of block {@code block} in its slot. */
  int blockIndex(int block) {
    return pages == null ? block : lastTile(block) % tiles / BLOCK_TILES;
  }

  /** The page of block {@code block}'s records (paged slots only). */
  int blockPage(int block) {
    return lastTile(block) / tiles;
  }

  private static int lastTile(int block) {
    return block * BLOCK_TILES + BLOCK_TILES - 1;
  }
}
