#pragma once
// Row movement inside KV cache storage (rows of `width` floats).
#include <cuda_runtime.h>

#include <cstdint>

namespace pkv::cuda {

// dst[r, :] = src[indices[r], :] for r < count; `indices` is device memory. Sources and
// destination must not overlap (gather goes through a fresh buffer); an index outside
// [0, srcRows) leaves its destination row untouched.
void gatherRows(const float* src, int64_t srcRows, const int64_t* indices, int64_t count, int64_t width, float* dst,
                cudaStream_t stream);

}  // namespace pkv::cuda
