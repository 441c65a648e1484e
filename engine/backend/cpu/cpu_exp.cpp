// exp8 and exp16: see cpu_exp.h for the method and its accuracy.
#include "engine/backend/cpu/cpu_exp.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside masked intrinsics (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#define PKV_HAVE_AVX2_EXP 1
#endif

namespace pkv::cpu {
namespace {

// The constants of the method (cpu_exp.h), shared by the 8- and 16-lane forms.
constexpr float kZeroBelow = -103.9f, kClampLow = -87.3f, kClampHigh = 88.37f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2High = 0.693359375f, kLn2Low = -2.12194440e-4f;  // high part: an exact product with n
// exp(r) ~ 1 + r + r^2 (c5 + c4 r + ... + c0 r^5): c0 first, as Horner's rule takes them.
constexpr float kPoly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                            4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

#ifdef PKV_HAVE_AVX2_EXP
__m256 exp8(__m256 x) {
    const __m256 input = x, isNan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);  // NaN stays NaN
    const __m256 zeroBelow = _mm256_cmp_ps(x, _mm256_set1_ps(kZeroBelow), _CMP_GE_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kClampLow)), _mm256_set1_ps(kClampHigh));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2High), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Low), r);
    __m256 p = _mm256_set1_ps(kPoly[0]);
    for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kPoly[i]));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
    const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const __m256 e = _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(pow2n)), zeroBelow);
    return _mm256_blendv_ps(e, input, isNan);
}
#endif

#ifdef __AVX512F__
// exp8 sixteen lanes at a time: the same steps, with masks where exp8 has compare vectors.
__m512 exp16(__m512 x) {
    const __m512 input = x;
    const __mmask16 isNan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kZeroBelow), _CMP_GE_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kClampLow)), _mm512_set1_ps(kClampHigh));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2High), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Low), r);
    __m512 p = _mm512_set1_ps(kPoly[0]);
    for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kPoly[i]));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
    const __m512i pow2n = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    const __m512 e = _mm512_maskz_mov_ps(keep, _mm512_mul_ps(p, _mm512_castsi512_ps(pow2n)));
    return _mm512_mask_mov_ps(e, isNan, input);
}
#endif

}  // namespace

float maxOf(const float* x, int64_t n) {
    int64_t i = 0;
    float m = -INFINITY;
#ifdef __AVX512F__
    // max(x, m) returns m where x is NaN. Two accumulators, so consecutive maxima do not wait on
    // each other.
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
    for (; i + 32 <= n; i += 32) {
        m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
        m1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), m1);
    }
    for (; i + 16 <= n; i += 16) m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
    if (i < n) {
        const __mmask16 tail = _cvtu32_mask16((1u << (n - i)) - 1);
        m1 = _mm512_mask_max_ps(m1, tail, _mm512_maskz_loadu_ps(tail, x + i), m1);
        i = n;
    }
    m = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
#elif defined(PKV_HAVE_AVX2_EXP)
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
    for (; i + 16 <= n; i += 16) {
        m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
        m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, _mm256_max_ps(m0, m1));
    for (float l : lanes) m = std::max(m, l);
#endif
    for (; i < n; ++i) m = std::max(m, x[i]);
    return m;
}

float expShiftedSum(const float* x, float* y, int64_t n, float shift) {
    int64_t i = 0;
    float sum = 0.f;
#ifdef PKV_HAVE_AVX2_EXP
    __m256 acc = _mm256_setzero_ps();
    const __m256 s = _mm256_set1_ps(shift);
#ifdef __AVX512F__
    __m512 acc16 = _mm512_setzero_ps();
    const __m512 s16 = _mm512_set1_ps(shift);
    for (; i + 16 <= n; i += 16) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), s16));
        _mm512_storeu_ps(y + i, e);
        acc16 = _mm512_add_ps(acc16, e);
    }
    // The last n % 16 values as masked lanes: a scalar std::exp each cost as much as a row of
    // ~20 vectors (attention rows of a few hundred keys spent a tenth of their softmax there).
    if (i < n) {
        const __mmask16 tail = _cvtu32_mask16((1u << (n - i)) - 1);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + i), s16));
        _mm512_mask_storeu_ps(y + i, tail, e);
        acc16 = _mm512_mask_add_ps(acc16, tail, acc16, e);
        i = n;
    }
    acc = _mm256_add_ps(_mm512_castps512_ps256(acc16), _mm512_extractf32x8_ps(acc16, 1));
#endif
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        _mm256_storeu_ps(y + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc);
    for (float l : lanes) sum += l;
#endif
    for (; i < n; ++i) {
        y[i] = std::exp(x[i] - shift);
        sum += y[i];
    }
    return sum;
}

void sigmoidGate(const float* x, const float* m, float* y, int64_t n, float a) {
    int64_t i = 0;
#ifdef PKV_HAVE_AVX2_EXP
    const __m256 minusA = _mm256_set1_ps(-a), one = _mm256_set1_ps(1.f);
#ifdef __AVX512F__
    const __m512 minusA16 = _mm512_set1_ps(-a), one16 = _mm512_set1_ps(1.f);
    for (; i + 16 <= n; i += 16) {
        const __m512 xv = _mm512_loadu_ps(x + i);
        __m512 g = _mm512_div_ps(xv, _mm512_add_ps(one16, exp16(_mm512_mul_ps(minusA16, xv))));
        if (m) g = _mm512_mul_ps(g, _mm512_loadu_ps(m + i));
        _mm512_storeu_ps(y + i, g);
    }
#endif
    for (; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i);
        __m256 g = _mm256_div_ps(xv, _mm256_add_ps(one, exp8(_mm256_mul_ps(minusA, xv))));
        if (m) g = _mm256_mul_ps(g, _mm256_loadu_ps(m + i));
        _mm256_storeu_ps(y + i, g);
    }
#endif
    for (; i < n; ++i) y[i] = x[i] / (1.f + std::exp(-a * x[i])) * (m ? m[i] : 1.f);
}

}  // namespace pkv::cpu
