#!/usr/bin/env bash
# The kernel A/B of kernels-ab.sh timed in thread CPU time (KernelCpuTime.java) instead of JMH wall
# time: for a loaded machine, where preemption swamps wall-time differences of a few percent.
# Uses the jars kernels-ab.sh built (same $OUT and labels; run kernels-ab.sh once first, or set
# ROUNDS=0 there to only build). Prints per width, kernel and dtype the median over rounds of each
# run's minimum and median ns per key row, and after/before ratios.
#
#   OUT=/tmp/kernels-ab ROUNDS=3 docs/perf/kernels-cpu-ab.sh before=98e39ba after=HEAD
set -euo pipefail
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
OUT=${OUT:-/tmp/kernels-ab}
ROUNDS=${ROUNDS:-3}
WIDTHS=${WIDTHS:-"512 256"}
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
if [ $# -eq 0 ]; then
  set -- before=98e39ba after=HEAD
fi
labels=()
for spec in "$@"; do
  label=${spec%%=*}
  sha=$(git -C "$ROOT" rev-parse --short "${spec#*=}")
  jar="$OUT/$label-$sha.jar"
  [ -f "$jar" ] || { echo "no $jar: build it with kernels-ab.sh first" >&2; exit 1; }
  labels+=("$label")
  eval "jar_$label=\$jar"
done
echo "# $(date -u '+%F %T') UTC; $(lscpu | sed -n 's/^Model name: *//p' | head -1); $(nproc) cpus; builds: $*"
n=${#labels[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  echo "# round $r: $(uptime)"
  for w in $WIDTHS; do
    for ((i = 0; i < n; i++)); do
      label=${labels[$(( (i + r) % n ))]}
      jarvar="jar_$label"
      "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector,jdk.management -Xbatch -Xms1g -Xmx1g \
        -Dhflash.vectorBitSize="$w" -cp "${!jarvar}" "$ROOT/docs/perf/KernelCpuTime.java" 2>/dev/null \
        | grep -E '^(scores|accumulate)Vector ' >"$OUT/cpu-r$r-w$w-$label.txt"
    done
  done
done
echo "# after: $(uptime)"
python3 - "$OUT" "$ROUNDS" "$WIDTHS" "${labels[@]}" <<'PY'
import statistics, sys
out, rounds, widths, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
v = {}
for r in range(1, rounds + 1):
    for w in widths:
        for lab in labels:
            for line in open(f"{out}/cpu-r{r}-w{w}-{lab}.txt"):
                k, dt, mn, md = line.split()[:4]
                v.setdefault((w, k, dt), {}).setdefault(lab, []).append((float(mn), float(md)))
print("thread CPU ns per key row: median over rounds of each run's min / median of 15 repetitions")
print("| bits | kernel | dtype | " + " | ".join(f"{l} min / median" for l in labels) + " | " +
      " | ".join(f"{l}/{labels[0]} min, median" for l in labels[1:]) + " |")
print("|" + "---|" * (3 + 2 * len(labels) - 1))
order = ["f32", "bf16", "f16", "q8_0", "q4_0"]
for key in sorted(v, key=lambda k: (-int(k[0]), k[1], order.index(k[2]))):
    m = {l: (statistics.median(a for a, _ in v[key][l]), statistics.median(b for _, b in v[key][l])) for l in labels}
    cells = [f"{m[l][0]:.2f} / {m[l][1]:.2f}" for l in labels]
    cells += [f"{m[l][0] / m[labels[0]][0]:.3f}, {m[l][1] / m[labels[0]][1]:.3f}" for l in labels[1:]]
    print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
PY
