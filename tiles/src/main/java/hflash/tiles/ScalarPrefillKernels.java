package hflash.tiles;

import java.lang.foreign.MemorySegment;

/** The reference prefill kernels: plain loops, the spec {@code VectorPrefillKernels} is tested against. */
public final class ScalarPrefillKernels implements PrefillKernels {

  private static final int KC = KEY_CHUNK;

  /** The decode kernels whose {@link TileKernels#expSum} {@link #expRows} gives row by row. */
  private final TileKernels decode;

  /** The spec: its {@link #expRows} is the scalar reference's {@code expSum} per row. */
  public ScalarPrefillKernels() {
    this(TileKernelsProvider.scalar());
  }

  /**
   * The scalar loops next to {@code decode} (what {@link PrefillKernels#of} returns for decode
   * kernels without vector prefill kernels of their width): {@link #expRows} calls
   * {@code decode.expSum} per row, so a row's weights keep the decode path's bits.
   */
  ScalarPrefillKernels(TileKernels decode) {
    this.decode = decode;
  }

  @Override
  public String name() {
    return "prefill-scalar";
  }

  @Override
  public void widenKeys(MemorySegment k, long kOff, TileEncoding dtype, int d, int count, float[] kf) {
    assert !dtype.quantized() && count > 0;
    int bytes = dtype.bytes();
    int padded = PrefillKernels.roundUp(count);
    for (int j = 0; j < padded; j++) {
      for (int c = 0; c < d; c++) {
        float x = j < count ? dtype.read(k, kOff + (long) TileFormat.keyIndex(j, c, d, dtype) * bytes) : 0f;
        kf[(j / KC) * d * KC + c * KC + j % KC] = x;
      }
    }
  }

  @Override
  public void widenValues(MemorySegment v, long vOff, TileEncoding dtype, int d, int count, int tileTokens,
      float[] vf) {
    assert !dtype.quantized() && count <= tileTokens;
    int bytes = dtype.bytes();
    for (int j = 0; j < count; j++) {
      for (int c = 0; c < d; c++) {
        vf[(c / KC) * tileTokens * KC + j * KC + c % KC] =
            dtype.read(v, vOff + (long) TileFormat.valueIndex(j, c, d, tileTokens, dtype) * bytes);
      }
    }
  }

  @Override
  public void scores(float[] q, int qOff, int rows, int d, float[] kf, int count, float[] s, int sStride) {
    for (int r = 0; r < rows; r++) {
      for (int j = 0; j < count; j++) {
        int k0 = (j / KC) * d * KC + j % KC;
        float dot = 0f;
        for (int c = 0; c < d; c++) {
          dot = Math.fma(q[qOff + r * d + c], kf[k0 + c * KC], dot);
        }
        s[r * sStride + j] = dot;
      }
    }
  }

  @Override
  public void scores(float[] q, int qOff, int rows, int d, float[] kf, int count, float[] s, int sStride,
      float[] rowMax) {
    scores(q, qOff, rows, d, kf, count, s, sStride);
    for (int r = 0; r < rows; r++) { // ScalarTileKernels.max of the row
      float m = Float.NEGATIVE_INFINITY;
      for (int j = 0; j < count; j++) {
        m = Math.max(m, s[r * sStride + j]);
      }
      rowMax[r] = m;
    }
  }

  @Override
  public void expRows(float[] s, int sStride, int rows, int count, float[] m, int mOff, float[] sums) {
    for (int r = 0; r < rows; r++) {
      sums[r] = decode.expSum(s, r * sStride, count, m[mOff + r]);
    }
  }

  @Override
  public void accumulate(float[] p, int pStride, int rows, int d, float[] vf, int tileTokens, int count,
      float[] acc, int accOff) {
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < d; c++) {
        int v0 = (c / KC) * tileTokens * KC + c % KC;
        float sum = 0f;
        for (int j = 0; j < count; j++) {
          sum = Math.fma(p[r * pStride + j], vf[v0 + j * KC], sum);
        }
        acc[accOff + r * d + c] += sum;
      }
    }
  }
}
