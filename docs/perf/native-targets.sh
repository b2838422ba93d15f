#!/bin/bash
# Re-takes every target of the native decode kernel in one go (run it in a quiet window; ~6-10 minutes on 2
# vCPUs), printing a table. From the repository root:   docs/perf/native-targets.sh [ROUNDS]
#  1. W1 exact, n = 131072 and 32768, f16 and f32, 1 and 2 threads: hflash (native kernel) against decodepeak
#     (../shared/tools/decodepeak.c, cc -O3 -march=native -fopenmp), the two processes interleaved ROUNDS times
#     (default 2); the ratio is the median over rounds of hflash's median over decodepeak's median (target <= 1.1).
#  2. q8_0 and q4_0 against f16, n = 131072, 1 and 2 threads, native kernel, alternating iterations in one
#     process (targets at 2 threads: q8_0 >= 1.4x, q4_0 >= 1.2x; at 1 thread both >= 1.0x).
#  3. every mode and prefill, n = 32768, 2 threads, f16: native against the Java kernels in alternating
#     iterations (the "before" of each mode is the Java path: its bits are pinned by ModeBitsTest); target >= 1.0.
#  4. the downcall's own cost.
# Everything it measures goes to a log under /tmp; the table goes to stdout. Needs cc with OpenMP.
# NATIVE_TARGETS_SIZES="32768" limits part 1 to those contexts; NATIVE_TARGETS_CP=<class path> skips the jar build.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}
LOG=$(mktemp /tmp/native-targets.XXXXXX.log)
DP=/tmp/decodepeak-native-targets
SRC=${DECODEPEAK_SRC:-../shared/tools/decodepeak.c}
[ -f "$SRC" ] || SRC=../../shared/tools/decodepeak.c # from a worktree under /work/wt
[ -f "$SRC" ] || { echo "no decodepeak.c (set DECODEPEAK_SRC)" >&2; exit 1; }
cc -O3 -march=native -fopenmp "$SRC" -o "$DP" -lm
JAVA_BIN=$(HFLASH_FIND_JAVA_ONLY=1 ./hflash)/bin/java
if [ -n "${NATIVE_TARGETS_CP:-}" ]; then # a class path to use as is (e.g. memory, tiles, engine target/classes)
  JAR=$NATIVE_TARGETS_CP
else
  ./hflash probe --threads 1 >/dev/null # builds the CLI jar when sources changed
  JAR=dist/target/hflash-cli.jar
fi
AB=("$JAVA_BIN" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx10g
    -cp "$JAR" docs/perf/NativeAb.java)
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) $(lscpu | grep 'Model name' | sed 's/  */ /g')" | tee -a "$LOG"
echo "# load at start: $(uptime | sed 's/.*load average: //')" | tee -a "$LOG"
"${AB[@]}" overhead >>"$LOG" 2>&1 || true

med() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# 1. against decodepeak
SIZES=${NATIVE_TARGETS_SIZES:-131072 32768}
for n in $SIZES; do
  for t in 1 2; do
    for r in $(seq "$ROUNDS"); do
      for dt in f16 f32; do
        "$DP" "$n" "$t" "$dt" 15 | sed "s/^/round=$r /" >>"$LOG"
      done
      "${AB[@]}" "$n" "$t" f16,f32 15 exact | sed "s/^/round=$r /" >>"$LOG" 2>&1
    done
  done
done
# 2. quantized against f16
for t in 2 1; do
  "${AB[@]}" 131072 "$t" f16,q8_0,q4_0 15 exact | sed "s/^/quant /" >>"$LOG" 2>&1
done
# 3. every mode and prefill
"${AB[@]}" 32768 2 f16 11 exact,certified,budgeted,estimated,sampled,prefill | sed "s/^/modes /" >>"$LOG" 2>&1
echo "# load at end: $(uptime | sed 's/.*load average: //')" | tee -a "$LOG"

field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
echo
echo "| target | case | hflash native median ms | yardstick median ms | ratio | goal |"
echo "|---|---|---:|---:|---:|---|"
for n in $SIZES; do
  for t in 1 2; do
    for dt in f16 f32; do
      ratios=""
      hs=""; ds=""
      for r in $(seq "$ROUNDS"); do
        h=$(grep "^round=$r n=$n threads=$t dtype=$dt mode=exact kernels=native" "$LOG" | field median_ms | head -1)
        d=$(grep "^round=$r decodepeak n=$n threads=$t dtype=$dt " "$LOG" | field median_ms | head -1)
        hs="$hs $h"; ds="$ds $d"
        ratios="$ratios $(awk -v a="$h" -v b="$d" 'BEGIN {if (b > 0) printf "%.3f", a / b; else print "nan"}')"
      done
      printf "| vs decodepeak | W1 exact %s n=%s %s thr | %s | %s | %s | <= 1.1 |\n" "$dt" "$n" "$t" \
        "$(echo $hs | tr ' ' '\n' | med)" "$(echo $ds | tr ' ' '\n' | med)" "$(echo $ratios | tr ' ' '\n' | med)"
    done
  done
done
for t in 2 1; do
  f=$(grep "^quant n=131072 threads=$t dtype=f16 mode=exact kernels=native" "$LOG" | field median_ms)
  for dt in q8_0 q4_0; do
    q=$(grep "^quant n=131072 threads=$t dtype=$dt mode=exact kernels=native" "$LOG" | field median_ms)
    goal=">= 1.0"
    [ "$t" = 2 ] && { [ "$dt" = q8_0 ] && goal=">= 1.4" || goal=">= 1.2"; }
    printf "| quantized speed vs f16 | %s n=131072 %s thr | %s | %s (f16) | %s | %s |\n" "$dt" "$t" "$q" "$f" \
      "$(awk -v a="$f" -v b="$q" 'BEGIN {printf "%.3f", a / b}')" "$goal"
  done
done
for m in exact certified budgeted estimated sampled prefill; do
  nat=$(grep "^modes .*mode=$m kernels=native" "$LOG" | field median_ms)
  jav=$(grep "^modes .*mode=$m kernels=java" "$LOG" | field median_ms)
  printf "| mode before/after | %s f16 n=32768 2 thr | %s | %s (Java) | %s | >= 1.0 |\n" "$m" "$nat" "$jav" \
    "$(awk -v a="$jav" -v b="$nat" 'BEGIN {printf "%.3f", a / b}')"
done
echo
grep "^overhead" "$LOG" || true
echo "(log: $LOG)"
