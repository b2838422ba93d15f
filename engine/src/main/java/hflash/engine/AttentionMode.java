package hflash.engine;

import java.util.Locale;

/** How a decode call computes attention. Every mode returns the same kind of output and report. */
public enum AttentionMode {
  /** Online softmax over every key (FlashAttention/FlashDecoding); float32-exact. */
  EXACT;

  /** The CLI spelling: lower case. */
  public String id() {
    return name().toLowerCase(Locale.ROOT);
  }

  /**
   * Parses a mode name, case-insensitively.
   *
   * @throws IllegalArgumentException for an unknown name, listing the known ones
   */
  public static AttentionMode parse(String name) {
    if (name != null) {
      for (AttentionMode m : values()) {
        if (m.id().equalsIgnoreCase(name.trim())) {
          return m;
        }
      }
    }
    StringBuilder known = new StringBuilder();
    for (AttentionMode m : values()) {
      known.append(known.isEmpty() ? "" : ", ").append(m.id());
    }
    throw new IllegalArgumentException("unknown mode: " + name + " (expected " + known + ")");
  }
}
