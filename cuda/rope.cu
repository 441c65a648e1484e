#include "cuda/cuda_check.h"
#include "cuda/device_util.cuh"
#include "cuda/rope.cuh"

namespace pkv::cuda {
namespace {

constexpr int kThreads = 256;

// One thread per (row, head, frequency i < headDim/2): rotates the pair (i, i + half).
__global__ void ropeKernel(float* x, int64_t rows, int64_t stride, int numHeads, int headDim, const float* invFreq,
                           const int64_t* positions, int64_t firstPosition) {
    const int half = headDim / 2;
    const int64_t perRow = int64_t(numHeads) * half;
    const int64_t n = rows * perRow;
    for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
         idx += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = idx / perRow;
        const int h = int((idx % perRow) / half);
        const int i = int(idx % half);
        const int64_t pos = positions ? positions[r] : firstPosition + r;
        const float angle = float(pos) * invFreq[i];
        float s, c;
        sincosf(angle, &s, &c);
        float* head = x + r * stride + int64_t(h) * headDim;
        const float a = head[i], b = head[i + half];
        head[i] = a * c - b * s;
        head[i + half] = b * c + a * s;
    }
}

}  // namespace

void rope(float* x, int64_t rows, int64_t stride, int numHeads, int headDim, const float* invFreq,
          const int64_t* positions, int64_t firstPosition, cudaStream_t stream) {
    const int64_t n = rows * int64_t(numHeads) * (headDim / 2);
    if (n <= 0) return;
    ropeKernel<<<gridFor(n, kThreads), kThreads, 0, stream>>>(x, rows, stride, numHeads, headDim, invFreq, positions,
                                                             firstPosition);
    PKV_CUDA_CHECK_LAUNCH();
}

}  // namespace pkv::cuda
