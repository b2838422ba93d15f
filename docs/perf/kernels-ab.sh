#!/usr/bin/env bash
# A/B of the decode kernels across builds: ns per key row of the score and p.V kernels
# (KernelRowBench: d = 128, a GQA group of 4 heads, 64-key tiles cycled in L2) for f32, bf16,
# f16, q8_0 and q4_0, at 512 and 256 bits. Builds every ref's benchmarks.jar once (from
# `git archive`, in a scratch folder: no worktree, nothing installed into ~/.m2), then runs the
# builds in alternating order, round after round, in the same window, and prints the median of
# the rounds per build and its ratio to the first build. Records `uptime` before every round.
#
#   docs/perf/kernels-ab.sh                                # before vs after, 3 rounds, 512 and 256 bits
#   docs/perf/kernels-ab.sh before=98e39ba main=cc5b53f:inline after=HEAD   # also the helper version
#   ROUNDS=5 WIDTHS="512" docs/perf/kernels-ab.sh before=98e39ba after=HEAD
#   JVM_EXTRA=-Dhflash.vectorRegisters=16 WIDTHS=256 docs/perf/kernels-ab.sh   # the AVX2 shapes (2 x 4)
#
# A build is label=ref, or label=ref:inline to run it with the JIT flags the launcher of that era
# passed (-XX:CompileCommand=inline,hflash.tiles.VectorLoads::*). The builds of interest:
#   before = 98e39ba  the per-dtype kernels (403e616) plus KernelRowBench itself (default)
#   main   = cc5b53f  one body per shape with VectorLoads helpers, run with the inline flag
#   after  = HEAD     the load step written out in each shape (no helper returns a vector), no flag
#                     (default)
# The ratio columns are each build's median over the rounds divided by the first build's.
# Takes about 8-10 minutes on a quiet 2-core machine with the defaults (2 builds of ~2 min, then
# 3 rounds x 2 widths x 2 builds x ~35 s); a third build adds ~4 minutes. Output: a table on stdout,
# raw JMH JSON and logs under $OUT (default /tmp/kernels-ab; built jars are reused by label and sha).
set -euo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
OUT=${OUT:-/tmp/kernels-ab}
ROUNDS=${ROUNDS:-3}
WIDTHS=${WIDTHS:-"512 256"}
# many short iterations, and the table takes the median iteration: a loaded machine's preemptions
# inflate some iterations' averages many times, but not the median (sample mode would be robust
# too, but it records whole nanoseconds per key row, too coarse at 5-20 ns for a 3 % question)
# -Xbatch (in the fork's flags below): a warm-up iteration waits for each compilation, so a loaded
# machine cannot leave the kernels interpreted or in C1 code into the measurement (seen: 1000x
# figures with background compilation at load 16 on 2 cores)
JMH_OPTS=${JMH_OPTS:-"-f 1 -wi 2 -w 400ms -i 10 -r 200ms"}
INLINE_FLAGS="-XX:CompileCommand=quiet -XX:CompileCommand=inline,hflash.tiles.VectorLoads::*"
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
JAVA="$JAVA_HOME/bin/java"
if [ $# -eq 0 ]; then
  set -- before=98e39ba after=HEAD
fi
mkdir -p "$OUT"

labels=()
declare -A flags
for spec in "$@"; do
  label=${spec%%=*}
  ref=${spec#*=}
  flag=""
  if [[ "$ref" == *:inline ]]; then
    ref=${ref%:inline}
    flag=$INLINE_FLAGS
  fi
  labels+=("$label")
  flags[$label]=$flag
  sha=$(git -C "$ROOT" rev-parse --short "$ref")
  jar="$OUT/$label-$sha.jar"
  if [ ! -f "$jar" ]; then
    src="$OUT/src-$sha"
    rm -rf "$src" && mkdir -p "$src"
    git -C "$ROOT" archive "$sha" | tar -x -C "$src"
    echo "building $label ($sha) ..." >&2
    (cd "$src" && mvn -B -q -o -pl test -am package -DskipTests >"$OUT/build-$label.log" 2>&1) \
      || { echo "build of $label failed, see $OUT/build-$label.log" >&2; exit 1; }
    cp "$src/test/target/benchmarks.jar" "$jar"
    rm -rf "$src"
  fi
  eval "jar_$label=\$jar"
done

echo "# $(date -u '+%F %T') UTC; $(lscpu | sed -n 's/^Model name: *//p' | head -1); $(nproc) cpus"
echo "# builds: $*; rounds $ROUNDS; widths $WIDTHS; JMH $JMH_OPTS; JVM ${JVM_EXTRA:-(defaults)}"
n=${#labels[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  echo "# round $r: $(uptime)"
  for w in $WIDTHS; do
    for ((i = 0; i < n; i++)); do
      # alternate the order every round so no build always runs first or last
      label=${labels[$(( (i + r) % n ))]}
      jarvar="jar_$label"
      json="$OUT/r$r-w$w-$label.json"
      # shellcheck disable=SC2086
      "$JAVA" -jar "${!jarvar}" KernelRowBench -p headDim=128 $JMH_OPTS -rf json -rff "$json" \
        -jvmArgsAppend "-Xms1g -Xmx1g -Xbatch -Dhflash.vectorBitSize=$w ${JVM_EXTRA:-} ${flags[$label]}" >"$OUT/r$r-w$w-$label.txt" 2>&1 \
        || { echo "run $label w=$w failed, see $OUT/r$r-w$w-$label.txt" >&2; exit 1; }
    done
  done
done
echo "# after: $(uptime)"

# table: per build, the median over the rounds of each run's median iteration, and its ratio to
# the first build's
python3 - "$OUT" "$ROUNDS" "$WIDTHS" "${labels[@]}" <<'EOF'
import json, statistics, sys
out, rounds, widths, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
vals = {}
for r in range(1, rounds + 1):
    for w in widths:
        for lab in labels:
            with open(f"{out}/r{r}-w{w}-{lab}.json") as f:
                for res in json.load(f):
                    bench = res["benchmark"].rsplit(".", 1)[1]
                    key = (w, bench, res["params"]["dtype"])
                    iters = [x for fork in res["primaryMetric"]["rawData"] for x in fork]
                    vals.setdefault(key, {}).setdefault(lab, []).append(statistics.median(iters))
head = "| bits | kernel | dtype | " + " | ".join(f"{l} ns/row" for l in labels) + " | " + \
    " | ".join(f"{l}/{labels[0]} | paired" for l in labels[1:]) + " |"
print("ns per key row: median over the rounds of each run's median iteration; paired: the median")
print("over the rounds of the ratio of the two runs of one round (adjacent in time, so a slow phase")
print("of a shared machine that spans both runs cancels)")
print(head)
print("|" + "---|" * (3 + 3 * len(labels) - 2))
for key in sorted(vals, key=lambda k: (-int(k[0]), k[1], ["f32", "bf16", "f16", "q8_0", "q4_0"].index(k[2]))):
    med = {l: statistics.median(vals[key][l]) for l in labels}
    base = vals[key][labels[0]]
    cells = [f"{med[l]:.3f}" for l in labels]
    for l in labels[1:]:
        paired = statistics.median(x / b for x, b in zip(vals[key][l], base))
        cells += [f"{med[l] / med[labels[0]]:.3f}", f"{paired:.3f}"]
    print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
EOF
