package hflash.cluster;

import com.hazelcast.client.HazelcastClient;
import com.hazelcast.client.config.ClientConfig;
import com.hazelcast.config.Config;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.config.NetworkConfig;
import com.hazelcast.core.HazelcastInstance;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Hazelcast configuration for hflash members and coordinators. Safe by default:
 *
 * <ul>
 *   <li>members bind to {@code 127.0.0.1} only ({@code hazelcast.socket.bind.any=false}) and join
 *       by an explicit member list (TCP/IP join; multicast and auto-detection off);
 *   <li>a non-loopback bind address or member address is refused unless {@code allowRemote} is
 *       set: the open-source engine has no authentication and no TLS (docs/DISTRIBUTED.md);
 *   <li>phone-home and the other outbound features are off: nothing leaves the listed addresses.
 * </ul>
 */
public final class ClusterSetup {

  private ClusterSetup() {}

  static {
    // before any Hazelcast class reads them
    System.setProperty("hazelcast.phone.home.enabled", "false");
    System.setProperty("hazelcast.logging.type", "jdk");
    Logger.getLogger("com.hazelcast").setLevel(Level.WARNING);
  }

  /** Name of the executor that runs the shard tasks. */
  public static final String EXECUTOR = "hflash-shards";
  /** Name of the map that holds each cache's placement (survives the coordinator). */
  public static final String PLACEMENTS = "hflash-placements";

  /** Settings of one member. */
  public record MemberOptions(String cluster, String host, int port, List<String> members,
      long memoryBytes, boolean allowRemote, int executorThreads) {
    public MemberOptions {
      if (cluster == null || cluster.isBlank()) {
        throw new IllegalArgumentException("cluster name must not be empty");
      }
      if (port < 1 || port > 65535) {
        throw new IllegalArgumentException("port out of range [1, 65535]: " + port);
      }
      if (memoryBytes <= 0) {
        throw new IllegalArgumentException("memory must be positive: " + memoryBytes);
      }
      if (executorThreads < 1) {
        throw new IllegalArgumentException("executor threads must be >= 1: " + executorThreads);
      }
      members = List.copyOf(members);
      checkAddress(host, allowRemote);
      for (String m : members) {
        checkAddress(hostOf(m), allowRemote);
      }
    }

    /** A member on loopback with the given port and peers, no memory limit, 4 task threads. */
    public static MemberOptions loopback(String cluster, int port, List<String> members) {
      return new MemberOptions(cluster, "127.0.0.1", port, members, Long.MAX_VALUE, false, 4);
    }
  }

  /** The host part of {@code HOST:PORT} (brackets of an IPv6 literal removed). */
  static String hostOf(String address) {
    int colon = address.lastIndexOf(':');
    String host = colon < 0 ? address : address.substring(0, colon);
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }
    if (host.isEmpty()) {
      throw new IllegalArgumentException("address has no host: " + address);
    }
    return host;
  }

  /**
   * Refuses a host that is not a loopback address unless {@code allowRemote}.
   *
   * @throws IllegalArgumentException naming the address and the flag
   */
  public static void checkAddress(String host, boolean allowRemote) {
    if (allowRemote) {
      return;
    }
    boolean loopback;
    try {
      loopback = InetAddress.getByName(host).isLoopbackAddress();
    } catch (UnknownHostException e) {
      throw new IllegalArgumentException("unknown host: " + host, e);
    }
    if (!loopback) {
      throw new IllegalArgumentException("refusing a non-loopback address without --allow-remote"
          + " (the open-source engine has no authentication or TLS): " + host);
    }
  }

  /** Properties shared by members and clients: quick failure detection, nothing outbound. */
  private static void common(java.util.function.BiConsumer<String, String> set) {
    set.accept("hazelcast.phone.home.enabled", "false");
    set.accept("hazelcast.logging.type", "jdk");
  }

  /** The member configuration for {@code o}. */
  public static Config memberConfig(MemberOptions o) {
    Config c = new Config();
    c.setClusterName(o.cluster());
    c.setInstanceName("hflash-" + o.cluster() + "-" + o.port() + "-" + System.nanoTime());
    common(c::setProperty);
    c.setProperty("hazelcast.socket.bind.any", "false");
    c.setProperty("hazelcast.wait.seconds.before.join", "0");
    c.setProperty("hazelcast.heartbeat.interval.seconds", "1");
    c.setProperty("hazelcast.max.no.heartbeat.seconds", "6");
    c.setProperty("hazelcast.merge.first.run.delay.seconds", "5");
    c.setProperty("hazelcast.shutdownhook.enabled", "false"); // the member command leaves itself
    c.getJetConfig().setEnabled(false);
    NetworkConfig net = c.getNetworkConfig();
    net.setPort(o.port()).setPortAutoIncrement(false);
    net.getInterfaces().setEnabled(true).addInterface(o.host());
    net.setPublicAddress(o.host() + ":" + o.port());
    net.getRestApiConfig().setEnabled(false);
    JoinConfig join = net.getJoin();
    join.getMulticastConfig().setEnabled(false);
    join.getAutoDetectionConfig().setEnabled(false);
    join.getTcpIpConfig().setEnabled(true);
    join.getTcpIpConfig().addMember(o.host() + ":" + o.port());
    for (String m : o.members()) {
      join.getTcpIpConfig().addMember(m);
    }
    c.getExecutorConfig(EXECUTOR).setPoolSize(o.executorThreads()).setStatisticsEnabled(false);
    c.getMapConfig(PLACEMENTS).setBackupCount(2);
    return c;
  }

  /** A client configuration that connects to {@code members} (HOST:PORT) of {@code cluster}. */
  public static ClientConfig clientConfig(String cluster, List<String> members, boolean allowRemote) {
    for (String m : members) {
      checkAddress(hostOf(m), allowRemote);
    }
    ClientConfig c = new ClientConfig();
    c.setClusterName(cluster);
    c.setInstanceName("hflash-client-" + cluster + "-" + System.nanoTime());
    common(c::setProperty);
    c.setProperty("hazelcast.client.heartbeat.interval", "1000");
    c.setProperty("hazelcast.client.heartbeat.timeout", "6000");
    c.setProperty("hazelcast.client.invocation.timeout.seconds", "30");
    c.getNetworkConfig().setAddresses(new java.util.ArrayList<>(members));
    c.getNetworkConfig().setSmartRouting(true);
    c.getConnectionStrategyConfig().getConnectionRetryConfig().setClusterConnectTimeoutMillis(20_000)
        .setInitialBackoffMillis(100).setMaxBackoffMillis(1000);
    c.getMetricsConfig().setEnabled(false);
    return c;
  }

  /** Starts a client of {@code cluster} (the usual coordinator). */
  public static HazelcastInstance client(String cluster, List<String> members) {
    return HazelcastClient.newHazelcastClient(clientConfig(cluster, members, false));
  }
}
