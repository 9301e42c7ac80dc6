#!/usr/bin/env bash
# Generates an image from a caption with the model the repo ships (models/shapes-pixart, a tiny
# trained PixArt-Sigma-layout model that draws 64x64 flat-colour shapes) and prints where the PNG is.
#   scripts/demo.sh [BUILD_DIR] [CAPTION]      (defaults: build, the caption below)
# Environment: SEED (default 1), STEPS (default 20). The caption vocabulary is in
# models/shapes-pixart/README.md: "a|an [small|large] <colour> <shape> [<position>] on a
# <background> background".
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
CAPTION=${2:-"a small red circle on the left on a blue background"}
SEED=${SEED:-1}
STEPS=${STEPS:-20}

if [ ! -x "$BUILD_DIR/paradit" ]; then
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${PARADIT_CMAKE_ARGS:-}
  fi
  cmake --build "$BUILD_DIR" --target paradit -j "$(nproc)"
fi

mkdir -p out
slug=$(printf '%s' "$CAPTION" | tr -cs 'A-Za-z0-9' '_' | sed 's/^_*//; s/_*$//')
OUT="out/${slug}_seed${SEED}.png"
"$BUILD_DIR/paradit" generate --prompt "$CAPTION" --seed "$SEED" \
  --num_inference_steps "$STEPS" --guidance_scale 4.5 --output "$OUT"
echo "demo: \"$CAPTION\" -> $(pwd)/$OUT"
