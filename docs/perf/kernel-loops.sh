#!/usr/bin/env bash
# The inner loops C2 compiled for one kernel shape, with a throughput estimate: shows whether the
# accumulators stay in vector registers (FMAs on registers, no vector stack access in the loop) and
# counts the instructions and uops per row, which the in-cache kernel times follow on this guest
# (no hardware counters here). Runs KernelRowBench briefly with -XX:+PrintAssembly for the tiles
# package, rebuilds the method's code from the raw bytes the fcml disassembler prints, disassembles
# it with objdump (kernel_loops.py) and runs llvm-mca on each loop (skylake-avx512 model: the
# LLVM of this Debian has no Zen 4/5 model; the counts, not the cycles, are the portable part).
# Loop 1 is usually the inner loop; the longer ones are the loops around it (C2 strip-mines a loop
# into an outer one with a safepoint poll, and range-check elimination adds pre and post loops).
#
#   docs/perf/kernel-loops.sh                                   # bf16 p.V 2x4 at 512 bits, HEAD's jar
#   JAR=/tmp/kernels-ab/before-98e39ba.jar docs/perf/kernel-loops.sh accumulateVector bf16 512 halfx2x4
#   docs/perf/kernel-loops.sh scoresVector f16 256 scores4Vec4Heads
#
# Needs: apt packages libhsdis0-fcml, binutils (objdump), llvm (llvm-mca). JAR defaults to
# test/target/benchmarks.jar (mvn -pl test -am package -DskipTests).
set -euo pipefail
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
BENCH=${1:-accumulateVector}
DTYPE=${2:-bf16}
WIDTH=${3:-512}
METHOD=${4:-accumulate2Vec4Heads}
JAR=${JAR:-$ROOT/test/target/benchmarks.jar}
OUT=${OUT:-/tmp/kernel-loops}
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
HSDIS=$(ls /usr/lib/*/libhsdis.so.0 2>/dev/null | head -1 || true)
[ -n "$HSDIS" ] || { echo "libhsdis.so.0 not found: install the Debian package libhsdis0-fcml" >&2; exit 1; }
for tool in objdump llvm-mca; do
  command -v $tool >/dev/null || { echo "$tool not found (Debian: binutils, llvm)" >&2; exit 1; }
done
mkdir -p "$OUT/lib"
ln -sf "$HSDIS" "$OUT/lib/hsdis-amd64.so"
log="$OUT/$BENCH-$DTYPE-$WIDTH.log"
# -TieredCompilation: the method gets one C2 compilation; -Xbatch: it is done before the run ends
LD_LIBRARY_PATH="$OUT/lib" "$JAVA_HOME/bin/java" -jar "$JAR" "KernelRowBench.$BENCH" -p headDim=128 \
  -p dtype="$DTYPE" -f 1 -wi 2 -w 400ms -i 1 -r 200ms -jvmArgsAppend "-Xbatch -Dhflash.vectorBitSize=$WIDTH \
  -XX:+UnlockDiagnosticVMOptions -XX:-TieredCompilation -XX:CompileCommand=print,hflash.tiles.*::*" >"$log" 2>&1
echo "# $BENCH $DTYPE $WIDTH bits, $METHOD ($(basename "$JAR")); $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
python3 "$ROOT/docs/perf/kernel_loops.py" "$log" "$METHOD" "$OUT/$METHOD-$DTYPE-$WIDTH"
for f in "$OUT/$METHOD-$DTYPE-$WIDTH"-loop*.s; do
  llvm-mca -mcpu=skylake-avx512 -iterations=300 "$f" 2>/dev/null \
    | awk -v f="$(basename "$f")" '/Total Cycles/{c=$3} /Total uOps/{u=$3}
        END{printf "# %s: llvm-mca %.1f uops, %.2f cycles per iteration\n", f, u/300, c/300}'
done
