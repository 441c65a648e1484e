#pragma once
// The linear layer y = x W^T (+ b), x [n, in] f32, W [out, in] as stored (f32/f16/bf16).
//
// n <= kGemvMaxRows (decode): a streaming kernel reads every weight row once, widens it exactly to
// f32 and accumulates in f32 — the same arithmetic as the cpu backend, bound by weight bandwidth.
// Larger n (prefill): cublasGemmEx with A = W as stored, B = x rounded to W's 16-bit type, C f32,
// CUBLAS_COMPUTE_32F (tensor cores, f32 accumulation). Rounding x is the one precision loss of
// the backend: a relative error of 2^-11 (f16) or 2^-8 (bf16) per activation, which gives a
// normalised MSE against the cpu of about 1e-7 (f16) or 5e-6 (bf16) — the parity tests allow
// 1e-4. Activations beyond the f16 range saturate at +-65504 instead of becoming inf (half-precision
// inference of these models keeps activations in that range anyway). f32 weights use f32 GEMM
// without TF32.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/common/dtype.h"

namespace pkv::cuda {

constexpr int64_t kGemvMaxRows = 4;

struct LinearArgs {
    const float* x = nullptr;
    int64_t n = 0, in = 0, out = 0;
    const void* w = nullptr;
    DType wType = DType::F32;
    const void* bias = nullptr;  // [out] or null
    DType biasType = DType::F32;
    float* y = nullptr;
};

// Bytes of scratch linear() needs for the rounded activations (0 when it needs none).
int64_t linearScratchBytes(int64_t n, int64_t in, DType wType);
void linear(const LinearArgs& a, void* scratch, cublasHandle_t blas, cudaStream_t stream);

}  // namespace pkv::cuda
