package hflash.cluster;

import com.hazelcast.core.HazelcastInstance;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.List;

/** Members in this JVM on free loopback ports, plus a client; closes everything it started. */
final class TestCluster implements AutoCloseable {

  final String name = "hflash-test-" + ProcessHandle.current().pid() + "-" + System.nanoTime();
  final List<ClusterMember> members = new ArrayList<>();
  final List<String> addresses = new ArrayList<>();
  final List<HazelcastInstance> clients = new ArrayList<>();
  final List<String> log = java.util.Collections.synchronizedList(new ArrayList<>());

  TestCluster(int n) {
    try {
      for (int i = 0; i < n; i++) {
        addMember();
      }
    } catch (RuntimeException e) {
      close();
      throw e;
    }
  }

  static int freePort() {
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return s.getLocalPort();
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  ClusterMember addMember() {
    int port = freePort();
    String address = "127.0.0.1:" + port;
    ClusterMember m = ClusterMember.start(
        ClusterSetup.MemberOptions.loopback(name, port, List.copyOf(addresses)), log::add);
    members.add(m);
    addresses.add(address);
    return m;
  }

  HazelcastInstance client() {
    HazelcastInstance c = ClusterSetup.client(name, addresses);
    clients.add(c);
    return c;
  }

  /** The member with this UUID. */
  ClusterMember member(String uuid) {
    for (ClusterMember m : members) {
      if (m.hazelcast().getLifecycleService().isRunning()
          && m.hazelcast().getCluster().getLocalMember().getUuid().toString().equals(uuid)) {
        return m;
      }
    }
    throw new IllegalArgumentException("no running member " + uuid);
  }

  @Override
  public void close() {
    for (HazelcastInstance c : clients) {
      try {
        c.shutdown();
      } catch (RuntimeException e) {
        // already down
      }
    }
    for (ClusterMember m : members) {
      try {
        m.terminate();
      } catch (RuntimeException e) {
        // already down
      }
    }
  }
}
