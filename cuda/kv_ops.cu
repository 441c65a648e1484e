#include "cuda/cuda_check.h"
#include "cuda/device_util.cuh"
#include "cuda/kv_ops.cuh"

namespace pkv::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void gatherRowsKernel(const float* src, int64_t srcRows, const int64_t* indices, int64_t count,
                                 int64_t width, float* dst) {
    const int64_t n = count * width;
    for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
         idx += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = idx / width, c = idx % width;
        const int64_t from = indices[r];
        if (from >= 0 && from < srcRows) dst[idx] = src[from * width + c];
    }
}

}  // namespace

void gatherRows(const float* src, int64_t srcRows, const int64_t* indices, int64_t count, int64_t width, float* dst,
                cudaStream_t stream) {
    if (count <= 0 || width <= 0) return;
    gatherRowsKernel<<<gridFor(count * width, kThreads), kThreads, 0, stream>>>(src, srcRows, indices, count, width,
                                                                              dst);
    PKV_CUDA_CHECK_LAUNCH();
}

}  // namespace pkv::cuda
