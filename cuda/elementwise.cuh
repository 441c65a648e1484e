#pragma once
// Element-wise ops on f32 activations (host-side launchers; kernels in elementwise.cu). Formulas
// follow the cpu backend expression for expression, so results differ only by the device's
// expf/erff rounding (within 2 ulp).
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/common/dtype.h"

namespace pkv::cuda {

void siluMul(const float* gate, const float* up, float* y, int64_t n, cudaStream_t stream);  // y = silu(gate) * up
void gelu(float* x, int64_t n, cudaStream_t stream);                                          // exact (erf) GELU
void quickGelu(float* x, int64_t n, cudaStream_t stream);                                     // x * sigmoid(1.702 x)
void add(float* x, const float* y, int64_t n, cudaStream_t stream);                           // x += y
// x[r, c] += w[(rowOffset + r) * wStride + c] for r < rows, c < cols.
void addWeightRows(float* x, int64_t rows, int64_t cols, const void* w, DType dtype, int64_t wStride,
                   int64_t rowOffset, cudaStream_t stream);

}  // namespace pkv::cuda
