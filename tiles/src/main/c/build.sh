#!/bin/sh
# Builds libhflash.so (the optional native decode kernels) into OUT_DIR/hflash/native/linux-x86_64/, where the
# jar plugin packages it. Called by the tiles module's build (exec-maven-plugin, phase generate-resources);
# run it by hand the same way. Never fails the build: without a C compiler, or on a machine this script has no
# variants for, it prints why and exits 0 (the Java kernels then run, and say so once in the log).
#   build.sh OUT_DIR [asan]     asan: -fsanitize=address,undefined -O1 -g, asserts on (tests/run-asan.sh uses it)
set -u
OUT=${1:?usage: build.sh OUT_DIR [asan]}
MODE=${2:-release}
SRC=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-}
if [ -z "$CC" ]; then
  for c in cc gcc clang; do
    if command -v "$c" >/dev/null 2>&1; then CC=$c; break; fi
  done
fi
if [ -z "$CC" ]; then
  echo "[hflash native] no C compiler (cc, gcc, clang) on PATH: skipping libhflash.so; the Java kernels will run"
  exit 0
fi
ARCH=$(uname -m)
OS=$(uname -s | tr 'A-Z' 'a-z')
if [ "$ARCH" != "x86_64" ] || [ "$OS" != "linux" ]; then
  echo "[hflash native] no native variants for $OS-$ARCH yet: skipping libhflash.so; the Java kernels will run"
  exit 0
fi
DIR="$OUT/hflash/native/$OS-x86_64"
mkdir -p "$DIR" || exit 0
TMP=$(mktemp -d) || exit 0
trap 'rm -rf "$TMP"' EXIT
if [ "$MODE" = asan ]; then
  OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
  LIB=libhflash-asan.so
else
  OPT="-O3 -DNDEBUG"
  LIB=libhflash.so
fi
COMMON="-std=gnu11 -fPIC -Wall -Wextra -Wno-unused-parameter -fvisibility=default $OPT"
if "$CC" $COMMON -mavx2 -mfma -mf16c -c "$SRC/hflash_decode.c" -o "$TMP/avx2.o" \
  && "$CC" $COMMON -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c -DHF_AVX512 -c "$SRC/hflash_decode.c" -o "$TMP/avx512.o" \
  && "$CC" $COMMON -c "$SRC/hflash_dispatch.c" -o "$TMP/dispatch.o" \
  && "$CC" $OPT -shared -o "$TMP/$LIB" "$TMP/avx2.o" "$TMP/avx512.o" "$TMP/dispatch.o" -lm; then
  mv "$TMP/$LIB" "$DIR/$LIB"
  echo "[hflash native] built $DIR/$LIB with $CC ($("$CC" --version 2>/dev/null | head -1)): variants avx2, avx512"
else
  echo "[hflash native] $CC failed to build libhflash.so (see above): skipping it; the Java kernels will run"
fi
exit 0
