package hflash.cluster;

import com.hazelcast.cluster.MembershipEvent;
import com.hazelcast.cluster.MembershipListener;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.core.LifecycleEvent;
import java.util.function.Consumer;

/**
 * One hflash member: a Hazelcast member with a {@link ShardStore} in its user context, so the
 * {@link ShardTasks} sent to it find the shard copies it holds. Logs joins, leaves and the shard
 * copies it takes or drops. {@link #close()} leaves the cluster cleanly and frees the copies.
 */
public final class ClusterMember implements AutoCloseable {

  private final HazelcastInstance hz;
  private final ShardStore store;

  private ClusterMember(HazelcastInstance hz, ShardStore store) {
    this.hz = hz;
    this.store = store;
  }

  /** Starts a member with {@code options}; {@code log} receives one line per event. */
  public static ClusterMember start(ClusterSetup.MemberOptions options, Consumer<String> log) {
    var config = ClusterSetup.memberConfig(options);
    ShardStore store = new ShardStore(options.memoryBytes(), log);
    config.getUserContext().put(ShardStore.KEY, store);
    config.addListenerConfig(new com.hazelcast.config.ListenerConfig(new MembershipListener() {
      @Override
      public void memberAdded(MembershipEvent e) {
        if (e.getMember().localMember()) {
          return; // the "up" line says it
        }
        log.accept("member joined: " + e.getMember().getAddress() + " (" + e.getMembers().size()
            + " members)");
      }

      @Override
      public void memberRemoved(MembershipEvent e) {
        log.accept("member left: " + e.getMember().getAddress() + " (" + e.getMembers().size()
            + " members)");
      }
    }));
    HazelcastInstance hz;
    try {
      hz = Hazelcast.newHazelcastInstance(config);
    } catch (RuntimeException e) {
      store.close();
      throw e;
    }
    hz.getLifecycleService().addLifecycleListener(e -> {
      if (e.getState() == LifecycleEvent.LifecycleState.SHUTTING_DOWN
          || e.getState() == LifecycleEvent.LifecycleState.SHUTDOWN) {
        store.close();
      }
    });
    log.accept("member " + hz.getCluster().getLocalMember().getAddress() + " of cluster "
        + options.cluster() + " up (" + hz.getCluster().getMembers().size() + " members)");
    return new ClusterMember(hz, store);
  }

  public HazelcastInstance hazelcast() {
    return hz;
  }

  public ShardStore store() {
    return store;
  }

  /** Kills the member without a goodbye (tests: a crash as the others see it). */
  public void terminate() {
    hz.getLifecycleService().terminate();
    store.close();
  }

  /** Leaves the cluster cleanly and frees every shard copy. */
  @Override
  public void close() {
    try {
      if (hz.getLifecycleService().isRunning()) {
        hz.shutdown();
      }
    } finally {
      store.close();
    }
  }
}
