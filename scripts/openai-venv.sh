#!/usr/bin/env bash
# Makes BUILD_DIR/openai-venv, a Python venv with the official OpenAI client (the `openai` pip
# package, pinned), which the serve tests drive `paradit serve` with (tests/server/
# test_openai_client.cpp finds it there; PARADIT_OPENAI_PYTHON points elsewhere). Only the tests
# use it: paradit itself needs no Python. Idempotent: an existing venv with the pinned version
# is kept. Needs python3-venv (scripts/setup.sh --tests installs it) and network access to PyPI;
# pip retries, and the whole install is tried 3 times.
#   scripts/openai-venv.sh [BUILD_DIR]      (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
OPENAI_VERSION=3.63.0
VENV="$BUILD_DIR/openai-venv"
PY="$VENV/bin/python"
check() {
  "$PY" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null
}
if [ -x "$PY" ] && check; then
  echo "openai-venv: $VENV has openai $OPENAI_VERSION"
  exit 0
fi
mkdir -p "$BUILD_DIR"
rm -rf "$VENV"
python3 -m venv "$VENV"
for attempt in 1 2 3; do
  if "$PY" -m pip install --disable-pip-version-check --no-input -q --retries 5 --timeout 60 \
       "openai==$OPENAI_VERSION"; then
    break
  fi
  echo "openai-venv: pip install failed (attempt $attempt of 3)" >&2
  if [ "$attempt" = 3 ]; then exit 1; fi
  sleep $((attempt * 10))
done
check || { echo "openai-venv: openai $OPENAI_VERSION is not importable from $VENV" >&2; exit 1; }
echo "openai-venv: installed openai $OPENAI_VERSION in $VENV"
