#!/usr/bin/env bash
# Builds one libFuzzer target with clang (ASan + UBSan) and runs it for a while; exits non-zero
# when it finds an input that crashes, leaks or hits undefined behaviour (the input is kept under
# BUILD_DIR/artifacts/ for reproduction).
#   scripts/fuzz.sh [SECONDS] [BUILD_DIR] [TARGET]      (defaults: 60, build/fuzz, safetensors_header)
# TARGET: safetensors_header (the .safetensors header parser), config_json (a diffusers
# config.json through io::Config), request_body (the HTTP API's request body parser).
# Exit 77 when clang or its libFuzzer runtime is missing (ctest reports the test as skipped).
# Reproduce a crash: BUILD_DIR/TARGET_fuzz BUILD_DIR/artifacts/crash-...
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
RUN_SECONDS=${1:-60}
OUT=${2:-build/fuzz}
TARGET=${3:-safetensors_header}
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
case "$TARGET" in
  safetensors_header)
    SRCS=(fuzz/safetensors_header_fuzz.cpp src/io/safetensors_header.cpp src/core/dtype.cpp)
    DEPS=(src/io/safetensors.h src/core/dtype.h src/core/error.h src/core/tensor.h)
    DICT=fuzz/safetensors.dict MAX_LEN=4096 ;;
  config_json)
    SRCS=(fuzz/config_json_fuzz.cpp src/io/diffusers.cpp src/io/json.cpp)
    DEPS=(src/io/diffusers.h src/io/json.h src/core/error.h)
    DICT=fuzz/json.dict MAX_LEN=8192 ;;
  request_body)
    SRCS=(fuzz/request_body_fuzz.cpp src/server/request.cpp src/io/json.cpp)
    DEPS=(src/server/request.h src/io/json.h src/core/error.h)
    DICT=fuzz/json.dict MAX_LEN=8192 ;;
  *)
    echo "fuzz.sh: error: unknown target '$TARGET' (safetensors_header, config_json, request_body)" >&2
    exit 2 ;;
esac
DEPS=("${SRCS[@]}" "${DEPS[@]}" "$DICT" scripts/fuzz.sh)
BIN="$OUT/${TARGET}_fuzz"
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

# Seed corpus per target.
CORPUS="$OUT/corpus-$TARGET"
mkdir -p "$CORPUS" "$OUT/artifacts"
case "$TARGET" in
  safetensors_header)
    # A few valid files (8-byte little-endian header length, header, data).
    seed() {  # NAME HEADER DATA
      local n=${#2} le="" i
      for i in 0 1 2 3 4 5 6 7; do le+=$(printf '\\x%02x' $(((n >> (8 * i)) & 255))); done
      { printf "$le"; printf '%s' "$2" "$3"; } >"$CORPUS/$1"
    }
    seed one_f32 '{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}' 'aaaabbbbccccdddd'
    seed metadata '{"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}}  ' 'xxxxxx'
    seed zero_size '{"e":{"dtype":"F16","shape":[0,4],"data_offsets":[0,0]},"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}' '12345678'
    seed many '{"a":{"dtype":"U8","shape":[1,1,1,1,1,2],"data_offsets":[0,2]},"b":{"dtype":"BOOL","shape":[2],"data_offsets":[2,4]},"c":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[4,5]},"d":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}' '0123456789abcdef'
    seed empty '{}' '' ;;
  config_json)
    # The configs the repository ships and tests with.
    i=0
    for f in models/*/*/config.json models/*/scheduler/scheduler_config.json \
             tests/data/*/*/config.json; do
      [ -f "$f" ] && cp "$f" "$CORPUS/seed_$((i++)).json"
    done
    printf '{"num_layers": 2, "x": NaN, "y": -Infinity, "l": [1, 2, 3]}' >"$CORPUS/non_finite.json" ;;
  request_body)
    printf '{"prompt": "a red circle", "size": "64x64", "n": 1, "seed": 7}' >"$CORPUS/basic.json"
    printf '{"prompt": "x", "num_inference_steps": 4, "guidance_scale": 4.5, "negative_prompt": "y", "response_format": "b64_json", "output_format": "png"}' >"$CORPUS/full.json"
    printf '{"prompt": "x", "num_frames": 9, "fps": 16, "size": "64x64"}' >"$CORPUS/video.json"
    printf '{"model": "paradit-model", "prompt": "x", "partial_images": 2, "stream": true}' >"$CORPUS/stream.json" ;;
esac

echo "fuzz.sh: fuzzing $TARGET for ${RUN_SECONDS}s (corpus $CORPUS)"
set +e
"$BIN" -max_total_time="$RUN_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len="$MAX_LEN" \
  -dict="$DICT" -artifact_prefix="$OUT/artifacts/" -print_final_stats=1 \
  "$CORPUS" 2>"$OUT/fuzz-$TARGET.log"
rc=$?
set -e
tail -n 25 "$OUT/fuzz-$TARGET.log"
if [ "$rc" != 0 ]; then
  echo "fuzz.sh: the fuzzer failed (exit $rc); see $OUT/fuzz-$TARGET.log and $OUT/artifacts/" >&2
  exit 1
fi
echo "fuzz.sh: $TARGET: no crash in ${RUN_SECONDS}s"
