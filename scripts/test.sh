#!/usr/bin/env bash
# Installs what is needed, builds everything (CUDA backend too when nvcc is present) and runs the
# whole test suite with ctest. GUI tests run offscreen.
#
# The cpu kernels have AVX-512, AVX2 and plain C++ paths, chosen by the compiler's target; the
# main build targets this machine (-march=native). Two small extra builds run the kernel and
# model tests on the other paths, so a user's AVX2-only or generic build is tested too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
(cd build && QT_QPA_PLATFORM=offscreen ctest --output-on-failure -j"$(nproc)")

portable_kernel_tests() {  # build dir, extra C++ flags
  cmake -S . -B "$1" -DPKV_NATIVE=OFF -DCMAKE_CXX_FLAGS="$2" -DPKV_BUILD_GUI=OFF -DPKV_WITH_CUDA=OFF >/dev/null
  cmake --build "$1" -j"$(nproc)" --target engine_test_cpu_kernels engine_test_model_golden >/dev/null
  (cd "$1" && GOMP_SPINCOUNT=10000 ctest --output-on-failure -R 'engine_test_(cpu_kernels|model_golden)')
}
portable_kernel_tests build-avx2 "-march=haswell"
portable_kernel_tests build-generic ""
