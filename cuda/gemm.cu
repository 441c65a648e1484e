#include <climits>
#include <cstdint>
#include <string>
#include <type_traits>

#include "cuda/cuda_check.h"
#include "cuda/device_util.cuh"
#include "cuda/gemm.cuh"

namespace pkv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;

// One warp per output row; lanes stride over the row. With kVector, each lane loads 16 bytes of
// weights at a time (needs rows of a multiple of 16 bytes and aligned pointers).
template <class T, bool kVector>
__global__ void __launch_bounds__(kThreads) gemvKernel(const float* x, int n, int64_t in, const T* w, int64_t out,
                                                       float* y) {
    const int lane = threadIdx.x % 32;
    const int64_t r = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    if (r >= out) return;
    const T* wr = w + r * in;
    float acc[kGemvMaxRows] = {};
    if constexpr (kVector) {
        constexpr int kV = int(16 / sizeof(T));
        for (int64_t c = int64_t(lane) * kV; c < in; c += 32 * kV) {
            const uint4 raw = *reinterpret_cast<const uint4*>(wr + c);
            const T* wv = reinterpret_cast<const T*>(&raw);
            float wf[kV];
#pragma unroll
            for (int e = 0; e < kV; ++e) wf[e] = loadFloat(wv, e);
#pragma unroll
            for (int i = 0; i < kGemvMaxRows; ++i) {
                if (i >= n) break;
                const float4* xv = reinterpret_cast<const float4*>(x + int64_t(i) * in + c);
#pragma unroll
                for (int q = 0; q < kV / 4; ++q) {
                    const float4 xq = xv[q];
                    acc[i] += wf[4 * q] * xq.x + wf[4 * q + 1] * xq.y + wf[4 * q + 2] * xq.z + wf[4 * q + 3] * xq.w;
                }
            }
        }
    } else {
        for (int64_t c = lane; c < in; c += 32) {
            const float wf = loadFloat(wr, c);
#pragma unroll
            for (int i = 0; i < kGemvMaxRows; ++i)
                if (i < n) acc[i] += wf * x[int64_t(i) * in + c];
        }
    }
#pragma unroll
    for (int i = 0; i < kGemvMaxRows; ++i) {
        if (i >= n) break;
        const float s = warpSum(acc[i]);
        if (lane == 0) y[int64_t(i) * out + r] = s;
    }
}

// x = hi + lo / kLoScale with hi, lo in the weights' 16-bit type. lo is scaled by a power of two
// (exact) so that for f16 it stays out of the subnormal range; bf16 has f32's exponent range.
template <class T>
struct Split;
template <>
struct Split<__half> {
    static constexpr float kLoScale = 2048.f;  // 2^11: (x - hi) * 2^11 is at most |hi|, no overflow
    static __device__ __forceinline__ __half round(float v) {
        // Saturate rather than overflow to inf; NaN stays NaN.
        return __float2half_rn(isnan(v) ? v : fminf(fmaxf(v, -65504.f), 65504.f));
    }
    static __device__ __forceinline__ float widen(__half h) { return __half2float(h); }
};
template <>
struct Split<__nv_bfloat16> {
    static constexpr float kLoScale = 1.f;
    static __device__ __forceinline__ __nv_bfloat16 round(float v) { return __float2bfloat16_rn(v); }
    static __device__ __forceinline__ float widen(__nv_bfloat16 h) { return __bfloat162float(h); }
};

template <class T>
__global__ void splitKernel(const float* x, int64_t n, T* hi, T* lo) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float v = x[i];
        const T h = Split<T>::round(v);
        hi[i] = h;
        lo[i] = Split<T>::round((v - Split<T>::widen(h)) * Split<T>::kLoScale);
    }
}

template <class B>
__global__ void addBiasKernel(float* y, int64_t rows, int64_t cols, const B* bias) {
    const int64_t n = rows * cols;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] += loadFloat(bias, i % cols);
}

