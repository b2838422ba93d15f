package hflash.memory;

import java.util.Arrays;

/**
 * One sequence's page table: entry {@code i} is the pool page holding positions
 * {@code [i * pageTokens, (i + 1) * pageTokens)} of every layer. Mutated only by its
 * {@link KvCache}, under that cache's lock; read by decodes (which never run concurrently with an
 * append of the same sequence).
 */
final class PageTable {

  final PagePool pool;
  private final int pageTokens;
  private final int tilesPerPage;
  private final int blocksPerPage;
  private int[] pages; // (count) pool page ids, then spare room
  private int count;

  PageTable(PagePool pool) {
    this.pool = pool;
    this.pageTokens = pool.pageTokens();
    this.tilesPerPage = pool.tilesPerPage();
    this.blocksPerPage = pool.sampleBlocksPerPage();
    this.pages = new int[4];
  }

  /** A table holding the same pages (each retained once more): a fork. */
  PageTable share() {
    PageTable t = new PageTable(pool);
    t.pages = Arrays.copyOf(pages, Math.max(4, count));
    t.count = count;
    pool.retain(t.pages, t.count);
    return t;
  }

  int count() {
    return count;
  }

  /** Pool page id of table entry i. */
  int page(int i) {
    return pages[i];
  }

  long tileOffset(int layer, int kvHead, int tile) {
    return pool.tileOffset(pages[tile / tilesPerPage], layer, kvHead, tile % tilesPerPage);
  }

  long sampleBlockOffset(int layer, int kvHead, int phase, int block) {
    assert blocksPerPage > 0 : "pages without samples";
    return pool.sampleBlockOffset(pages[block / blocksPerPage], layer, kvHead, phase, block % blocksPerPage);
  }

  /**
   * Makes positions {@code [from, from + n)} writable: appends fresh pages past the table's end and
   * replaces each shared page in the range by a private copy (copy-on-write). All pages come from
   * one {@link PagePool#take}: when the pool cannot give them all, nothing changes and the
   * exception names the pages needed and free.
   */
  void prepareWrite(int from, int n, String what) {
    if (n <= 0) {
      return;
    }
    int first = from / pageTokens;
    int last = (from + n - 1) / pageTokens;
    int fresh = Math.max(0, last + 1 - count);
    int copies = 0;
    for (int i = first; i < Math.min(last + 1, count); i++) {
      if (pool.isShared(pages[i])) {
        copies++;
      }
    }
    if (fresh + copies == 0) {
      return;
    }
    int[] got = pool.take(fresh + copies, what);
    int g = 0;
    int[] old = new int[copies];
    int o = 0;
    for (int i = first; i < Math.min(last + 1, count); i++) {
      if (pool.isShared(pages[i])) { // still shared: only this table's owner can make it private
        pool.copyPage(pages[i], got[g]);
        old[o++] = pages[i];
        pages[i] = got[g++];
      }
    }
    if (count + fresh > pages.length) {
      pages = Arrays.copyOf(pages, Math.max(count + fresh, 2 * pages.length));
    }
    for (int i = 0; i < fresh; i++) {
      pages[count++] = got[g++];
    }
    pool.release(old, 0, o);
    if (g < got.length) { // a page another sequence released meanwhile: give the spare back
      pool.release(got, g, got.length);
    }
  }

  /** True when the page holding {@code position} is held by another sequence too. */
  boolean isSharedAt(int position) {
    return pool.isShared(pages[position / pageTokens]);
  }

  /** The page ids, in position order (a snapshot). */
  int[] ids() {
    return Arrays.copyOf(pages, count);
  }

  /** K plus V bytes of the pages held (shared ones included). */
  long kvBytes() {
    KvCacheLayout l = pool.layout();
    return 2L * count * pageTokens * l.kvHeads() * l.layers() * l.rowBytes();
  }

  /** Releases the pages past the longest of {@code lengths} (positions per layer). */
  void shrinkTo(int[] lengths) {
    int longest = 0;
    for (int len : lengths) {
      longest = Math.max(longest, len);
    }
    shrink((longest + pageTokens - 1) / pageTokens);
  }

  /** Releases the pages past the first {@code keep}. */
  void shrink(int keep) {
    if (keep < count) {
      pool.release(pages, keep, count);
      count = keep;
    }
  }

  /** Releases every page. */
  void releaseAll() {
    pool.release(pages, 0, count);
    count = 0;
  }
}
