#!/usr/bin/env bash
# gpu-check.sh: the one command for a GPU machine. Builds paradit with the CUDA backend, runs the
# GPU tests, a 4-step generation on the GPU against the CPU's image, and the GPU benchmarks, and
# prints last a summary table: every step's status, GEMM and attention TFLOP/s, one transformer
# step of Flux.1-dev / PixArt-Σ / SD3.5-large / Wan2.1-1.3B beside diffusers' time, the image
# comparison, the tests passed and failed, and the key lines of whatever failed.
#
#   scripts/gpu-check.sh [--build-dir DIR] [--jobs N] [--budget SECONDS] [--tests REGEX]
#                        [--bench PARTS] [--cuda-arch ARCH] [--no-build] [--dry-run]
#
#   --build-dir DIR   build folder (default build-gpu in the repository; an existing one is
#                     reused, so a second run only rebuilds what changed)
#   --jobs N          build jobs (default: all cores)
#   --budget SECONDS  the whole run, build included (default 450: the device run has 8 minutes)
#   --tests REGEX     ctest -R pattern of the GPU tests (default 'backend_ops|cuda|comm'; 'none'
#                     skips the tests)
#   --bench PARTS     bench_gpu parts, comma-separated (default gemm,attention,flux,pixart,sd35,wan;
#                     'none' skips the benchmarks)
#   --cuda-arch ARCH  CMAKE_CUDA_ARCHITECTURES (default: from nvidia-smi's compute capability,
#                     90a on Hopper; 90a without nvidia-smi)
#   --no-build        use the binaries already in the build folder
#   --dry-run         check the arguments and print every step with its command and time limit;
#                     runs nothing
#
# Every step runs even when an earlier one failed (its status is recorded and the run goes on);
# each has its own time limit, cut to what the budget leaves after keeping the later steps'
# minimum times. Logs: $OUT/gpu-check when OUT is set (the device runner brings $OUT back), else
# BUILD_DIR/gpu-check. Exit status 0 only when every step passed; 2 on bad arguments.
#
# Time plan on an H100 host with 16 cores (limit / expected; the expected figures are estimates,
# the script has not run on a GPU yet): preflight 30/2 s, configure 120/15 s, build of paradit
# and bench_gpu 300/90 s, test programs 180/20 s, tests 150/40 s, 5 generations of 60/5 s each,
# benchmarks gemm 45/8, attention 60/10, flux 90/20, pixart 60/10, sd35 90/20, wan 90/25 s.
# Expected total ≈ 5 minutes; the budget (450 s) bounds the worst case.

set -uo pipefail  # not -e: a failed step is recorded and the next one runs

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOL="$ROOT/scripts/gpu-check-tool.py"
BUILD_DIR="$ROOT/build-gpu"
JOBS=$(nproc 2>/dev/null || echo 16)
BUDGET=450
TEST_REGEX='backend_ops|cuda|comm'
BENCH_PARTS="gemm,attention,flux,pixart,sd35,wan"
CUDA_ARCH=""
DO_BUILD=true
DRY_RUN=false
KNOWN_PARTS=" gemm attention flux pixart sd35 wan "

usage() {
  sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}
die_usage() {
  echo "gpu-check: $1" >&2
  echo "usage: scripts/gpu-check.sh [--build-dir DIR] [--jobs N] [--budget SECONDS]" \
       "[--tests REGEX] [--bench PARTS] [--cuda-arch ARCH] [--no-build] [--dry-run]" >&2
  exit 2
}
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

while (($#)); do
  case $1 in
    --build-dir|--jobs|--budget|--tests|--bench|--cuda-arch)
      (($# >= 2)) || die_usage "$1 needs a value"
      opt=$1 val=$2
      shift 2
      case $opt in
        --build-dir) BUILD_DIR=$val ;;
        --jobs) is_uint "$val" && ((val >= 1)) || die_usage "--jobs: '$val' is not a count"
                JOBS=$val ;;
        --budget) is_uint "$val" && ((val >= 60)) ||
                    die_usage "--budget: '$val' is not a number of seconds >= 60"
                  BUDGET=$val ;;
        --tests) [[ -n $val ]] || die_usage "--tests: empty pattern"
                 TEST_REGEX=$val ;;
        --bench) BENCH_PARTS=$val ;;
        --cuda-arch) [[ $val =~ ^[0-9]+[af]?(-real|-virtual)?(;[0-9]+[af]?(-real|-virtual)?)*$ ]] ||
                       die_usage "--cuda-arch: '$val' is not like 90a or 80;90a"
                     CUDA_ARCH=$val ;;
      esac
      ;;
    --no-build) DO_BUILD=false; shift ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
