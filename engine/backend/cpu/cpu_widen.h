#pragma once
// 16-bit weights (f16 or bf16) widened to f32 exactly, one value or a vector register at a time:
// the one conversion every cpu kernel that reads stored weights shares (convertToFloat, the decode
// GEMV, the prefill GEMM's packing). The vector forms exist where the compiler targets the units.
#include <cstdint>

#include "engine/common/dtype.h"

#if defined(__F16C__) && defined(__AVX2__)
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized inside the widening casts and
// _mm512_reduce_add_ps (GCC bug 105593); the warning is about the header, not the includer.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace pkv::cpu {

inline float widen1(uint16_t h, DType t) { return t == DType::F16 ? halfToFloat(h) : bf16ToFloat(h); }

#if defined(__F16C__) && defined(__AVX2__)
// 8 consecutive weights.
inline __m256 widen8(const uint16_t* w, DType t) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
    if (t == DType::F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));  // bf16: the high half
}
#endif

#ifdef __AVX512F__
// 16 consecutive weights.
inline __m512 widen16(const uint16_t* w, DType t) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
    if (t == DType::F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
#endif

// The other direction, for a key/value cache kept in f16: dst[0..n) = half(src[0..n)), rounded to
// nearest even, with values beyond the half range saturated to ±65504 rather than turned into inf
// (one outlier key would otherwise make a whole softmax row nan).
inline void narrowToHalf(const float* src, int64_t n, uint16_t* dst) {
    constexpr float kMax = 65504.f;
    int64_t i = 0;
#if defined(__F16C__) && defined(__AVX2__)
    const __m256 hi = _mm256_set1_ps(kMax), lo = _mm256_set1_ps(-kMax);
    for (; i + 8 <= n; i += 8) {
        // min/max return their second operand when either is nan: a nan stays nan.
        const __m256 x = _mm256_max_ps(lo, _mm256_min_ps(hi, _mm256_loadu_ps(src + i)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
#endif
    for (; i < n; ++i) {
        const float x = src[i];
        dst[i] = floatToHalf(x > kMax ? kMax : x < -kMax ? -kMax : x);
    }
}

}  // namespace pkv::cpu
