package hflash.cluster;

import com.hazelcast.client.UndefinedErrorCodeException;
import com.hazelcast.core.HazelcastInstanceNotActiveException;
import com.hazelcast.core.MemberLeftException;
import com.hazelcast.spi.exception.TargetDisconnectedException;
import com.hazelcast.spi.exception.TargetNotMemberException;
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
   * Whether {@code t} says the member is gone or cannot serve the shard (so another copy should
   * be asked), as opposed to a rejected request (bad arguments), which every copy would reject.
   */
  static boolean isMemberFailure(Throwable t) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (c instanceof MemberLeftException || c instanceof TargetNotMemberException
          || c instanceof TargetDisconnectedException
          || c instanceof HazelcastInstanceNotActiveException
          || c instanceof RejectedExecutionException || c instanceof ShardUnavailableException
          || c instanceof java.io.IOException) {
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
}
