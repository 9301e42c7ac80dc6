#!/usr/bin/env bash
# Builds the libFuzzer target of the safetensors header parser with clang (ASan + UBSan) and runs
# it for a while; exits non-zero when it finds an input that crashes, leaks or hits undefined
# behaviour (the input is kept under BUILD_DIR/artifacts/ for reproduction).
#   scripts/fuzz.sh [SECONDS] [BUILD_DIR]      (defaults: 60, build/fuzz)
# Exit 77 when clang or its libFuzzer runtime is missing (ctest reports the test as skipped).
# Reproduce a crash: BUILD_DIR/safetensors_header_fuzz BUILD_DIR/artifacts/crash-...
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
RUN_SECONDS=${1:-60}
OUT=${2:-build/fuzz}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

CXX_FUZZ=${CXX_FUZZ:-}
if [ -z "$CXX_FUZZ" ]; then
  for c in clang++-14 clang++; do
    if command -v "$c" >/dev/null 2>&1; then CXX_FUZZ=$c; break; fi
  done
fi
if [ -z "$CXX_FUZZ" ]; then
  echo "fuzz.sh: clang++ not found (apt-get install clang libclang-rt-14-dev); skipping" >&2
  exit 77
fi

# Only the parser and what it needs: no OpenMP, no Tensor, no BLAS.
SRCS=(fuzz/safetensors_header_fuzz.cpp src/io/safetensors_header.cpp src/core/dtype.cpp)
DEPS=("${SRCS[@]}" src/io/safetensors.h src/core/dtype.h src/core/error.h src/core/tensor.h
      scripts/fuzz.sh)
BIN="$OUT/safetensors_header_fuzz"
rebuild=1
if [ -x "$BIN" ]; then
  rebuild=0
  for f in "${DEPS[@]}"; do [ "$f" -nt "$BIN" ] && rebuild=1; done
fi
if [ "$rebuild" = 1 ]; then
  echo "fuzz.sh: building $BIN with $CXX_FUZZ"
  FLAGS=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
         -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter -Isrc)
  if ! "$CXX_FUZZ" "${FLAGS[@]}" "${SRCS[@]}" -o "$BIN.tmp" 2>"$OUT/build.log"; then
    if grep -q -e "libclang_rt.fuzzer" -e "cannot find -l" "$OUT/build.log"; then
      cat "$OUT/build.log" >&2
      echo "fuzz.sh: libFuzzer runtime missing (apt-get install libclang-rt-14-dev); skipping" >&2
      exit 77
    fi
    cat "$OUT/build.log" >&2
    echo "fuzz.sh: build failed" >&2
    exit 1
  fi
  mv "$BIN.tmp" "$BIN"
fi

# Seed corpus: a few valid files (8-byte little-endian header length, header, data).
CORPUS="$OUT/corpus"
mkdir -p "$CORPUS" "$OUT/artifacts"
seed() {  # NAME HEADER DATA
  local n=${#2} le="" i
  for i in 0 1 2 3 4 5 6 7; do le+=$(printf '\\x%02x' $(((n >> (8 * i)) & 255))); done
  { printf "$le"; printf '%s' "$2" "$3"; } >"$CORPUS/$1"
}
seed one_f32 '{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}' 'aaaabbbbccccdddd'
seed metadata '{"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}}  ' 'xxxxxx'
seed zero_size '{"e":{"dtype":"F16","shape":[0,4],"data_offsets":[0,0]},"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}' '12345678'
seed many '{"a":{"dtype":"U8","shape":[1,1,1,1,1,2],"data_offsets":[0,2]},"b":{"dtype":"BOOL","shape":[2],"data_offsets":[2,4]},"c":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[4,5]},"d":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}' '0123456789abcdef'
seed empty '{}' ''

echo "fuzz.sh: fuzzing for ${RUN_SECONDS}s (corpus $CORPUS)"
set +e
"$BIN" -max_total_time="$RUN_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
  -dict=fuzz/safetensors.dict -artifact_prefix="$OUT/artifacts/" -print_final_stats=1 \
  "$CORPUS" 2>"$OUT/fuzz.log"
rc=$?
set -e
tail -n 25 "$OUT/fuzz.log"
if [ "$rc" != 0 ]; then
  echo "fuzz.sh: the fuzzer failed (exit $rc); see $OUT/fuzz.log and $OUT/artifacts/" >&2
  exit 1
fi
echo "fuzz.sh: no crash in ${RUN_SECONDS}s"
