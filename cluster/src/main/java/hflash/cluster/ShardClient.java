package hflash.cluster;

import com.hazelcast.cluster.Member;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.core.IExecutorService;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Future;

/**
 * The coordinator's line to the members: sends a {@link ShardTasks} request to the member with a
 * given UUID on the executor {@link ClusterSetup#EXECUTOR}, and looks members up. A member that is
 * not in the cluster any more gives a failed future ({@link ShardUnavailableException}), which
 * {@link Calls#isMemberFailure} counts as a member failure.
 */
final class ShardClient {

  private final HazelcastInstance hz;
  private final IExecutorService executor;

  ShardClient(HazelcastInstance hz) {
    this.hz = hz;
    this.executor = hz.getExecutorService(ClusterSetup.EXECUTOR);
  }

  HazelcastInstance hazelcast() {
    return hz;
  }

  /** Sends {@code task} to {@code member} (a UUID). */
  <T> Future<T> submit(String member, Callable<T> task) {
    Member m = member(member);
    if (m == null) {
      return CompletableFuture.failedFuture(
          new ShardUnavailableException("member is not in the cluster: " + member));
    }
    return executor.submitToMember(task, m);
  }

  /**
   * Sends the same {@code task} to each of {@code members} (UUIDs), serialised once; the futures
   * in the order of {@code members} (a failed one for a member no longer in the cluster).
   */
  <T> List<Future<T>> submitToAll(List<String> members, Callable<T> task) {
    List<Member> present = new ArrayList<>();
    for (String u : members) {
      Member m = member(u);
      if (m != null) {
        present.add(m);
      }
    }
    java.util.Map<Member, Future<T>> sent = present.isEmpty() ? java.util.Map.of()
        : executor.submitToMembers(task, present);
    List<Future<T>> out = new ArrayList<>();
    for (String u : members) {
      Future<T> f = null;
      for (var e : sent.entrySet()) {
        if (e.getKey().getUuid().toString().equals(u)) {
          f = e.getValue();
        }
      }
      out.add(f != null ? f : CompletableFuture.failedFuture(
          new ShardUnavailableException("member is not in the cluster: " + u)));
    }
    return out;
  }

  /** Sends {@code task} to {@code m}. */
  <T> Future<T> submit(Member m, Callable<T> task) {
    return executor.submitToMember(task, m);
  }

  /** The cluster member with this UUID, or null when it left. */
  Member member(String uuid) {
    for (Member m : hz.getCluster().getMembers()) {
      if (m.getUuid().toString().equals(uuid)) {
        return m;
      }
    }
    return null;
  }

  /** The data (non-lite) members, oldest first. */
  List<Member> dataMembers() {
    List<Member> out = new ArrayList<>(hz.getCluster().getMembers());
    out.removeIf(Member::isLiteMember);
    return out;
  }
}
