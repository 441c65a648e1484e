#!/usr/bin/env bash
# Installs what is needed, builds everything (CUDA backend too when nvcc is present) and runs the
# whole test suite with ctest. GUI tests run offscreen.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd build
QT_QPA_PLATFORM=offscreen ctest --output-on-failure -j"$(nproc)"
