#include "cuda/cuda_check.h"
#include "cuda/device_util.cuh"
#include "cuda/norm.cuh"

namespace pkv::cuda {
namespace {

constexpr int kThreads = 256;

template <class G>
__global__ void __launch_bounds__(kThreads) rmsNormKernel(const float* x, int64_t cols, const G* gamma, float eps,
                                                          float* y) {
    __shared__ float scratch[32];
    const float* xr = x + int64_t(blockIdx.x) * cols;
    float* yr = y + int64_t(blockIdx.x) * cols;
    float ss = 0.f;
    for (int64_t i = threadIdx.x; i < cols; i += kThreads) ss += xr[i] * xr[i];
    ss = blockSum<kThreads>(ss, scratch);
    const float inv = 1.f / sqrtf(ss / float(cols) + eps);
    for (int64_t i = threadIdx.x; i < cols; i += kThreads) yr[i] = loadFloat(gamma, i) * (xr[i] * inv);
}

// Two passes over the row (mean, then squared deviations), as the cpu does: the one-pass
// E[x^2] - E[x]^2 form loses precision when the mean is large against the spread.
template <class G, class B>
__global__ void __launch_bounds__(kThreads) layerNormKernel(const float* x, int64_t cols, const G* gamma,
                                                            const B* beta, float eps, float* y) {
    __shared__ float scratch[32];
    const float* xr = x + int64_t(blockIdx.x) * cols;
    float* yr = y + int64_t(blockIdx.x) * cols;
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < cols; i += kThreads) s += xr[i];
    const float mean = blockSum<kThreads>(s, scratch) / float(cols);
    float var = 0.f;
    for (int64_t i = threadIdx.x; i < cols; i += kThreads) var += (xr[i] - mean) * (xr[i] - mean);
    var = blockSum<kThreads>(var, scratch) / float(cols);
    const float inv = 1.f / sqrtf(var + eps);
    for (int64_t i = threadIdx.x; i < cols; i += kThreads)
        yr[i] = (xr[i] - mean) * inv * loadFloat(gamma, i) + loadFloat(beta, i);
}

void checkRows(int64_t rows) {
    if (rows > 0x7fffffff) throw Error("Too many rows to normalise in one call: " + std::to_string(rows) + ".");
}

}  // namespace

void rmsNorm(const float* x, int64_t rows, int64_t cols, const void* gamma, DType gammaType, float eps, float* y,
             cudaStream_t stream) {
    if (rows <= 0 || cols <= 0) return;
    checkRows(rows);
    dispatchDType(gammaType, [&](auto tag) {
        using G = typename decltype(tag)::type;
        rmsNormKernel<G><<<unsigned(rows), kThreads, 0, stream>>>(x, cols, static_cast<const G*>(gamma), eps, y);
    });
    PKV_CUDA_CHECK_LAUNCH();
}

void layerNorm(const float* x, int64_t rows, int64_t cols, const void* gamma, DType gammaType, const void* beta,
               DType betaType, float eps, float* y, cudaStream_t stream) {
    if (rows <= 0 || cols <= 0) return;
    checkRows(rows);
    dispatchDType(gammaType, [&](auto gtag) {
        using G = typename decltype(gtag)::type;
        dispatchDType(betaType, [&](auto btag) {
            using B = typename decltype(btag)::type;
            layerNormKernel<G, B><<<unsigned(rows), kThreads, 0, stream>>>(
                x, cols, static_cast<const G*>(gamma), static_cast<const B*>(beta), eps, y);
        });
    });
    PKV_CUDA_CHECK_LAUNCH();
}

}  // namespace pkv::cuda
