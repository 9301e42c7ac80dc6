#!/usr/bin/env bash
# ctest gpu_check_dry_run: scripts/gpu-check.sh runs only on a GPU machine, so check here what can
# be checked without one: its syntax, that its dry run lists every step (configure, build, tests,
# the generations, the comparison, each benchmark, the summary) and runs nothing, that it refuses
# bad arguments with exit status 2, and its python helper's self-test.
#   scripts/dev/gpu-check-dry-run.sh [scripts/gpu-check.sh]
set -euo pipefail
script=${1:-"$(dirname "$0")/../gpu-check.sh"}
tool="$(dirname "$script")/gpu-check-tool.py"
fail() { echo "gpu_check_dry_run: $*" >&2; exit 1; }

bash -n "$script" || fail "bash -n $script failed"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$(OUT="$tmp/out" bash "$script" --dry-run --build-dir "$tmp/build" --jobs 16 2>&1) ||
  fail "--dry-run exited non-zero: $out"
for needle in "step preflight" "step configure" "-DPARADIT_WITH_CUDA=ON" \
              "-DCMAKE_CUDA_ARCHITECTURES=" "-DPARADIT_WITH_SERVER=OFF" "step build " \
              "--target paradit bench_gpu" "step build-tests" "step tests" "ctest -R" \
              "step generate-cpu" "generate --prompt" "--device cuda --dtype bf16" \
              "--device cuda --dtype f32" "--attention_backend paradit" "--output_type latent" \
              "step compare" "step bench-gemm" "step bench-attention" "step bench-flux" \
              "step bench-pixart" "step bench-sd35" "step bench-wan" "bench_gpu --part" \
              "step summary" "$tmp/out/gpu-check"; do
  grep -qF -- "$needle" <<< "$out" || fail "the dry run does not mention '$needle':
$out"
done
[[ ! -e $tmp/build && ! -e $tmp/out ]] || fail "the dry run created files"

# Every step's limit fits the budget's plan: the dry run shows each limit, and the minimums kept
# for the later steps never exceed the budget.
keeps=$(sed -n 's/.*keeps *\([0-9]*\) s.*/\1/p' <<< "$out" | sort -n | tail -n1)
((keeps < 450)) || fail "the later steps' minimum times ($keeps s) leave nothing of 450 s"

# A subset of the benchmarks; no benchmarks, build or tests.
out=$(bash "$script" --dry-run --bench flux,wan --build-dir "$tmp/build") || fail "--bench flux,wan"
grep -q "step bench-flux" <<< "$out" && grep -q "step bench-wan" <<< "$out" &&
  ! grep -q "step bench-gemm" <<< "$out" || fail "--bench flux,wan ran other parts: $out"
out=$(bash "$script" --dry-run --bench none --no-build --tests none --build-dir "$tmp/build") ||
  fail "--bench none --no-build --tests none"
! grep -qE "step (bench-|build|configure|tests)" <<< "$out" && grep -q "step generate-cpu" <<< "$out" ||
  fail "--bench none --no-build --tests none: wrong steps: $out"

# Bad arguments: exit status 2 and a message naming the argument.
for bad in "--jobs x" "--budget 10" "--bench gemm,nope" "--tests" "--cuda-arch sm90" "--what"; do
  set +e
  msg=$(bash "$script" --dry-run $bad 2>&1)
  rc=$?
  set -e
  ((rc == 2)) || fail "'$bad' gave exit status $rc, expected 2"
  first=${bad%% *}
  grep -qF -- "$first" <<< "$msg" || fail "'$bad': the message does not name $first: $msg"
done

if command -v python3 >/dev/null 2>&1; then
  python3 "$tool" selftest > "$tmp/selftest.log" 2>&1 || fail "$(cat "$tmp/selftest.log")"
fi
echo "gpu_check_dry_run: ok"
