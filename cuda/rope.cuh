#pragma once
// Rotary position embedding, rotate-half layout, in place on x [rows, stride] whose first
// numHeads * headDim columns are heads of headDim. Angles are float(position) * invFreq[i] in
// float32 with invFreq computed on the host exactly as the cpu backend does (std::pow in
// float), so the device differs only in cosf/sinf rounding.
#include <cuda_runtime.h>

#include <cstdint>

namespace pkv::cuda {

// Row r is at position positions[r] when `positions` (device memory) is given, else at
// firstPosition + r: the common contiguous case needs no upload.
void rope(float* x, int64_t rows, int64_t stride, int numHeads, int headDim, const float* invFreq,
          const int64_t* positions, int64_t firstPosition, cudaStream_t stream);

}  // namespace pkv::cuda
