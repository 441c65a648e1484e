#pragma once
// Vectorised exp(x) for the loops that are mostly exponentials: softmax rows in
// attention (one exp per probability), SiLU and quick-GELU. glibc's expf is scalar here (its
// vector variants need -ffast-math), and a decode step's attention spent most of its time in it.
//
// Method (Cephes expf): x = n ln2 + r with n = round(x / ln2) and |r| <= ln2/2, r taken in two
// parts of ln2 so it is exact; exp(r) by a degree-6 polynomial (relative error < 2e-7, about
// 1 ulp of float, tested against std::exp); 2^n added to the exponent bits. Inputs are clamped
// to [-87.3, 88.37], where 2^n stays a normal float: below, the true result is at most 1.2e-38
// and inputs below -103.9 (where expf itself returns 0) give exactly 0; above, the result stays
// exp(88.37) = 2.4e38 (the callers feed x - max <= 0 to softmax and only use exp(-x) in a
// denominator, where either is as good as infinity). NaN stays NaN.
#include <cstdint>

namespace pkv::cpu {

// The largest of x[0..n) (-inf when n is 0), the shift of a softmax row; NaNs are skipped, as
// std::max(m, x) skips them. GCC does not vectorise `omp simd reduction(max)` over floats here:
// that loop took 1.3 cycles per value, longer than the exponentials after it.
float maxOf(const float* x, int64_t n);

// y[i] = exp(x[i] - shift) for i < n (in place allowed); returns the sum of the y[i].
float expShiftedSum(const float* x, float* y, int64_t n, float shift);

// y[i] = x[i] * sigmoid(a * x[i]) * (m ? m[i] : 1): SiLU (a = 1) gated by `m`, or quick-GELU
// (a = 1.702) with m null. In place allowed.
void sigmoidGate(const float* x, const float* m, float* y, int64_t n, float a);

}  // namespace pkv::cpu
