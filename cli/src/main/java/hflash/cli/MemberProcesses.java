package hflash.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * {@code hflash member} processes on loopback for {@code cluster-bench} and its test: real JVMs
 * started from this JVM's java and class path, on free ports, each logging to its own file in a
 * temporary folder. {@link #close()} kills every process still running and deletes the folder;
 * a shutdown hook does the same if this JVM exits first, so no member outlives the bench.
 */
final class MemberProcesses implements AutoCloseable {

  final String cluster = "hflash-bench-" + ProcessHandle.current().pid() + "-" + System.nanoTime();
  final List<String> addresses = new ArrayList<>();
  private final List<Process> processes = new ArrayList<>();
  private final Path logs;
  private final Thread hook = new Thread(this::destroyAll, "hflash-bench-members");

  MemberProcesses(int count, List<String> jvmOptions) {
    try {
      logs = Files.createTempDirectory("hflash-members");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    Runtime.getRuntime().addShutdownHook(hook);
    String java = ProcessHandle.current().info().command().orElse("java");
    String classPath = System.getProperty("java.class.path");
    try {
      List<Integer> ports = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        ports.add(freePort(ports));
        addresses.add("127.0.0.1:" + ports.getLast());
      }
      for (int i = 0; i < count; i++) {
        List<String> cmd = new ArrayList<>(List.of(java));
        cmd.addAll(jvmOptions);
        cmd.addAll(List.of("-cp", classPath, Main.class.getName(), "member", "--cluster", cluster,
            "--port", String.valueOf(ports.get(i))));
        List<String> others = new ArrayList<>(addresses);
        others.remove(i);
        if (!others.isEmpty()) {
          cmd.add("--members");
          cmd.add(String.join(",", others));
        }
        Path log = logs.resolve("member-" + i + ".log");
        processes.add(new ProcessBuilder(cmd).redirectErrorStream(true)
            .redirectOutput(log.toFile()).redirectInput(ProcessBuilder.Redirect.from(nullFile())).start());
      }
    } catch (IOException | RuntimeException e) {
      close();
      throw e instanceof IOException io ? new UncheckedIOException(io) : (RuntimeException) e;
    }
  }

  private static java.io.File nullFile() {
    return new java.io.File(System.getProperty("os.name").startsWith("Windows") ? "NUL" : "/dev/null");
  }

  /** A port free on loopback now and not in {@code taken}. */
  private static int freePort(List<Integer> taken) throws IOException {
    while (true) {
      try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
        if (!taken.contains(s.getLocalPort())) {
          return s.getLocalPort();
        }
      }
    }
  }

  /** JVM flags for the members: the CLI's, plus the opens Hazelcast asks for on modern JDKs. */
  static List<String> defaultJvmOptions() {
    // a fixed heap touched at start: a member allocates ~100 KB per request, and in a fresh JVM
    // every allocation first faults in new pages (docs/DISTRIBUTED.md, overhead)
    List<String> o = new ArrayList<>(List.of("-Xms512m", "-Xmx512m", "-XX:+AlwaysPreTouch", "-XX:+UseParallelGC",
        "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "--add-opens", "java.base/java.lang=ALL-UNNAMED", "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
        "--add-exports", "java.base/jdk.internal.ref=ALL-UNNAMED",
        "--sun-misc-unsafe-memory-access=allow"));
    String bits = System.getProperty("hflash.vectorBitSize");
    if (bits != null) {
      o.add("-Dhflash.vectorBitSize=" + bits); // members must run the kernels the caller compares with
    }
    return o;
  }

  int size() {
    return processes.size();
  }

  /** Kills member {@code i} (SIGKILL: no goodbye, as a crash looks to the others). */
  void kill(int i) {
    processes.get(i).destroyForcibly();
    try {
      processes.get(i).waitFor();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * Waits until every member logged that it is up (so a client connects at its first attempt),
   * or throws when one exits or {@code nanos} pass.
   */
  void awaitUp(long nanos) {
    long deadline = System.nanoTime() + nanos;
    for (int i = 0; i < processes.size(); i++) {
      while (true) {
        String exited = exited();
        if (exited != null) {
          throw new IllegalStateException(exited);
        }
        try {
          if (Files.readString(logs.resolve("member-" + i + ".log")).contains(" up (")) {
            break;
          }
        } catch (IOException e) {
          // not written yet
        }
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException("member " + i + " did not start: " + tail(i));
        }
        try {
          Thread.sleep(20);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IllegalStateException("interrupted", e);
        }
      }
    }
  }

  /** Whether any member process has exited (e.g. failed to start). */
  String exited() {
    for (int i = 0; i < processes.size(); i++) {
      if (!processes.get(i).isAlive()) {
        return "member " + i + " exited with " + processes.get(i).exitValue() + ": " + tail(i);
      }
    }
    return null;
  }

  /** The last lines of member {@code i}'s log. */
  String tail(int i) {
    try {
      List<String> lines = Files.readAllLines(logs.resolve("member-" + i + ".log"));
      return String.join(" | ", lines.subList(Math.max(0, lines.size() - 5), lines.size()));
    } catch (IOException e) {
      return "(no log)";
    }
  }

  private void destroyAll() {
    for (Process p : processes) {
      p.destroyForcibly();
    }
    for (Process p : processes) {
      try {
        p.waitFor();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    if (logs != null) {
      try (Stream<Path> files = Files.walk(logs)) {
        files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
      } catch (IOException e) {
        // best effort: a temp folder
      }
    }
  }

  @Override
  public void close() {
    destroyAll();
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException e) {
      // shutting down already: the hook runs anyway
    }
  }
}