done
if [[ $BENCH_PARTS == none ]]; then
  BENCH_LIST=()
else
  IFS=, read -r -a BENCH_LIST <<< "$BENCH_PARTS"
  ((${#BENCH_LIST[@]})) || die_usage "--bench: empty list (use 'none')"
  for p in "${BENCH_LIST[@]}"; do
    [[ $KNOWN_PARTS == *" $p "* ]] || die_usage "--bench: '$p' is not one of${KNOWN_PARTS}"
  done
fi
[[ $BUILD_DIR = /* ]] || BUILD_DIR="$ROOT/$BUILD_DIR"
LOG_DIR=${OUT:+$OUT/gpu-check}
LOG_DIR=${LOG_DIR:-$BUILD_DIR/gpu-check}
GEN_DIR="$LOG_DIR/generate"
STATUS="$LOG_DIR/status.tsv"
START=$(date +%s)
DEADLINE=$((START + BUDGET))

# ---------------------------------------------------------------- the machine's tools
# CUDA under /usr/local/cuda is not always on PATH (Ubuntu's NVIDIA packages leave it off).
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
NVCC=$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)
[[ -d /usr/local/cuda/lib64 ]] && export LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [[ -z $CUDA_ARCH ]]; then
  # Hopper gets 90a (the kernels' wgmma/TMA paths); another GPU its own plain compute capability.
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')
  case $cc in
    ''|90) CUDA_ARCH=90a ;;
    *) CUDA_ARCH=$cc ;;
  esac
fi
GENERATOR="Ninja"
command -v ninja >/dev/null 2>&1 || GENERATOR="Unix Makefiles"
# Only what the run needs: no server (cpp-httplib is not on the GPU machine), FFmpeg only where
# its development packages are (video tests then write MP4s; without, they report it), no fuzz
# targets, warnings reported but not fatal (a newer g++ must not cost the one device run).
FFMPEG=OFF
pkg-config --exists libavcodec libavformat libswscale libavutil 2>/dev/null && FFMPEG=ON
CMAKE_ARGS=(-S "$ROOT" -B "$BUILD_DIR" -G "$GENERATOR" -DCMAKE_BUILD_TYPE=Release
            -DPARADIT_WITH_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCH"
            "-DCMAKE_CUDA_COMPILER=$NVCC" -DPARADIT_GEMM=auto -DPARADIT_WITH_MPI=ON
            "-DPARADIT_WITH_FFMPEG=$FFMPEG" -DPARADIT_WITH_SERVER=OFF -DPARADIT_BUILD_FUZZ=OFF
            -DPARADIT_BUILD_TESTS=ON -DPARADIT_BUILD_BENCH=ON -DPARADIT_WERROR=OFF)
# MPI as root in a container (the tests' mpirun already passes --allow-run-as-root).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none

PARADIT="$BUILD_DIR/paradit"
BENCH="$BUILD_DIR/bench/bench_gpu"
PROMPT="a small red circle on the left on a blue background"
GEN_ARGS=(generate --prompt "$PROMPT" --seed 1 --num_inference_steps 4 --guidance_scale 4.5)

# ---------------------------------------------------------------- steps
# The order, each step's time limit (cap) and the least time it must be left (min): a step gets
# min(cap, time to the deadline − the later steps' minimums).
STEPS=(preflight)
$DO_BUILD && STEPS+=(configure build)
[[ $TEST_REGEX == none ]] || { $DO_BUILD && STEPS+=(build-tests); STEPS+=(tests); }
STEPS+=(generate-cpu generate-cuda-bf16 generate-cuda-f32 generate-cuda-paradit generate-latent-cpu
        generate-latent-cuda compare)
for p in "${BENCH_LIST[@]}"; do STEPS+=("bench-$p"); done
declare -A CAP=([preflight]=30 [configure]=120 [build]=300 [build-tests]=180 [tests]=150
                [generate-cpu]=60 [generate-cuda-bf16]=60 [generate-cuda-f32]=60
                [generate-cuda-paradit]=60 [generate-latent-cpu]=60 [generate-latent-cuda]=60
                [compare]=30 [bench-gemm]=45 [bench-attention]=60 [bench-flux]=90
                [bench-pixart]=60 [bench-sd35]=90 [bench-wan]=90)
declare -A MIN=([preflight]=2 [configure]=10 [build]=30 [build-tests]=10 [tests]=30
                [generate-cpu]=6 [generate-cuda-bf16]=6 [generate-cuda-f32]=6
                [generate-cuda-paradit]=6 [generate-latent-cpu]=6 [generate-latent-cuda]=6
                [compare]=2 [bench-gemm]=10 [bench-attention]=15 [bench-flux]=20
                [bench-pixart]=12 [bench-sd35]=20 [bench-wan]=20)

# Seconds the steps after `name` must keep.
reserve_after() {
  local name=$1 seen=false s sum=0
  for s in "${STEPS[@]}"; do
    $seen && sum=$((sum + MIN[$s]))
    [[ $s == "$name" ]] && seen=true
  done
  echo $sum
}

quote() { local out="" a; for a in "$@"; do out+=" $(printf '%q' "$a")"; done; echo "${out# }"; }

record() {  # record NAME STATUS SECONDS NOTE
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$STATUS"
}

# run_step NAME COMMAND...: runs COMMAND with its output in LOG_DIR/NAME.log under the step's
# time limit, records ok / FAIL / TIMEOUT / SKIP, and shows the log's tail when it failed. A
# step whose command is a function of this script (exported, run by `bash -c`) sets SHOWN to
# what the dry run prints instead.
SHOWN=""
run_step() {
  local name=$1; shift
  local cap=${CAP[$name]} reserve shown=${SHOWN:-$(quote "$@")}
  SHOWN=""
  reserve=$(reserve_after "$name")
  if $DRY_RUN; then
    printf 'step %-22s limit %3s s (keeps %3s s for later steps): %s\n' "$name" "$cap" \
      "$reserve" "$shown"
    return 0
  fi
  local now limit log="$LOG_DIR/$name.log"
  now=$(date +%s)
  limit=$((DEADLINE - now - reserve))
  ((limit > cap)) && limit=$cap
  if ((limit < 5)); then
    echo "== $name: SKIPPED, the ${BUDGET} s budget is spent"
    echo "skipped: no time left in the ${BUDGET} s budget" > "$log"
    record "$name" SKIP 0 "no time left in the ${BUDGET} s budget"
    return 1
  fi
  echo "== $name (limit ${limit} s, $((now - START)) s into the run): $shown"
  local t0=$now rc
  timeout -k 10 "$limit" "$@" > "$log" 2>&1
  rc=$?
  local secs=$(($(date +%s) - t0))
  if ((rc == 0)); then
    record "$name" ok "$secs" ""
    echo "   ok, ${secs} s"
    return 0
  fi
  if ((rc == 124 || rc == 137)); then
    record "$name" TIMEOUT "$secs" "killed after its ${limit} s limit"
    # What a killed step may have left on the GPU (it would slow the steps after it).
    { echo "--- processes on the GPU after the timeout:"
      nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv 2>&1; } >> "$log"
    echo "   TIMEOUT after ${secs} s (limit ${limit} s); from $log:"
  else
    record "$name" FAIL "$secs" "exit status $rc"
    echo "   FAIL (exit status $rc) after ${secs} s; from $log:"
  fi
  excerpt "$log" | sed 's/^/   | /'
  return 1
}

# The lines of a log that most likely say what went wrong (else its last lines).
KEY_PATTERN='error|fail|fatal|cannot|not found|abort|what\(\)|segmentation|illegal|missing|timeout|non-finite|skipped'
excerpt() {
  local hits
  hits=$(grep -iE "$KEY_PATTERN" "$1" | grep -v '^ *[0-9]*% tests passed, 0 tests failed' | head -n 12)
  if [[ -n $hits ]]; then echo "$hits"; echo "(...)"; tail -n 3 "$1"; else tail -n 12 "$1"; fi
}

# A step that cannot start because what it runs is missing: recorded as failed, costs nothing.
missing() {  # missing NAME WHAT
  if $DRY_RUN; then return 0; fi
  echo "== $1: FAIL, $2 is missing (an earlier step failed)"
  echo "$2 is missing (an earlier step failed)" > "$LOG_DIR/$1.log"
  record "$1" FAIL 0 "$2 is missing"
}

# ---------------------------------------------------------------- step bodies
preflight() {
  echo "date: $(date -u +%FT%TZ)"
  echo "repository: $ROOT ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
  echo "kernel: $(uname -r); cores: $(nproc); memory: $(free -g 2>/dev/null | awk '/Mem:/ {print $2 " GiB"}')"
  local ok=true
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm \
      --format=csv || ok=false
    nvidia-smi -L || ok=false
  else
    echo "nvidia-smi: NOT FOUND (no GPU driver visible)"
    ok=false
  fi
  local tool
  for tool in "$NVCC" cmake ninja g++ python3 mpirun pkg-config; do
    if command -v "$tool" >/dev/null 2>&1; then
      echo "$tool: $(command -v "$tool"): $("$tool" --version 2>&1 | grep -m1 -iE 'version|release|[0-9]+\.[0-9]+')"
    else
      echo "$tool: NOT FOUND"
      [[ $tool == python3 || $tool == mpirun || $tool == ninja ]] || ok=false
    fi
  done
  echo "cuDNN / NCCL / OpenBLAS / oneDNN in the linker cache:"
  ldconfig -p 2>/dev/null | grep -E 'libcudnn\.so|libnccl\.so|libopenblas|libdnnl|libcublasLt\.so' |
    sed 's/^/  /' || true
  ls /usr/include/nccl.h /usr/include/*/cudnn.h /usr/include/cudnn.h \
    /usr/local/cuda/include/cudnn.h /usr/local/cuda/include/nccl.h 2>/dev/null |
    sed 's/^/  header: /' || true
  echo "FFmpeg development packages: $FFMPEG; CUDA architectures: $CUDA_ARCH; generator: $GENERATOR"
  $ok
}

configure() {  # configure CMAKE_ARGS...
  cmake "$@" || return 1
  # What the configure found, for the summary: a missing cuDNN turns the cuDNN attention off.
  local cache="$BUILD_DIR/CMakeCache.txt" v
  v=$(sed -n 's/^PARADIT_CUDNN_LIBRARY:FILEPATH=//p' "$cache")
  if [[ -n $v && $v != *NOTFOUND* ]]; then echo "cuDNN=found" >> "$LOG_DIR/env.txt"
  else echo "cuDNN=NOT FOUND" >> "$LOG_DIR/env.txt"; fi
  v=$(sed -n 's/^PARADIT_NCCL_LIBRARY:FILEPATH=//p' "$cache")
  if [[ -n $v && $v != *NOTFOUND* ]]; then echo "NCCL=found" >> "$LOG_DIR/env.txt"
  else echo "NCCL=NOT FOUND" >> "$LOG_DIR/env.txt"; fi
  echo "GEMM(CPU)=$(grep -m1 -o 'GEMM library = [a-z]*' "$LOG_DIR/configure.log" | awk '{print $4}')" \
    >> "$LOG_DIR/env.txt"
  grep -q '^cuDNN=found' "$LOG_DIR/env.txt"  # the device has cuDNN: not finding it is a bug here
}

build_tests() {
  local targets
  targets=$(python3 "$TOOL" test-targets "$BUILD_DIR" "$TEST_REGEX") || return 1
  echo "test programs of ctest -R '$TEST_REGEX': ${targets:-none}"
  [[ -n $targets ]] || return 1
  # Keep going past a program that does not compile, so the others still run.
  local keep=(-- -k 0)
  [[ $GENERATOR == Ninja ]] || keep=(-- -k)
  # shellcheck disable=SC2086  # one word per target
  cmake --build "$BUILD_DIR" -j "$JOBS" --target $targets "${keep[@]}"
}

# -V: every test's own output goes to the log (the backend-ops program's "unsupported" lines);
# four at a time (the GPU tests share the one GPU, the MPI tests the cores).
CTEST_ARGS=(-R "$TEST_REGEX" -V -j 4 --timeout 120 --no-tests=error)
run_tests() { cd "$BUILD_DIR" && ctest "$@"; }

# ---------------------------------------------------------------- the run
if $DRY_RUN; then
  echo "gpu-check dry run: build $BUILD_DIR, logs $LOG_DIR, budget ${BUDGET} s, jobs $JOBS," \
       "CUDA architectures $CUDA_ARCH, generator $GENERATOR, FFmpeg $FFMPEG"
else
  mkdir -p "$LOG_DIR" "$GEN_DIR" "$LOG_DIR/bench" || { echo "gpu-check: cannot create $LOG_DIR"; exit 2; }
  : > "$STATUS"
  : > "$LOG_DIR/env.txt"
  rm -f "$GEN_DIR"/*.png "$GEN_DIR"/*.safetensors "$GEN_DIR"/compare.json "$LOG_DIR"/bench/*.json
  echo "gpu-check: logs in $LOG_DIR; budget ${BUDGET} s"
fi

export -f preflight configure build_tests run_tests
export ROOT NVCC FFMPEG CUDA_ARCH GENERATOR BUILD_DIR LOG_DIR TOOL TEST_REGEX JOBS
SHOWN="nvidia-smi, tool versions, cuDNN/NCCL/BLAS libraries (preflight)"
run_step preflight bash -c preflight

if $DO_BUILD; then
  SHOWN=$(quote cmake "${CMAKE_ARGS[@]}")
  run_step configure bash -c 'configure "$@"' configure "${CMAKE_ARGS[@]}"
  run_step build cmake --build "$BUILD_DIR" -j "$JOBS" --target paradit bench_gpu
  if [[ $TEST_REGEX != none ]]; then
    SHOWN="cmake --build $(quote "$BUILD_DIR") -j $JOBS --target <the test programs of: ctest -R '$TEST_REGEX', found after configure> -- -k 0"
    run_step build-tests bash -c build_tests
  fi
elif $DRY_RUN; then
  echo "(--no-build: no configure, build or build-tests step)"
fi

if [[ $TEST_REGEX == none ]]; then
  $DRY_RUN && echo "(--tests none: no tests step)"
elif $DRY_RUN || [[ -f $BUILD_DIR/CTestTestfile.cmake ]]; then
  SHOWN="cd $(quote "$BUILD_DIR") && $(quote ctest "${CTEST_ARGS[@]}")"
  run_step tests bash -c 'run_tests "$@"' run_tests "${CTEST_ARGS[@]}"
else
  missing tests "$BUILD_DIR/CTestTestfile.cmake"
fi

gen() {  # gen STEP FILE ARGS...: one generation of the shipped model
  local step=$1 file=$2; shift 2
  if $DRY_RUN || [[ -x $PARADIT ]]; then
    run_step "$step" "$PARADIT" "${GEN_ARGS[@]}" --output "$GEN_DIR/$file" "$@"
  else
    missing "$step" "$PARADIT"
  fi
}
gen generate-cpu cpu.png --device cpu
gen generate-cuda-bf16 cuda_bf16.png --device cuda --dtype bf16
gen generate-cuda-f32 cuda_f32.png --device cuda --dtype f32
gen generate-cuda-paradit cuda_bf16_paradit.png --device cuda --dtype bf16 --attention_backend paradit
gen generate-latent-cpu cpu_latent.safetensors --device cpu --output_type latent
gen generate-latent-cuda cuda_f32_latent.safetensors --device cuda --dtype f32 --output_type latent
run_step compare python3 "$TOOL" compare "$GEN_DIR" --json "$GEN_DIR/compare.json"

# PARADIT_CUDA_VERBOSE: the backend logs each GEMM plan and every attention that leaves cuDNN.
for p in "${BENCH_LIST[@]}"; do
  if $DRY_RUN || [[ -x $BENCH ]]; then
    run_step "bench-$p" env PARADIT_CUDA_VERBOSE=1 "$BENCH" --part "$p" --seconds 8 \
      --require-device --json "$LOG_DIR/bench/$p.json"
  else
    missing "bench-$p" "$BENCH"
  fi
done

if $DRY_RUN; then
  echo "step summary: python3 $(quote "$TOOL") summary $(quote "$LOG_DIR")"
  exit 0
fi
echo
if command -v python3 >/dev/null 2>&1; then
  python3 "$TOOL" summary "$LOG_DIR" 2>&1 || { echo "(summary failed; statuses:)"; cat "$STATUS"; }
else
  echo "gpu-check: no python3 for the summary table; step statuses:"
  column -t -s $'\t' "$STATUS" 2>/dev/null || cat "$STATUS"
fi
echo "gpu-check: total $(($(date +%s) - START)) s of the ${BUDGET} s budget"
if cut -f2 "$STATUS" | grep -qv '^ok$'; then exit 1; fi
exit 0
