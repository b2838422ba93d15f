package hflash.bench;

import java.util.Arrays;

/** Summary of timing samples in nanoseconds: median and the 10th/90th percentiles (linear interpolation). */
public record Samples(double[] nanos) {

  public Samples {
    if (nanos.length == 0) {
      throw new IllegalArgumentException("no samples");
    }
    nanos = nanos.clone();
    Arrays.sort(nanos);
  }

  public double percentile(double p) {
    double rank = p * (nanos.length - 1);
    int lo = (int) Math.floor(rank);
    int hi = Math.min(lo + 1, nanos.length - 1);
    return nanos[lo] + (rank - lo) * (nanos[hi] - nanos[lo]);
  }

  public double medianMs() {
    return percentile(0.5) / 1e6;
  }

  public double p10Ms() {
    return percentile(0.1) / 1e6;
  }

  public double p90Ms() {
    return percentile(0.9) / 1e6;
  }

  public int count() {
    return nanos.length;
  }
}
