#include "cuda/cuda_check.h"
#include "cuda/device_util.cuh"
#include "cuda/embedding.cuh"

namespace pkv::cuda {
namespace {

constexpr int kThreads = 256;

// One block per output row; threads stride over the columns (coalesced reads of the table row).
template <class T>
__global__ void embedRowsKernel(const T* table, int64_t tableRows, int64_t cols, const int* ids, float* y) {
    const int64_t row = blockIdx.x;
    const int id = ids[row];
    if (id < 0 || id >= tableRows) return;
    const T* src = table + int64_t(id) * cols;
    float* dst = y + row * cols;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = loadFloat(src, c);
}

}  // namespace

void embedRows(const void* table, DType dtype, int64_t tableRows, int64_t cols, const int* ids, int64_t n, float* y,
               cudaStream_t stream) {
    if (n <= 0 || cols <= 0) return;
    if (n > 0x7fffffff) throw Error("Too many tokens to embed in one call: " + std::to_string(n) + ".");
    dispatchDType(dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        embedRowsKernel<T><<<unsigned(n), kThreads, 0, stream>>>(static_cast<const T*>(table), tableRows, cols, ids, y);
    });
    PKV_CUDA_CHECK_LAUNCH();
}

}  // namespace pkv::cuda
