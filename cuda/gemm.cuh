#pragma once
// The linear layer y = x W^T (+ b), x [n, in] f32, W [out, in] as stored (f32/f16/bf16).
//
// n <= kGemvMaxRows (decode): a streaming kernel reads every weight row once, widens it exactly to
// f32 and accumulates in f32 — the same arithmetic as the cpu backend, bound by weight bandwidth.
// Larger n (prefill): cublasGemmEx with A = W as stored, C f32, CUBLAS_COMPUTE_32F (tensor cores,
// f32 accumulation). cuBLAS cannot multiply 16-bit W by f32 x, so x is split into two 16-bit
// halves, x = hi + lo, and y = W hi + W lo in two products (the second accumulates, beta = 1).
// Rounding x once instead would cost a relative error of 2^-11 (f16) or 2^-8 (bf16) per
// activation — on the tiny bf16 fixture a normalised MSE of 7.5e-5 in the prompt logits against
// the cpu, emulated; with the split it is 1.6e-10, so the parity tests hold every dtype to the
// f32 tolerance. The price is twice the tensor-core work of one product, small next to prefill
// attention. Activations beyond the f16 range saturate at +-65504 instead of becoming inf.
// f32 weights use f32 GEMM without TF32.
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

// Bytes of scratch linear() needs for the split activations (0 when it needs none).
int64_t linearScratchBytes(int64_t n, int64_t in, DType wType);
void linear(const LinearArgs& a, void* scratch, cublasHandle_t blas, cudaStream_t stream);

}  // namespace pkv::cuda
