#pragma once
// Device-side helpers shared by the kernels (.cu files only): weight element loads, warp and
// block reductions with a fixed summation order (results do not depend on scheduling), and the
// dtype dispatch that turns a runtime DType into a template argument.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/common/dtype.h"

namespace pkv::cuda {

__device__ __forceinline__ float loadFloat(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float loadFloat(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float loadFloat(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }

__device__ __forceinline__ float warpSum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warpMax(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Sum over a block of kThreads (a multiple of 32, at most 1024); every thread gets the result.
// `scratch` holds 32 floats of shared memory and may be reused right after the call returns.
template <int kThreads>
__device__ float blockSum(float v, float* scratch) {
    static_assert(kThreads % 32 == 0 && kThreads <= 1024, "whole warps");
    constexpr int kWarps = kThreads / 32;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v = warpSum(v);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float total = lane < kWarps ? scratch[lane] : 0.f;
    return warpSum(total);
}

template <class T>
struct TypeTag {
    using type = T;
};

// Calls f(TypeTag<float|__half|__nv_bfloat16>{}) for a weight's storage type.
template <class F>
void dispatchDType(DType t, F&& f) {
    switch (t) {
        case DType::F32: f(TypeTag<float>{}); return;
        case DType::F16: f(TypeTag<__half>{}); return;
        case DType::BF16: f(TypeTag<__nv_bfloat16>{}); return;
    }
}

// A grid for a grid-stride loop over n items: enough blocks to fill the device, never more
// than the items need.
inline unsigned gridFor(int64_t n, int threads) {
    const int64_t blocks = (n + threads - 1) / threads;
    return unsigned(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

}  // namespace pkv::cuda
