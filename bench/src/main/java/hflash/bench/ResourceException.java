package hflash.bench;

/**
 * A request the machine cannot serve (a KV cache larger than the memory available): exit code 1, one line saying
 * how much is needed and how much there is. Distinct from {@link UsageException} (exit 2): the input is valid,
 * the machine is too small for it.
 */
public final class ResourceException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public ResourceException(String message) {
    super(message);
  }
}
