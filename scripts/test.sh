#!/usr/bin/env bash
# Sets up (scripts/setup.sh), builds with warnings as errors, and runs every test.
#   scripts/test.sh [BUILD_DIR]      (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
PARADIT_CMAKE_ARGS="-DPARADIT_WERROR=ON ${PARADIT_CMAKE_ARGS:-}" scripts/setup.sh --tests "$BUILD_DIR"
# The official OpenAI client (pip, pinned) for the serve tests, in BUILD_DIR/openai-venv; here it
# must be there: a missing client fails those tests instead of skipping them.
scripts/openai-venv.sh "$BUILD_DIR"
export PARADIT_REQUIRE_OPENAI=1
cd "$BUILD_DIR"
ctest --output-on-failure -j 2 --timeout 900
