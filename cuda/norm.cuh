#pragma once
// Row normalisations with f32/f16/bf16 scale and shift vectors: one block per row, a fixed-order
// block reduction (deterministic), the same expressions as the cpu backend.
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/common/dtype.h"

namespace pkv::cuda {

// y = gamma * (x / sqrt(mean(x^2) + eps))
void rmsNorm(const float* x, int64_t rows, int64_t cols, const void* gamma, DType gammaType, float eps, float* y,
             cudaStream_t stream);
// y = (x - mean) / sqrt(var + eps) * gamma + beta (biased variance)
void layerNorm(const float* x, int64_t rows, int64_t cols, const void* gamma, DType gammaType, const void* beta,
               DType betaType, float eps, float* y, cudaStream_t stream);

}  // namespace pkv::cuda
