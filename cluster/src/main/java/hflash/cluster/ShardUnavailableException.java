package hflash.cluster;

/**
 * Thrown by a member asked for a shard copy it does not hold (it restarted, or the copy was
 * dropped) or while it shuts down. The caller treats it like a member failure: it asks the next
 * copy of the shard.
 */
public final class ShardUnavailableException extends IllegalStateException {
  private static final long serialVersionUID = 1L;

  public ShardUnavailableException(String message) {
    super(message);
  }
}
