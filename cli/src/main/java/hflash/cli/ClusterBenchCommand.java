package hflash.cli;

import hflash.bench.ResourceException;
import hflash.bench.Resources;
import com.hazelcast.core.HazelcastInstance;
import hflash.bench.Format;
import hflash.bench.ModeSpec;
import hflash.bench.Samples;
import hflash.bench.Stopwatch;
import hflash.bench.Workload;
import hflash.cluster.ClusterReport;
import hflash.cluster.ClusterSetup;
import hflash.cluster.DistributedAttention;
import hflash.cluster.DistributedKvCache;
import hflash.cluster.ShardLostException;
import hflash.engine.AttentionConfig;
import hflash.engine.DecodeAttention;
import hflash.io.UsageException;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code hflash cluster-bench}: starts {@code --members} member JVMs on loopback, fills a
 * distributed cache and a local one with the same workload, and times decode in each mode on both
 * in the same run, interleaved call by call so machine noise hits both alike. With
 * {@code --kill-member-after S} it kills one member process (SIGKILL) S seconds into the timed
 * loop and counts the failovers, the outputs that differ from the no-fault output and the
 * positions left without a copy.
 */
@Command(
    name = "cluster-bench",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Time distributed decode (KV cache sharded over member JVMs started on loopback) against local",
      "decode of the same data in the same run; optionally kill a member mid-loop."
    })
final class ClusterBenchCommand implements Callable<Integer> {

  @Option(names = "--members", required = true, paramLabel = "M", description = "Member JVMs to start on loopback.")
  int members;

  @Option(names = "--replicas", defaultValue = "2", paramLabel = "R", description = "Copies of each shard (default ${DEFAULT-VALUE}, at most M).")
  int replicas;

  @Option(names = "--context", defaultValue = "32768", description = "Cached positions n (default ${DEFAULT-VALUE}).")
  int context;

  @Mixin SharedOptions.Shape shape;

  @Mixin SharedOptions.Dtype dtypeOption;

  @Option(names = "--tile", defaultValue = "128", description = "Tokens per tile; a shard block is one tile (default ${DEFAULT-VALUE}).")
  int tile;

  @Option(names = "--block-tiles", defaultValue = "1", paramLabel = "B", description = "Tiles per placement block: block b lives on shard b % M (default ${DEFAULT-VALUE}; context/(M*tile) makes each shard one contiguous range).")
  int blockTiles;

  @Option(names = "--workload", defaultValue = "random", description = "random or structured (default ${DEFAULT-VALUE}).")
  String workload;

  @Mixin ModeOptions modeOptions;

  @Option(names = "--threads", paramLabel = "T", description = "Threads of the local decode it is compared with (default: M, the members' parallelism).")
  Integer threads;

  @Option(names = "--seed", defaultValue = "42", description = "Seed of the workload (default ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--warmup", defaultValue = "100", description = "Warm-up calls of each side per mode, and at least 2 s of them (default ${DEFAULT-VALUE}: the members' JVMs need"
      + " about that many calls before Hazelcast's request path is compiled; with 20, 8192 keys showed 4 ms more per call).")
  int warmup;

  @Option(names = "--iterations", defaultValue = "15", description = "Timed calls of each side per mode (default ${DEFAULT-VALUE}).")
  int iterations;

  @Option(names = "--settle-ms", defaultValue = "3", paramLabel = "MS", description = "Pause before each timed call of either side (default ${DEFAULT-VALUE}; 0 = back to back): the local"
      + " decode's worker threads spin for up to about 0.4-2 ms after a call (WorkerPool) and would take a core from the members at the start of the distributed call that follows.")
  double settleMs;

  @Option(names = "--kill-member-after", paramLabel = "S", description = "Kill one member process S seconds into the timed loop (one mode only).")
  Double killAfter;

