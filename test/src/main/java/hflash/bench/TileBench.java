package hflash.bench;

import hflash.memory.DType;
import hflash.tiles.TileEncoding;
import hflash.tiles.TileKernels;
import hflash.tiles.TileKernelsProvider;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The state {@link ScoreTileBench} and {@link AccumulateTileBench} share: the same parameters, a
 * buffer of {@code tiles} seeded K or V tiles back to back (each in TileLayout order), the scalar
 * and vector kernels, and the tile the next invocation starts at. Not a benchmark itself; each
 * subclass makes its own inputs in {@link #prepare()} and checks its kernel call in
 * {@link #checkFunctionsAgree()}, both run once per trial after the buffer is filled.
 */
@State(Scope.Benchmark)
public abstract class TileBench {

  /** Query heads per KV head (GQA group), the group size the kernels are blocked for. */
  static final int GROUP = 4;

  /** Kernel calls per invocation; the score is divided by it. */
  static final int CALLS = 256;

  @Param({"64", "80", "128"})
  int headDim;

  @Param({"f32", "f16", "bf16"})
  String dtype;

  @Param("64")
  int tileTokens;

  @Param({"16", "4096"})
  int tiles;

  Arena arena;
  MemorySegment tileData; // (tiles) tiles back to back, each in TileLayout order
  DType type;
  TileEncoding enc; // the kernels' view of type
  long tileBytes;
  int next; // first tile of the next invocation
  TileKernels scalar;
  TileKernels vector;

  @Setup(Level.Trial)
  public void setup() {
    type = DType.parse(dtype);
    enc = TileEncoding.of(type.id());
    tileBytes = (long) tileTokens * headDim * type.bytes();
    arena = Arena.ofShared();
    tileData = BenchData.filled(arena, tileBytes * tiles, type);
    prepare();
    scalar = TileKernelsProvider.scalar();
    vector = TileKernelsProvider.get();
    checkFunctionsAgree();
  }

  /** The subclass's own inputs (queries or weights, output arrays), made after the tiles. */
  abstract void prepare();

  /** Every tile, scalar vs vector; throws when they disagree. */
  abstract void checkFunctionsAgree();

  /** Throws unless {@code expected} (scalar) and {@code actual} (vector) differ by at most 1e-4 (max-norm, relative). */
  void checkTileAgrees(String op, float[] expected, float[] actual, int tile) {
    double rel = BenchData.maxRelative(expected, actual, 0, expected.length);
    if (!(rel <= 1e-4)) {
      throw new IllegalStateException(op + ": " + scalar.name() + " and " + vector.name()
          + " differ by " + rel + " (relative) at tile " + tile + ", headDim=" + headDim
          + " dtype=" + dtype);
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    arena.close();
  }
}
