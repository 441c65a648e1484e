#pragma once
// Embedding gather: y[i, :] = float(table[ids[i], :]) for f32/f16/bf16 tables (exact widening).
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/common/dtype.h"

namespace pkv::cuda {

// `ids` is device memory holding n ids already checked against the table's rows; an id outside
// [0, tableRows) leaves its row of y untouched rather than reading out of bounds.
void embedRows(const void* table, DType dtype, int64_t tableRows, int64_t cols, const int* ids, int64_t n, float* y,
               cudaStream_t stream);

}  // namespace pkv::cuda
