#!/usr/bin/env bash
# Installs the Debian 12 packages paradit needs (idempotent) and builds it in Release.
#   scripts/setup.sh [--tests] [BUILD_DIR]      (default: build)
# Without --tests it builds the `paradit` command only; --tests also installs the tools the test
# suite runs besides paradit and builds every target (scripts/test.sh passes it).
# Environment: PARADIT_CMAKE_ARGS adds CMake arguments (e.g. -DPARADIT_WERROR=ON).
# On a minimal Debian 12 (what scripts/fresh-root.sh makes) this is everything the build needs.
set -euo pipefail
cd "$(dirname "$0")/.."
TESTS=0
if [ "${1:-}" = --tests ]; then TESTS=1; shift; fi
BUILD_DIR=${1:-build}

# Building: compilers and tools, then the libraries the build links (DESIGN.md's dependencies).
# Debian's libdnnl-dev is built with oneDNN's OpenCL GPU runtime, so its CMake package config
# (dnnl-config.cmake) calls find_package(OpenCL REQUIRED): the OpenCL headers and the ICD
# loader's development link must be there for CMake to find oneDNN at all. We keep using that
# config (it carries the version and the imported target) rather than searching by hand.
PACKAGES=(build-essential cmake ninja-build pkg-config ccache
          libdnnl-dev ocl-icd-opencl-dev opencl-headers libopenblas-dev libomp-dev
          libopenmpi-dev openmpi-bin
          nlohmann-json3-dev libcli11-dev libpng-dev libsentencepiece-dev
          libavcodec-dev libavformat-dev libswscale-dev libavutil-dev
          libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev libsqlite3-dev)
# Testing: clang + its libFuzzer runtime (the fuzz test), iproute2 (two "hosts" in network
# namespaces), ffmpeg (ffprobe, an independent reader of the MP4s), python3 (PNG checks),
# python3-venv and python3-pip (the venv with the official OpenAI client that the serve tests
# drive the server with: scripts/openai-venv.sh, run by scripts/test.sh).
if ((TESTS)); then
  PACKAGES+=(clang libclang-rt-14-dev iproute2 ffmpeg python3 python3-venv python3-pip)
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  APT=(-o Acquire::Retries=5 -o Dpkg::Use-Pty=0)
  $SUDO apt-get "${APT[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${APT[@]}" install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${PARADIT_CMAKE_ARGS:-}
if ((TESTS)); then
  cmake --build "$BUILD_DIR" -j "$(nproc)"
else
  cmake --build "$BUILD_DIR" -j "$(nproc)" --target paradit
fi
