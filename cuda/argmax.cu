#include "cuda/argmax.cuh"
#include "cuda/cuda_check.h"
#include "cuda/device_util.cuh"

namespace pkv::cuda {
namespace {

constexpr int kThreads = 256;

struct Best {
    float value;
    int64_t index;
};

// Larger value wins; equal values go to the smaller index, so the first maximum survives any
// reduction order.
__device__ __forceinline__ Best better(Best a, Best b) {
    if (b.index < 0) return a;
    if (a.index < 0) return b;
    if (b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
    return a;
}

__global__ void __launch_bounds__(kThreads) argmaxKernel(const float* x, int64_t cols, int* out) {
    __shared__ float values[kThreads / 32];
    __shared__ int64_t indices[kThreads / 32];
    const float* row = x + int64_t(blockIdx.x) * cols;
    Best best{-INFINITY, -1};
    for (int64_t c = threadIdx.x; c < cols; c += kThreads) {
        const float v = row[c];
        if (!isnan(v)) best = better(best, Best{v, c});
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        const Best other{__shfl_xor_sync(0xffffffffu, best.value, offset),
                         __shfl_xor_sync(0xffffffffu, best.index, offset)};
        best = better(best, other);
    }
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) {
        values[warp] = best.value;
        indices[warp] = best.index;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        Best total{-INFINITY, -1};
        for (int w = 0; w < kThreads / 32; ++w) total = better(total, Best{values[w], indices[w]});
        out[blockIdx.x] = int(total.index);
    }
}

}  // namespace

void argmaxRows(const float* x, int64_t rows, int64_t cols, int* out, cudaStream_t stream) {
    if (rows <= 0) return;
    if (rows > 0x7fffffff || cols > 0x7fffffff)
        throw Error("Too many logits for one argmax: " + std::to_string(rows) + " x " + std::to_string(cols) + ".");
    argmaxKernel<<<unsigned(rows), kThreads, 0, stream>>>(x, cols, out);
    PKV_CUDA_CHECK_LAUNCH();
}

}  // namespace pkv::cuda
