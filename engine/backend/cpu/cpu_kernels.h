#pragma once
// Kernels of the cpu backend that are more than a loop: weight-dtype conversion, the linear
// layer, attention. Each is written to be read; vector intrinsics appear only where the
// conversion of f16/bf16 weights dominates the cost.
#include <cstdint>
#include <vector>

#include "engine/backend/backend.h"

namespace pkv::cpu {

// Work (in multiply-adds or elements) below which a loop runs on one thread: waking the team
// and meeting at its barrier costs more than the loop, and on a busy machine a descheduled
// team member stalls the others.
constexpr int64_t kMinParallelWork = 1 << 16;

// dst[0..n) = float(src[0..n)) for weights stored as F32/F16/BF16.
void convertToFloat(const void* src, DType dtype, int64_t n, float* dst);

// y = x W^T (+ b). Small n (decode) streams each weight row once through a fused
// convert-and-dot kernel; larger n (prefill) converts panels of W to f32 and calls sgemm.
void linear(const float* x, int64_t n, const Weight& w, const Weight* bias, float* y);

// One of several linears of the same x: y = x W^T (+ bias), W [out, in] with the same `in` for all.
struct LinearTarget {
    const Weight* w = nullptr;
    const Weight* bias = nullptr;  // may be null or invalid
    float* y = nullptr;
};
// All targets at once: one parallel region, x read (decode) or packed (prefill) once.
void linears(const float* x, int64_t n, const std::vector<LinearTarget>& targets);

// y = x W^T for every target, W in f16/bf16, by widening W while packing it (cpu_gemm16.cpp);
// false, with nothing written, where the build has no AVX-512 or a W is f32.
bool gemm16(const float* x, int64_t n, const std::vector<LinearTarget>& targets);

// Attention of nq queries over nk keys/values stored row-major with `kvStride` floats per entry
// (all KV heads of one token). Query i may see keys [0, visible(i)), where
// visible(i) = causal ? keyOffset + i + 1 : nk. importance (size nk, zeroed by the caller)
// accumulates the head-averaged probabilities summed over queries; window (size
// windowRows x nk, zeroed) receives the head-averaged rows of the last windowRows queries.
void attention(const float* q, int64_t nq, const float* k, const float* v, int64_t nk, int64_t kvStride,
               const AttentionShape& s, bool causal, int64_t keyOffset, float* out, float* importance,
               float* window = nullptr, int64_t windowRows = 0);

// One query that sees all nk entries (a decode step), over keys/values stored as kvType (F32 or
// F16; 16-bit entries are read as stored and widened block by block). importance and window (size
// nk each, zeroed, may be null) as above.
void attentionOneQuery(const float* q, const void* k, const void* v, DType kvType, int64_t nk, int64_t kvStride,
                       const AttentionShape& s, float* out, float* importance, float* window);

}  // namespace pkv::cpu
