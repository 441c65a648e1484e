#pragma once
// The register tile the prefill's matrix products run on where the CPU has AVX-512: 12 rows of
// the left operand by 32 columns of the right one, held in 24 zmm registers while k runs. Per k:
// two loads of b, twelve broadcasts of a, 24 fused multiply-adds. Alone, with its operands in L1
// or L2, it runs at 185-200 GFLOP/s per core on the Intel Xeon VM of bench/README.md, above
// OpenBLAS's sgemm on the same machine.
// Used by gemm16 (x by 16-bit W) and by the attention tiles (Q by K^T, P by V).
//
// Where the CPU has AVX2 and FMA but not AVX-512, the same tile at half the size: 6 rows by 16
// columns in 12 of the 16 ymm registers (per k: two loads of b, six broadcasts, 12 fused
// multiply-adds), the shape OpenBLAS's Haswell and Zen kernels use. There only gemm16 uses it.
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>

#include <cstdint>

namespace pkv::cpu {

#ifdef __AVX512F__
constexpr int kTileRows = 12;
constexpr int kTileCols = 32;

// y[m][0..32) (rows ldy floats apart) = (accumulate ? y : 0) + sum over k < kc of a(m, k) b[k],
// for m < 12, where b's row k is the 32 floats at b + k * ldb, and a(m, k) is a[k * lda + m]
// when a is packed by columns (gemm16 packs x so, lda = 12) or a[m * lda + k] when its rows are
// read in place (RowsInPlace).
template <bool RowsInPlace>
inline void tileKernel(const float* a, int64_t lda, const float* b, int64_t ldb, int kc, float* y, int64_t ldy,
                       bool accumulate) {
    __m512 lo[kTileRows], hi[kTileRows];
    for (int m = 0; m < kTileRows; ++m) lo[m] = hi[m] = _mm512_setzero_ps();
    for (int k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_loadu_ps(b + k * ldb), b1 = _mm512_loadu_ps(b + k * ldb + 16);
        for (int m = 0; m < kTileRows; ++m) {
            const __m512 av = _mm512_set1_ps(RowsInPlace ? a[m * lda + k] : a[k * lda + m]);
            lo[m] = _mm512_fmadd_ps(av, b0, lo[m]);
            hi[m] = _mm512_fmadd_ps(av, b1, hi[m]);
        }
    }
    for (int m = 0; m < kTileRows; ++m) {
        float* row = y + m * ldy;
        if (accumulate) {
            lo[m] = _mm512_add_ps(lo[m], _mm512_loadu_ps(row));
            hi[m] = _mm512_add_ps(hi[m], _mm512_loadu_ps(row + 16));
        }
        _mm512_storeu_ps(row, lo[m]);
        _mm512_storeu_ps(row + 16, hi[m]);
    }
}
#else
constexpr int kTileRows = 6;
constexpr int kTileCols = 16;

// As above with 6 rows and 16 columns.
template <bool RowsInPlace>
inline void tileKernel(const float* a, int64_t lda, const float* b, int64_t ldb, int kc, float* y, int64_t ldy,
                       bool accumulate) {
    __m256 lo[kTileRows], hi[kTileRows];
    for (int m = 0; m < kTileRows; ++m) lo[m] = hi[m] = _mm256_setzero_ps();
    for (int k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_loadu_ps(b + k * ldb), b1 = _mm256_loadu_ps(b + k * ldb + 8);
        for (int m = 0; m < kTileRows; ++m) {
            const __m256 av = _mm256_broadcast_ss(RowsInPlace ? a + m * lda + k : a + k * lda + m);
            lo[m] = _mm256_fmadd_ps(av, b0, lo[m]);
            hi[m] = _mm256_fmadd_ps(av, b1, hi[m]);
        }
    }
    for (int m = 0; m < kTileRows; ++m) {
        float* row = y + m * ldy;
        if (accumulate) {
            lo[m] = _mm256_add_ps(lo[m], _mm256_loadu_ps(row));
            hi[m] = _mm256_add_ps(hi[m], _mm256_loadu_ps(row + 8));
        }
        _mm256_storeu_ps(row, lo[m]);
        _mm256_storeu_ps(row + 8, hi[m]);
    }
}
#endif

}  // namespace pkv::cpu
#endif
