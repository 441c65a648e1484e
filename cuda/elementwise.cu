#include "cuda/cuda_check.h"
#include "cuda/device_util.cuh"
#include "cuda/elementwise.cuh"

namespace pkv::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void siluMulKernel(const float* gate, const float* up, float* y, int64_t n) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float g = gate[i];
        y[i] = g / (1.f + expf(-g)) * up[i];
    }
}

__global__ void geluKernel(float* x, int64_t n) {
    const float invSqrt2 = 0.70710678118654752440f;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        x[i] = 0.5f * x[i] * (1.f + erff(x[i] * invSqrt2));
}

__global__ void quickGeluKernel(float* x, int64_t n) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        x[i] = x[i] / (1.f + expf(-1.702f * x[i]));
}

__global__ void addKernel(float* x, const float* y, int64_t n) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        x[i] += y[i];
}

template <class T>
__global__ void addWeightRowsKernel(float* x, int64_t rows, int64_t cols, const T* w, int64_t wStride,
                                    int64_t rowOffset) {
    const int64_t n = rows * cols;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / cols, c = i % cols;
        x[i] += loadFloat(w, (rowOffset + r) * wStride + c);
    }
}

}  // namespace

void siluMul(const float* gate, const float* up, float* y, int64_t n, cudaStream_t stream) {
    if (n <= 0) return;
    siluMulKernel<<<gridFor(n, kThreads), kThreads, 0, stream>>>(gate, up, y, n);
    PKV_CUDA_CHECK_LAUNCH();
}

void gelu(float* x, int64_t n, cudaStream_t stream) {
    if (n <= 0) return;
    geluKernel<<<gridFor(n, kThreads), kThreads, 0, stream>>>(x, n);
    PKV_CUDA_CHECK_LAUNCH();
}

void quickGelu(float* x, int64_t n, cudaStream_t stream) {
    if (n <= 0) return;
    quickGeluKernel<<<gridFor(n, kThreads), kThreads, 0, stream>>>(x, n);
    PKV_CUDA_CHECK_LAUNCH();
}

void add(float* x, const float* y, int64_t n, cudaStream_t stream) {
    if (n <= 0) return;
    addKernel<<<gridFor(n, kThreads), kThreads, 0, stream>>>(x, y, n);
    PKV_CUDA_CHECK_LAUNCH();
}

void addWeightRows(float* x, int64_t rows, int64_t cols, const void* w, DType dtype, int64_t wStride,
                   int64_t rowOffset, cudaStream_t stream) {
    if (rows * cols <= 0) return;
    dispatchDType(dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        addWeightRowsKernel<T><<<gridFor(rows * cols, kThreads), kThreads, 0, stream>>>(
            x, rows, cols, static_cast<const T*>(w), wStride, rowOffset);
    });
    PKV_CUDA_CHECK_LAUNCH();
}

}  // namespace pkv::cuda
