#!/usr/bin/env bash
# Issue 23's batched-decode bench (B 16, P 32768, S 512, W1 f16) with two CLI jars alternated run by
# run, for an A/B on a shared machine: prints each run's figures and, per jar, the median over runs
# of medianMs, ratioToCompute, cpuMs and speedupVsSeparate. Build each jar first (./hflash --help on
# the commit, then copy dist/target/hflash-cli.jar away), e.g.
#
#   ROUNDS=5 THREADS=2 docs/perf/cascade-ab.sh /tmp/base.jar /tmp/new.jar
set -euo pipefail
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-2}
JAVA=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin/java
[ $# -ge 2 ] || { echo "usage: $0 A.jar B.jar [more jars]" >&2; exit 2; }
OUT=$(mktemp -d)
echo "# $(date -u '+%F %T') UTC; $(lscpu | sed -n 's/^Model name: *//p' | head -1); $(nproc) cpus; threads $THREADS; jars: $*"
for ((r = 1; r <= ROUNDS; r++)); do
  n=$#
  for ((i = 0; i < n; i++)); do
    idx=$(( (i + r) % n + 1 )) # rotate the order round by round
    jar=${!idx}
    load=$(uptime | sed 's/.*load average: //')
    "$JAVA" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -jar "$jar" bench \
      --sequences 16 --shared-prefix 32768 --suffix 512 --dtype f16 --threads "$THREADS" --json 2>/dev/null \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sys.argv[1], sys.argv[2], *(d[k] for k in ["medianMs","ratioToCompute","cpuMs","speedupVsSeparate","computeProbeGFmas","relError"]))' \
        "$idx" "$load" | tee -a "$OUT/runs.txt" | awk -v r="$r" -v jar="$jar" -F' ' \
        '{ printf "round %d %s (load %s %s %s): medianMs %.2f ratioToCompute %.3f cpuMs %.1f speedup %.2f probe %.1f relError %s\n", r, jar, $2, $3, $4, $(NF-5), $(NF-4), $(NF-3), $(NF-2), $(NF-1), $NF }'
  done
done
python3 - "$OUT/runs.txt" "$@" <<'EOF'
import sys, statistics
runs = [l.split() for l in open(sys.argv[1])]
jars = sys.argv[2:]
for i, jar in enumerate(jars, 1):
    rows = [r for r in runs if r[0] == str(i)]
    col = lambda k: statistics.median(float(r[-6 + k]) for r in rows)
    print(f"{jar}: median of {len(rows)} runs: medianMs {col(0):.2f} ratioToCompute {col(1):.3f} cpuMs {col(2):.1f} speedupVsSeparate {col(3):.2f}")
EOF
