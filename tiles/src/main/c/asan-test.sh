#!/bin/sh
# The native kernel's tests (NativeDecodeTilesTest, every variant this CPU runs, every dtype and shape) against
# an AddressSanitizer + UndefinedBehaviorSanitizer build of libhflash (-O1 -g, asserts on). Run from anywhere:
#   tiles/src/main/c/asan-test.sh
# The sanitizer runtimes are preloaded into the test JVM only (the JVM's own SIGSEGV use needs handle_segv=0).
# Exit code: Maven's (a sanitizer report aborts the test JVM, which fails the run).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../../.." && pwd)
CC=${CC:-cc}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
sh "$HERE/build.sh" "$OUT" asan
LIB="$OUT/hflash/native/linux-x86_64/libhflash-asan.so"
if [ ! -f "$LIB" ]; then
  echo "asan-test: no sanitizer build of libhflash (see above)" >&2
  exit 1
fi
PRELOAD="$($CC -print-file-name=libasan.so) $($CC -print-file-name=libubsan.so)"
cd "$ROOT"
# the JDK the launcher finds (JAVA_HOME when it is 25 or newer, else the usual folders)
JAVA_HOME=$(HFLASH_FIND_JAVA_ONLY=1 ./hflash)
export JAVA_HOME
mvn -B -q -o -Pnative-asan -pl tiles -am -DskipVectorTests=true -DskipScalarTests=true \
  -Dtest=NativeDecodeTilesTest -Dsurefire.failIfNoSpecifiedTests=false \
  "-Dhflash.asan.preload=$PRELOAD" "-Dhflash.asan.library=$LIB" test
echo "asan-test: NativeDecodeTilesTest passed under AddressSanitizer + UBSan ($LIB)"
