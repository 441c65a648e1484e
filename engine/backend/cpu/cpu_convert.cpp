// Weight conversion to float32. This sits on the decode hot path (every weight byte passes
// through it once per token), so the f16/bf16 cases use the F16C/AVX2 units when compiled for them.
#include <cstring>

#include "engine/backend/cpu/cpu_kernels.h"

#if defined(__F16C__) && defined(__AVX2__)
#include <immintrin.h>
#endif

namespace pkv::cpu {

void convertToFloat(const void* src, DType dtype, int64_t n, float* dst) {
    if (dtype == DType::F32) {
        std::memcpy(dst, src, size_t(n) * 4);
        return;
    }
    const uint16_t* s = static_cast<const uint16_t*>(src);
    int64_t i = 0;
#if defined(__F16C__) && defined(__AVX2__)
    if (dtype == DType::F16) {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
    } else {
        for (; i + 8 <= n; i += 8) {
            __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
        }
    }
#endif
    for (; i < n; ++i) dst[i] = dtype == DType::F16 ? halfToFloat(s[i]) : bf16ToFloat(s[i]);
}

}  // namespace pkv::cpu
