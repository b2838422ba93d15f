package hflash.ascend;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Every number the Ascend model uses, in one place: value, unit, and where it comes from. A
 * parameter whose {@link Param#assumed()} is true has no public source that gives the number; the
 * model's sensitivity to it is shown by {@link Sensitivity} ({@code hflash ascend --sweep}) and in
 * docs/ascend.md. Immutable; {@link #with} returns a changed copy.
 *
 * <p>Sources cited below (short keys):
 *
 * <ul>
 *   <li>[STUB] CANN asc-devkit test platform stub, Ascend910B / npu_arch 2201: {@code
 *       g_core_num_aic = 24, g_core_num_aiv = 48} (gitcode.com/Water8L/asc-devkit_5, a mirror of
 *       cann/asc-devkit, tests/api/common/platform_stub.cpp).
 *   <li>[ARCH] CANN Ascend C programming guide, "Basic Architecture" / "Storage Units" (Atlas A2:
 *       separated AIC + 2 AIV, MTE2 GM-&gt;UB/L1, MTE3 UB-&gt;GM, FixPipe L0C-&gt;GM; sizes queried with
 *       GetCoreMemSize), hiascend.com .../opdevg/Ascendcopdevg/atlas_ascendc_10_0007/0008/0010.html.
 *   <li>[BP16K] CANN Ascend C best practices, "Transferring a Large Data Block at a Time": "optimal
 *       bandwidth performance can be achieved when data to be transferred at a time is greater than
 *       16 KB", hiascend.com .../atlas_ascendc_best_practices_10_0016.html.
 *   <li>[HC19] Huawei, Da Vinci architecture, Hot Chips 31 (2019), as reported by AnandTech: "Cube
 *       is 4096 FP16 MACs" (16x16x16 per cycle); vector 2048-bit.
 *   <li>[API] CANN Ascend C API reference: a vector instruction processes 256 bytes per repeat
 *       (8 blocks of 32 bytes).
 *   <li>[DESIGN] ../shared/DESIGN.md section 5 (the 192 KiB unified buffer per vector unit).
 * </ul>
 */
public final class AscendParams {

  /** One parameter: its value in {@code unit}, its source, and whether the value is an assumption. */
  public record Param(String name, double value, String unit, String source, boolean assumed) {}

  private final Map<String, Param> params;

  private AscendParams(Map<String, Param> params) {
    this.params = Collections.unmodifiableMap(params);
  }

  /** The 910B-class defaults. */
  public static AscendParams ascend910b() {
    Map<String, Param> m = new LinkedHashMap<>();
    put(m, "cores", 24, "AI cores (1 AIC + 2 AIV each)", "[STUB] 24 AIC / 48 AIV", false);
    put(m, "ubBytes", 192 * 1024, "bytes per AIV", "[DESIGN]; Atlas A2 UB as reported, query GetCoreMemSize [ARCH]", false);
    put(m, "l1Bytes", 512 * 1024, "bytes per AIC", "Atlas A2 L1 as widely reported; not in an official table found here", true);
    put(m, "l0aBytes", 64 * 1024, "bytes per AIC", "as widely reported for Atlas A2; not confirmed", true);
    put(m, "l0bBytes", 64 * 1024, "bytes per AIC", "as widely reported for Atlas A2; not confirmed", true);
    put(m, "l0cBytes", 128 * 1024, "bytes per AIC", "as widely reported for Atlas A2; not confirmed", true);
    put(m, "clockGHz", 1.8, "GHz (AIC and AIV)",
        "assumed; 24 cores x 8192 FLOP/cycle x 1.8 GHz = 354 TFLOPS f16, inside the 313-376 TFLOPS"
            + " quoted for 910B-class parts", true);
    put(m, "hbmGBps", 1600, "GB/s (1e9 B/s), whole device",
        "assumed 1.6 TB/s: public figures for 910B-class parts range 1.2-1.6 TB/s (no official sheet found)",
        true);
    put(m, "dmaCoreGBps", 128, "GB/s per core DMA port (MTE2/MTE3 to the NoC)",
        "assumed; must exceed hbmGBps/cores = 67 GB/s or HBM could never be saturated", true);
    put(m, "dmaIssueNs", 15, "ns per transfer (descriptor issue, engine busy)",
        "assumed; chosen so one core reaches ~90 % of its port at 16 KiB, per [BP16K]", true);
    put(m, "hbmLatencyNs", 600, "ns first-byte latency HBM->UB/L1",
        "assumed (typical HBM load-to-use latency on accelerators); hidden when transfers stream", true);
    put(m, "l2LatencyNs", 200, "ns latency of a GM access that hits L2 (hand-off buffers)", "assumed", true);
    put(m, "syncNs", 1000, "ns per hand-off flag (set flag in GM, poll, fence)",
        "assumed; AIV<->AIV share no buffer, so a hand-off is GM write + flag + poll + GM read [ARCH]", true);
    put(m, "vecBytesPerCycle", 256, "bytes per cycle per AIV (64 f32 lanes)", "[API] 256 B per repeat; [HC19] 2048-bit vector", false);
    put(m, "vecInstrCycles", 16, "cycles fixed cost per vector instruction", "assumed (issue + pipeline fill)", true);
    put(m, "expOps", 4, "f32 element-ops per exp", "assumed (exp is a multi-pass vector op)", true);
    put(m, "cubeMacsPerCycle", 4096, "f16 MAC per cycle per AIC (16x16x16)", "[HC19]", false);
    put(m, "cubeStartupCycles", 64, "cycles per Mmad call (pipeline fill, L0C drain)", "assumed", true);
    put(m, "l1ToL0BytesPerCycle", 256, "bytes per cycle MTE1 L1->L0A/L0B", "assumed", true);
    put(m, "scalarNsPerCompare", 2, "ns per comparison of the tile sort (scalar unit)", "assumed", true);
    put(m, "launchUs", 3, "us kernel launch to first instruction", "assumed (device-side task dispatch)", true);
    return new AscendParams(m);
  }

  private static void put(Map<String, Param> m, String name, double value, String unit,
      String source, boolean assumed) {
    m.put(name, new Param(name, value, unit, source, assumed));
  }

  /** A copy with one parameter changed. */
  public AscendParams with(String name, double value) {
    Param p = param(name);
    if (!(value > 0 && Double.isFinite(value))) {
      throw new IllegalArgumentException("parameter " + name + " must be finite and > 0: " + value);
    }
    Map<String, Param> m = new LinkedHashMap<>(params);
    m.put(name, new Param(name, value, p.unit(), p.source(), p.assumed()));
    return new AscendParams(m);
  }

  /**
   * Parses {@code name=value} overrides, comma-separated (e.g. {@code hbmGBps=1200,syncNs=500}).
   */
  public AscendParams withAll(String overrides) {
    AscendParams p = this;
    if (overrides == null || overrides.isBlank()) {
      return p;
    }
    for (String kv : overrides.split(",")) {
      int eq = kv.indexOf('=');
      if (eq <= 0) {
        throw new IllegalArgumentException("parameter override must be name=value: " + kv);
      }
      String value = kv.substring(eq + 1).trim();
      double v;
      try {
        v = Double.parseDouble(value);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("parameter value is not a number: " + kv, e);
      }
      p = p.with(kv.substring(0, eq).trim(), v);
    }
    return p;
  }

  /** The parameter called {@code name}. */
  public Param param(String name) {
    Param p = params.get(name);
    if (p == null) {
      throw new IllegalArgumentException("unknown Ascend parameter: " + name + " (known: "
          + String.join(", ", params.keySet()) + ")");
    }
    return p;
  }

  /** All parameters, in declaration order. */
  public List<Param> all() {
    return new ArrayList<>(params.values());
  }

  /** The parameters without a public source. */
  public List<Param> assumed() {
    return all().stream().filter(Param::assumed).toList();
  }

  private double v(String name) {
    return params.get(name).value();
  }

  public int cores() {
    return (int) v("cores");
  }

  public long ubBytes() {
    return (long) v("ubBytes");
  }

  public long l1Bytes() {
    return (long) v("l1Bytes");
  }

  public long l0aBytes() {
    return (long) v("l0aBytes");
  }

  public long l0bBytes() {
    return (long) v("l0bBytes");
  }

  public long l0cBytes() {
    return (long) v("l0cBytes");
  }

  /** Cycle time in ns. */
  public double cycleNs() {
    return 1.0 / v("clockGHz");
  }

  /** HBM bandwidth in bytes per ns (1 GB/s = 1 B/ns). */
  public double hbmBytesPerNs() {
    return v("hbmGBps");
  }

  public double dmaCoreBytesPerNs() {
    return v("dmaCoreGBps");
  }

  public double dmaIssueNs() {
    return v("dmaIssueNs");
  }

  public double hbmLatencyNs() {
    return v("hbmLatencyNs");
  }

  public double l2LatencyNs() {
    return v("l2LatencyNs");
  }

  public double syncNs() {
    return v("syncNs");
  }

  /** f32 lanes a vector unit retires per cycle. */
  public double vecF32PerCycle() {
    return v("vecBytesPerCycle") / Float.BYTES;
  }

  public double vecInstrCycles() {
    return v("vecInstrCycles");
  }

  public double expOps() {
    return v("expOps");
  }

  public double cubeMacsPerCycle() {
    return v("cubeMacsPerCycle");
  }

  public double cubeStartupCycles() {
    return v("cubeStartupCycles");
  }

  public double l1ToL0BytesPerCycle() {
    return v("l1ToL0BytesPerCycle");
  }

  public double scalarNsPerCompare() {
    return v("scalarNsPerCompare");
  }

  public double launchNs() {
    return v("launchUs") * 1000;
  }

  /** A markdown table of every parameter (docs/ascend.md is generated from this). */
  public String markdownTable() {
    StringBuilder sb = new StringBuilder("| parameter | value | unit | source | assumed |\n|---|---:|---|---|---|\n");
    for (Param p : all()) {
      sb.append("| `").append(p.name()).append("` | ").append(fmt(p.value())).append(" | ")
          .append(p.unit()).append(" | ").append(p.source()).append(" | ")
          .append(p.assumed() ? "yes" : "no").append(" |\n");
    }
    return sb.toString();
  }

  static String fmt(double v) {
    return v == Math.rint(v) && Math.abs(v) < 1e15 ? Long.toString((long) v)
        : String.format(Locale.ROOT, "%.3g", v);
  }
}
