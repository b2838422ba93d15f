package hflash.cluster;

/**
 * Every copy of some positions is gone (each member that held them left or died). A decode that
 * needs them throws this instead of attending to part of the context; the message names the
 * layers and the global position ranges lost.
 */
public final class ShardLostException extends IllegalStateException {
  private static final long serialVersionUID = 1L;

  private final long lostPositions;

  public ShardLostException(String message, long lostPositions) {
    super(message);
    this.lostPositions = lostPositions;
  }

  /** Positions per layer without any copy left. */
  public long lostPositions() {
    return lostPositions;
  }
}
