package hflash.cluster;

import java.util.Arrays;
import java.util.List;

/**
 * A cluster member in a JVM of its own, for the tests that need a real process to stop and continue (SIGSTOP,
 * SIGCONT): {@code MemberProcessMain CLUSTER PORT [MEMBER_ADDRESS...]}. Prints "member up" once it has joined and
 * then serves until the process is killed.
 */
public final class MemberProcessMain {

  private MemberProcessMain() {}

  public static void main(String[] args) throws InterruptedException {
    List<String> others = Arrays.asList(args).subList(2, args.length);
    ClusterMember m = ClusterMember.start(
        ClusterSetup.MemberOptions.loopback(args[0], Integer.parseInt(args[1]), List.copyOf(others)),
        line -> System.out.println(line));
    System.out.println("member up " + m.hazelcast().getCluster().getLocalMember().getUuid());
    System.out.flush();
    Thread.currentThread().join(); // serves until killed
  }
}