// Bytes of one half of the split activations, rounded so that lo starts as aligned as hi (cuBLAS
// picks its vectorised kernels only for aligned operands).
int64_t splitHalfBytes(int64_t n, int64_t in) { return (n * in * 2 + 255) / 256 * 256; }

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

void gemv(const LinearArgs& a, cudaStream_t stream) {
    const unsigned blocks = unsigned((a.out + kWarpsPerBlock - 1) / kWarpsPerBlock);
    dispatchDType(a.wType, [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* w = static_cast<const T*>(a.w);
        const bool vector = (a.in * int64_t(sizeof(T))) % 16 == 0 && a.in % 4 == 0 && aligned16(w) && aligned16(a.x);
        if (vector)
            gemvKernel<T, true><<<blocks, kThreads, 0, stream>>>(a.x, int(a.n), a.in, w, a.out, a.y);
        else
            gemvKernel<T, false><<<blocks, kThreads, 0, stream>>>(a.x, int(a.n), a.in, w, a.out, a.y);
    });
    PKV_CUDA_CHECK_LAUNCH();
}

void gemm(const LinearArgs& a, void* scratch, cublasHandle_t blas, cudaStream_t stream) {
    if (a.n > INT_MAX || a.in > INT_MAX || a.out > INT_MAX)
        throw Error("A linear layer of " + std::to_string(a.n) + " x " + std::to_string(a.in) + " -> " +
                    std::to_string(a.out) + " is too large for one cuBLAS call.");
    // Row-major y [n, out] is column-major y^T [out, n] = W x^T, with W row-major [out, in]
    // read as column-major [in, out] and transposed; x row-major [n, in] is column-major [in, n].
    auto product = [&](const void* b, cudaDataType type, float alpha, float beta) {
        PKV_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(a.out), int(a.n), int(a.in), &alpha, a.w,
                                      type, int(a.in), b, type, int(a.in), &beta, a.y, CUDA_R_32F, int(a.out),
                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    };
    if (a.wType == DType::F32) {
        product(a.x, CUDA_R_32F, 1.f, 0.f);
        return;
    }
    dispatchDType(a.wType, [&](auto tag) {
        using T = typename decltype(tag)::type;
        if constexpr (!std::is_same_v<T, float>) {
            const int64_t count = a.n * a.in;
            T* hi = static_cast<T*>(scratch);
            T* lo = reinterpret_cast<T*>(static_cast<char*>(scratch) + splitHalfBytes(a.n, a.in));
            splitKernel<T><<<gridFor(count, kThreads), kThreads, 0, stream>>>(a.x, count, hi, lo);
            PKV_CUDA_CHECK_LAUNCH();
            const cudaDataType type = std::is_same_v<T, __half> ? CUDA_R_16F : CUDA_R_16BF;
            product(hi, type, 1.f, 0.f);
            product(lo, type, 1.f / Split<T>::kLoScale, 1.f);
        }
    });
}

}  // namespace

int64_t linearScratchBytes(int64_t n, int64_t in, DType wType) {
    return (n <= kGemvMaxRows || wType == DType::F32) ? 0 : 2 * splitHalfBytes(n, in);  // hi and lo
}

void linear(const LinearArgs& a, void* scratch, cublasHandle_t blas, cudaStream_t stream) {
    if (a.n <= 0 || a.out <= 0) return;
    if (a.n <= kGemvMaxRows)
        gemv(a, stream);
    else
        gemm(a, scratch, blas, stream);
    if (a.bias) {
        dispatchDType(a.biasType, [&](auto tag) {
            using B = typename decltype(tag)::type;
            addBiasKernel<B><<<gridFor(a.n * a.out, kThreads), kThreads, 0, stream>>>(a.y, a.n, a.out,
                                                                                     static_cast<const B*>(a.bias));
        });
        PKV_CUDA_CHECK_LAUNCH();
    }
}

}  // namespace pkv::cuda
