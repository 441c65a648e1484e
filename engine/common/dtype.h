#pragma once
// Element types weights can be stored in. Weights stay in their file dtype; kernels convert
// small blocks on the fly.
#include <cstdint>
#include <cstring>
#include <string>

namespace pkv {

enum class DType { F32, F16, BF16 };

inline size_t dtypeSize(DType t) { return t == DType::F32 ? 4 : 2; }
inline const char* dtypeName(DType t) {
    switch (t) {
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
    }
    return "?";
}

// IEEE half -> float, exact (handles subnormals, inf, nan).
inline float halfToFloat(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do { mant <<= 1; ++e; } while (!(mant & 0x400));
            bits = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | mant << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | mant << 13;
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// float -> IEEE half with round-to-nearest-even (what F16C's vcvtps2ph does): values beyond the
// half range become inf, those below its subnormals 0, nan stays nan.
inline uint16_t floatToHalf(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    const uint16_t sign = uint16_t((bits >> 16) & 0x8000);
    const uint32_t absBits = bits & 0x7fffffff;
    if (absBits > 0x7f800000) return uint16_t(sign | 0x7e00);  // quiet nan
    if (absBits >= 0x477ff000) return uint16_t(sign | 0x7c00);  // rounds to beyond 65504: inf
    if (absBits < 0x38800000) {                                 // below 2^-14: a subnormal half or 0
        if (absBits < 0x33000000) return sign;                  // below half the smallest subnormal
        const uint32_t mant = (absBits & 0x7fffff) | 0x800000;   // with the implicit bit
        const int shift = 126 - int(absBits >> 23);              // 14..24: aligns to 2^-24 units
        uint32_t h = mant >> shift;
        const uint32_t rest = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (h & 1))) ++h;
        return uint16_t(sign | h);
    }
    // Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even (a carry
    // into the exponent is the correct result).
    uint32_t h = ((absBits >> 23) - 112) << 10 | ((absBits >> 13) & 0x3ff);
    const uint32_t rest = absBits & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
    return uint16_t(sign | h);
}

inline float bf16ToFloat(uint16_t b) {
    uint32_t bits = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// float -> bf16 with round-to-nearest-even, as torch does.
inline uint16_t floatToBf16(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffff) > 0x7f800000) return uint16_t((bits >> 16) | 0x40);  // quiet nan
    bits += 0x7fff + ((bits >> 16) & 1);
    return uint16_t(bits >> 16);
}

}  // namespace pkv
