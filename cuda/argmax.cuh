#pragma once
// Greedy sampling on the device: the index of each row's first maximum, as torch.argmax picks
// (NaN entries are skipped). For later use by a decode loop that keeps logits on the device.
#include <cuda_runtime.h>

#include <cstdint>

namespace pkv::cuda {

// out[r] = argmax of row r of x [rows, cols] (-1 when the whole row is NaN); out is device memory.
void argmaxRows(const float* x, int64_t rows, int64_t cols, int* out, cudaStream_t stream);

}  // namespace pkv::cuda
