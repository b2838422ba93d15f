package hflash.cluster;

import com.hazelcast.client.UndefinedErrorCodeException;
import com.hazelcast.core.HazelcastInstanceNotActiveException;
import com.hazelcast.core.OperationTimeoutException;
import com.hazelcast.spi.exception.RetryableException;
import com.hazelcast.spi.exception.TargetDisconnectedException;
import java.io.IOException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;

/** Waiting for member calls and telling a member failure from an error of the request. */
final class Calls {

  private Calls() {}

  /** The result, or the member's exception unwrapped (as the local call would have thrown it). */
  static <T> T get(Future<T> f) {
    try {
      return f.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while waiting for a member", e);
    } catch (ExecutionException e) {
      Throwable c = e.getCause() == null ? e : e.getCause();
      if (c instanceof RuntimeException r) {
        throw r;
      }
      if (c instanceof Error err) {
        throw err;
      }
      throw new IllegalStateException(c);
    }
  }

  /**
   * Whether {@code t} says the member is gone or cannot serve the shard, so another copy should
   * be asked: Hazelcast's member-left, target-not-member, target-disconnected and operation-timeout
   * exceptions (and the rest of its {@link RetryableException}s), a member that is shutting down
   * ({@link HazelcastInstanceNotActiveException}, or its executor rejecting the task), our own
   * {@link ShardUnavailableException} (the member holds no such copy), and the plain
   * {@code IOException} with which the Hazelcast 5.5 client fails an invocation whose target has
   * no connection any more ({@code ClientInvocation}: "No connection found to invoke"). Anything
   * else is an error of the request or a bug (a validation error, a bad state) that every copy
   * would give: it reaches the caller unchanged and is not retried.
   */
  static boolean isMemberFailure(Throwable t) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (c instanceof RetryableException || c instanceof TargetDisconnectedException
          || c instanceof OperationTimeoutException
          || c instanceof HazelcastInstanceNotActiveException
          || c instanceof RejectedExecutionException || c instanceof ShardUnavailableException) {
        return true;
      }
      if (c.getClass() == IOException.class && c.getMessage() != null
          && c.getMessage().startsWith(CLIENT_NO_CONNECTION)) {
        return true;
      }
      if (c instanceof UndefinedErrorCodeException u
          && u.getOriginClassName().equals(ShardUnavailableException.class.getName())) {
        return true;
      }
      if (c.getCause() == c) {
        break;
      }
    }
    return false;
  }

  /** How the Hazelcast client words an invocation it could not send (no connection to the target). */
  static final String CLIENT_NO_CONNECTION = "No connection found to invoke";
}
