package hflash.cli;

import hflash.cluster.ClusterMember;
import hflash.cluster.ClusterSetup;
import hflash.io.UsageException;
import java.io.PrintWriter;
import java.time.LocalTime;
import java.time.temporal.ChronoUnit;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code hflash member}: one long-running member of an hflash cluster (docs/DISTRIBUTED.md). Holds
 * shard copies of distributed KV caches in its own off-heap memory and runs the partial attention
 * coordinators ask for. Logs joins, leaves and the shard copies it takes or drops to stderr;
 * Ctrl-C (SIGINT/SIGTERM) leaves the cluster cleanly.
 */
@Command(
    name = "member",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Run one member of an hflash cluster until Ctrl-C: it holds shard copies of distributed KV caches",
      "off-heap and computes partial attention for coordinators. Binds to loopback unless --allow-remote",
      "(the open-source engine has no authentication or TLS; see docs/DISTRIBUTED.md)."
    })
final class MemberCommand implements Callable<Integer> {

  @Option(names = "--cluster", required = true, paramLabel = "NAME", description = "Cluster name; members and coordinators must agree.")
  String cluster;

  @Option(names = "--port", defaultValue = "5701", paramLabel = "P", description = "Port to bind (default ${DEFAULT-VALUE}).")
  int port;

  @Option(names = "--members", split = ",", paramLabel = "HOST:PORT", description = "The other members to join (TCP/IP join; no multicast).")
  List<String> members = List.of();

  @Option(names = "--memory", paramLabel = "BYTES", description = "Most off-heap bytes of shard copies this member takes, e.g. 8G (default: no limit).")
  String memory;

  @Option(names = "--host", defaultValue = "127.0.0.1", description = "Address to bind (default ${DEFAULT-VALUE}); a non-loopback one needs --allow-remote.")
  String host;

  @Option(names = "--allow-remote", description = "Allow a non-loopback --host or --members address (no authentication, no TLS: use a private network).")
  boolean allowRemote;

  @Option(names = "--threads", defaultValue = "4", description = "Threads that run shard requests (default ${DEFAULT-VALUE}).")
  int threads;

  @Spec CommandSpec spec;

  @Override
  public Integer call() throws InterruptedException {
    long bytes = memory == null ? Long.MAX_VALUE : ModeOptions.parseBytes(memory);
    ClusterSetup.MemberOptions options;
    try {
      options = new ClusterSetup.MemberOptions(cluster, host, port, members, bytes, allowRemote, threads);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage(), e);
    }
    PrintWriter err = spec.commandLine().getErr();
    ClusterMember member = ClusterMember.start(options, line -> {
      synchronized (err) {
        err.println("hflash member " + LocalTime.now().truncatedTo(ChronoUnit.MILLIS) + " " + line);
        err.flush();
      }
    });
    CountDownLatch left = new CountDownLatch(1);
    Thread hook = new Thread(() -> {
      err.println("hflash member: leaving the cluster");
      err.flush();
      member.close();
      left.countDown();
    }, "hflash-member-leave");
    Runtime.getRuntime().addShutdownHook(hook);
    member.hazelcast().getLifecycleService().addLifecycleListener(e -> {
      if (e.getState() == com.hazelcast.core.LifecycleEvent.LifecycleState.SHUTDOWN) {
        left.countDown();
      }
    });
    left.await();
    return 0;
  }
}
