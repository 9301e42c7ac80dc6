#!/usr/bin/env bash
# Installs the Debian 12 packages paradit needs (idempotent) and builds it in Release.
#   scripts/setup.sh [BUILD_DIR]      (default: build)
# Environment: PARADIT_CMAKE_ARGS adds CMake arguments (e.g. -DPARADIT_WERROR=ON).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}

PACKAGES=(build-essential cmake ninja-build pkg-config ccache
          libdnnl-dev libopenblas-dev libomp-dev
          libopenmpi-dev openmpi-bin
          nlohmann-json3-dev libcli11-dev libpng-dev libsentencepiece-dev
          libavcodec-dev libavformat-dev libswscale-dev libavutil-dev
          libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev
          clang libclang-rt-14-dev iproute2 python3)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${PARADIT_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$(nproc)"
