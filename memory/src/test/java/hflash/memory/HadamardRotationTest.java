package hflash.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;

class HadamardRotationTest {

  @Test
  void isOrthonormalAndInvertible() {
    long seed = 17;
    Random r = new Random(seed);
    for (int d : new int[] {1, 2, 8, 64, 128, 256}) {
      HadamardRotation rot = HadamardRotation.of(d, seed);
      float[] x = new float[d + 3], y = new float[d + 3];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) r.nextGaussian();
        y[i] = (float) r.nextGaussian();
      }
      double dot = 0, nx = 0;
      for (int c = 0; c < d; c++) {
        dot += (double) x[3 + c] * y[3 + c];
        nx += (double) x[3 + c] * x[3 + c];
      }
      float[] x0 = x.clone();
      rot.rotate(x, 3);
      rot.rotate(y, 3);
      double dotR = 0, nxR = 0;
      for (int c = 0; c < d; c++) {
        dotR += (double) x[3 + c] * y[3 + c];
        nxR += (double) x[3 + c] * x[3 + c];
      }
      String where = "seed=" + seed + " d=" + d;
      assertEquals(nx, nxR, 1e-5 * nx, where + " norm");
      assertEquals(dot, dotR, 1e-5 * Math.sqrt(nx * nxR), where + " dot");
      rot.rotateBack(x, 3);
      for (int i = 0; i < x.length; i++) {
        assertEquals(x0[i], x[i], 1e-5, where + " x[" + i + "]");
      }
      double[] xd = new double[d];
      for (int c = 0; c < d; c++) {
        xd[c] = x0[3 + c];
      }
      rot.rotate(xd, 0);
      rot.rotateBack(xd, 0);
      for (int c = 0; c < d; c++) {
        assertEquals(x0[3 + c], xd[c], 1e-12, where + " double c=" + c);
      }
    }
  }

  @Test
  void spreadsOneLargeChannelEvenly() {
    HadamardRotation rot = HadamardRotation.of(16, 3);
    float[] x = new float[16];
    x[5] = 8f;
    rot.rotate(x, 0);
    for (float v : x) {
      assertEquals(2f, Math.abs(v), 1e-6); // 8 / sqrt(16) in every channel
    }
  }
}
