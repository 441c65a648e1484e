// Weight conversion to float32. This sits on the decode hot path (every weight byte passes
// through it once per token), so the f16/bf16 cases use the F16C/AVX2 units when compiled for them.
#include <cstring>

#include "engine/backend/cpu/cpu_kernels.h"
#include "engine/backend/cpu/cpu_widen.h"

namespace pkv::cpu {

void convertToFloat(const void* src, DType dtype, int64_t n, float* dst) {
    if (dtype == DType::F32) {
        std::memcpy(dst, src, size_t(n) * 4);
        return;
    }
    const uint16_t* s = static_cast<const uint16_t*>(src);
    int64_t i = 0;
#if defined(__F16C__) && defined(__AVX2__)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, widen8(s + i, dtype));
#endif
    for (; i < n; ++i) dst[i] = widen1(s[i], dtype);
}

}  // namespace pkv::cpu