  @Mixin SharedOptions.Json jsonOption;

  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    UsageException.positive("--members", members);
    UsageException.positive("--replicas", replicas);
    SharedOptions.Shape.checkPositive(context, shape.heads, shape.kvHeads, shape.dim);
    SharedOptions.Shape.checkGroups(shape.heads, shape.kvHeads);
    UsageException.positive("--iterations", iterations);
    if (warmup < 0) {
      throw new UsageException("--warmup must be >= 0: " + warmup);
    }
    if (!(settleMs >= 0)) {
      throw new UsageException("--settle-ms must be >= 0: " + settleMs);
    }
    if (replicas > members) {
      throw new UsageException("--replicas must be at most --members: " + replicas + " > " + members);
    }
    int localThreads = threads == null ? members : UsageException.positive("--threads", threads);
    List<ModeSpec> specs = new java.util.ArrayList<>(modeOptions.specs());
    // output-error targets are not offered over a distributed cache (DistributedAttention says why)
    boolean explicitTarget = specs.stream().anyMatch(m -> m.config().maxError() > 0) && specs.size() == 1;
    if (explicitTarget) {
      throw new UsageException("cluster-bench does not support estimated or certified --max-error: "
          + specs.get(0).label());
    }
    specs.removeIf(m -> !hflash.cluster.DistributedAttention.supports(m.config()));
    if (specs.isEmpty()) {
      throw new UsageException("cluster-bench: no mode left to time (estimated is not supported over a cluster)");
    }
    if (killAfter != null && (specs.size() != 1 || !(killAfter >= 0))) {
      throw new UsageException("--kill-member-after needs one --mode and S >= 0: " + killAfter);
    }
    Workload.checkName(workload);
    KvCacheLayout layout;
    try {
      layout = new KvCacheLayout(1, shape.kvHeads, shape.dim, context, dtypeOption.dtype, tile);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage(), e);
    }
    PrintWriter err = spec.commandLine().getErr();
    Workload w = Workload.create(workload, new Workload.Shape(context, shape.heads, shape.kvHeads, shape.dim), seed);
    List<Map<String, Object>> results = new ArrayList<>();
    Resources.requireFits("the local KV cache", layout);
    try (KvCache local = KvCache.allocate(layout);
         DecodeAttention localAtt = DecodeAttention.create(local, shape.heads, localThreads);
         MemberProcesses procs = new MemberProcesses(members, MemberProcesses.defaultJvmOptions())) {
      w.fill(local, 0, line -> { });
      HazelcastInstance client = connect(procs, err);
      try {
        DistributedKvCache cache = DistributedKvCache.create(client, "bench", 1, shape.kvHeads,
            shape.dim, context, dtypeOption.dtype, tile, new DistributedKvCache.Options(replicas, 0, UsageException.positive("--block-tiles", blockTiles)));
        cache.setLog(line -> {
          if (!jsonOption.json) {
            err.println("cluster-bench: " + line);
          }
        });
        copy(local, cache);
        DistributedAttention att = DistributedAttention.create(cache, shape.heads);
        double rpcUs = rpcMedianUs(att, cache);
        for (ModeSpec m : specs) {
          results.add(run(m.config(), w.query(), localAtt, att, cache, procs, rpcUs, localThreads));
        }
        if (cache.lostShards().isEmpty()) {
          cache.close();
        } else {
          cache.detach();
        }
      } finally {
        client.shutdown();
      }
    }
    print(results);
    return 0;
  }

  private HazelcastInstance connect(MemberProcesses procs, PrintWriter err) {
    long deadline = System.nanoTime() + 90_000_000_000L;
    procs.awaitUp(90_000_000_000L);
    HazelcastInstance client = ClusterSetup.client(procs.cluster, procs.addresses);
    while (client.getCluster().getMembers().size() < members) {
      String exited = procs.exited();
      if (exited != null || System.nanoTime() > deadline) {
        client.shutdown();
        throw new IllegalStateException(exited != null ? exited : "only "
            + client.getCluster().getMembers().size() + " of " + members + " members joined");
      }
      sleep(50);
    }
    return client;
  }

  /** Copies the local cache's rows into the distributed one (exact: every stored value is a float). */
  private static void copy(KvCache local, DistributedKvCache cache) {
    int n = local.length(0);
    int heads = local.layout().kvHeads(), d = local.layout().headDim(), row = heads * d;
    int batch = 1024;
    float[] k = new float[batch * row], v = new float[batch * row];
    for (int p = 0; p < n; p += batch) {
      int c = Math.min(batch, n - p);
      for (int i = 0; i < c; i++) {
        for (int h = 0; h < heads; h++) {
          for (int x = 0; x < d; x++) {
            k[i * row + h * d + x] = local.key(0, h, p + i, x);
            v[i * row + h * d + x] = local.value(0, h, p + i, x);
          }
        }
      }
      cache.append(0, c, c == batch ? k : Arrays.copyOf(k, c * row), c == batch ? v : Arrays.copyOf(v, c * row));
    }
  }

  private static double rpcMedianUs(DistributedAttention att, DistributedKvCache cache) {
    String member = cache.placement().owners().getFirst().getFirst();
    for (int i = 0; i < 100; i++) {
      att.ping(member);
    }
    double[] t = new double[300];
    for (int i = 0; i < t.length; i++) {
      t[i] = att.ping(member);
    }
    return new Samples(t).percentile(0.5) / 1e3;
  }

  private Map<String, Object> run(AttentionConfig config, float[] q, DecodeAttention localAtt,
      DistributedAttention att, DistributedKvCache cache, MemberProcesses procs, double rpcUs,
      int localThreads) {
    int size = shape.heads * shape.dim;
    float[] reference = new float[size], out = new float[size], localOut = new float[size];
    att.decode(0, q, reference, config); // the no-fault output every later call must equal
    localAtt.decode(0, q, localOut, context, config);
    double relErr = relErr(reference, localOut);
    // warm up: --warmup calls, at least 2 s, and until this JVM has collected its young
    // generation once (at most 30 s more): before that every allocation of a call (requests,
    // replies, ~150 KB at W1) touches heap pages for the first time and the page faults cost the
    // coordinator about as much CPU as the rest of the call
    long warmStart = System.nanoTime();
    long collections = youngCollections();
    for (int i = 0; i < warmup || System.nanoTime() - warmStart < Stopwatch.MIN_WARMUP_NANOS
        || (youngCollections() == collections && System.nanoTime() - warmStart < 30_000_000_000L); i++) {
      localAtt.decode(0, q, localOut, context, config);
      att.decode(0, q, out, config);
    }
    long failoversBefore = cache.failovers();
    ScheduledExecutorService killer = null;
    AtomicLong killedAt = new AtomicLong();
    long start = System.nanoTime();
    if (killAfter != null) {
      killer = Executors.newSingleThreadScheduledExecutor();
      killer.schedule(() -> {
        procs.kill(procs.size() - 1);
        killedAt.set(System.nanoTime());
      }, (long) (killAfter * 1e9), TimeUnit.NANOSECONDS);
    }
    List<Double> localNs = new ArrayList<>(), clusterNs = new ArrayList<>(), memberNs = new ArrayList<>();
    List<Double> requestNs = new ArrayList<>(), replyNs = new ArrayList<>(), coordinatorNs = new ArrayList<>();
    List<Double> memberCpuNs = new ArrayList<>(), coordinatorCpuNs = new ArrayList<>();
    java.lang.management.ThreadMXBean cpu = java.lang.management.ManagementFactory.getThreadMXBean();
    int mismatches = 0;
    long payloadPerLayer = 0, bytesRead = 0, payloadSent = 0, payloadReceived = 0;
    int asked = 0, skipped = 0;
    String error = null;
    try {
      for (int i = 0; ; i++) {
        boolean killDone = killAfter == null
            || (killedAt.get() != 0 && System.nanoTime() - killedAt.get() > 1_000_000_000L);
        if (i >= iterations && killDone) {
          break;
        }
        if (killAfter != null && System.nanoTime() - start > (long) ((killAfter + 120) * 1e9)) {
          error = "the member kill did not happen in time";
          break;
        }
        settle();
        long t0 = System.nanoTime();
        localAtt.decode(0, q, localOut, context, config);
        long t1local = System.nanoTime();
        settle();
        long c1 = cpu.getCurrentThreadCpuTime();
        long t1 = System.nanoTime();
        try {
          att.decode(0, q, out, config);
        } catch (ShardLostException e) {
          error = e.getMessage();
          break;
        }
        long t2 = System.nanoTime();
        long c2 = cpu.getCurrentThreadCpuTime();
        localNs.add((double) (t1local - t0));
        clusterNs.add((double) (t2 - t1));
        if (!Arrays.equals(out, reference)) {
          mismatches++;
        }
        ClusterReport r = att.report();
        if (r.failovers() == 0) {
          long most = 0, slowest = 0, slowestCpu = 0;
          ClusterReport.MemberCall last = null; // the reply that arrived last: the call's critical path
          for (ClusterReport.MemberCall c : r.calls()) {
            most = Math.max(most, c.payloadSent() + c.payloadReceived());
            slowest = Math.max(slowest, c.memberNanos());
            slowestCpu = Math.max(slowestCpu, c.memberCpuNanos());
            if (last == null || c.roundTripNanos() > last.roundTripNanos()) {
              last = c;
            }
          }
          memberNs.add((double) slowest);
          memberCpuNs.add((double) slowestCpu);
          coordinatorCpuNs.add((double) (c2 - c1));
          if (last != null) {
            requestNs.add((double) last.requestNanos());
            replyNs.add((double) last.replyNanos());
            coordinatorNs.add((double) (t2 - t1 - last.roundTripNanos()));
          }
          payloadPerLayer = most;
          payloadSent = r.payloadSent();
          payloadReceived = r.payloadReceived();
          bytesRead = r.bytesRead();
          asked = r.membersAsked();
          skipped = r.shardsSkipped();
        }
      }
    } finally {
      if (killer != null) {
        killer.shutdownNow();
      }
    }
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("members", members);
    m.put("replicas", replicas);
    m.put("context", context);
    m.put("mode", config.mode().id());
    double clusterMs = clusterNs.isEmpty() ? Double.NaN : median(clusterNs) / 1e6;
    double localMs = localNs.isEmpty() ? Double.NaN : median(localNs) / 1e6;
    m.put("medianMs", Format.finite(clusterMs));
    m.put("localMedianMs", Format.finite(localMs));
    m.put("overheadMs", Format.finite(clusterMs - localMs));
    m.put("rpcMedianUs", Format.finite(rpcUs));
    m.put("payloadBytesPerLayer", payloadPerLayer);
    m.put("bytesRead", bytesRead);
    m.put("membersAsked", asked);
    // the slowest member's own time for its shards (request received to reply ready): what is
    // left of medianMs beyond it is the round trip and the merge
    m.put("memberMedianMs", Format.finite(memberNs.isEmpty() ? Double.NaN : median(memberNs) / 1e6));
    // where the rest goes, on the critical path (the member whose reply came last): submitted
    // here to started there, finished there to in hand here, and the coordinator's own work
    // (validation, requests, merge) outside the round trip
    m.put("requestMedianUs", Format.finite(requestNs.isEmpty() ? Double.NaN : median(requestNs) / 1e3));
    m.put("replyMedianUs", Format.finite(replyNs.isEmpty() ? Double.NaN : median(replyNs) / 1e3));
    m.put("coordinatorMedianUs", Format.finite(coordinatorNs.isEmpty() ? Double.NaN : median(coordinatorNs) / 1e3));
    // CPU time (immune to waiting for a core): the slowest member's task thread, and the
    // coordinator's calling thread for the whole call (validation, requests, replies, merge)
    m.put("memberCpuMedianMs", Format.finite(memberCpuNs.isEmpty() ? Double.NaN : median(memberCpuNs) / 1e6));
    m.put("coordinatorCpuMedianUs", Format.finite(coordinatorCpuNs.isEmpty() ? Double.NaN : median(coordinatorCpuNs) / 1e3));
    m.put("shardsSkipped", skipped);
    m.put("blockTiles", blockTiles);
    m.put("payloadBytesSent", payloadSent);
    m.put("payloadBytesReceived", payloadReceived);
    m.put("localThreads", localThreads);
    m.put("settleMs", settleMs);
    m.put("iterations", clusterNs.size());
    m.put("heads", shape.heads);
    m.put("kvHeads", shape.kvHeads);
    m.put("dim", shape.dim);
    m.put("dtype", dtypeOption.dtype.id());
    m.put("tile", tile);
    m.put("workload", workload);
    m.put("relErrVsLocal", Format.finite(relErr));
    if (killAfter != null) {
      m.put("killMemberAfterS", killAfter);
      m.put("failovers", cache.failovers() - failoversBefore);
      m.put("mismatches", mismatches);
      m.put("lostPositions", cache.lostPositions());
      cache.awaitRepairs();
      m.put("copiesRecreated", cache.copiesMade());
    } else {
      m.put("mismatches", mismatches);
    }
    if (error != null) {
      m.put("error", error);
    }
    return m;
  }

  /** Collections of this JVM's garbage collectors so far. */
  private static long youngCollections() {
    long n = 0;
    for (var gc : java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()) {
      n += Math.max(0, gc.getCollectionCount());
    }
    return n;
  }

  /** Lets the previous call's spinning threads park before the next timed call. */
  private void settle() {
    if (settleMs > 0) {
      java.util.concurrent.locks.LockSupport.parkNanos((long) (settleMs * 1e6));
    }
  }

  private static double median(List<Double> xs) {
    double[] a = xs.stream().mapToDouble(Double::doubleValue).toArray();
    return new Samples(a).percentile(0.5);
  }

  private static double relErr(float[] a, float[] b) {
    double num = 0, den = 0;
    for (int i = 0; i < a.length; i++) {
      num += (double) (a[i] - b[i]) * (a[i] - b[i]);
      den += (double) b[i] * b[i];
    }
    return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    }
  }

  private void print(List<Map<String, Object>> results) {
    PrintWriter out = spec.commandLine().getOut();
    for (Map<String, Object> m : results) {
      if (jsonOption.json) {
        out.print(JsonLine.of(m) + "\n");
      } else {
        Format.Table t = new Format.Table("cluster-bench", "value");
        m.forEach((k, v) -> t.row(k, String.valueOf(v)));
        out.print(t + "\n");
      }
    }
    out.flush();
  }
}
