// The linear layer y = x W^T + b with W [out, in] in its stored dtype.
//
// Decode (few rows of x) is bound by reading W from memory once: each weight row is converted
// and dotted in one pass, rows split across threads. Prefill (many rows) is bound by arithmetic:
// each thread takes a block of W's rows, converts it to f32 in panels (never the whole model, at
// most kPanelBytes per thread at a time) and multiplies with single-threaded OpenBLAS sgemm.
// Threads come from OpenMP alone: OpenBLAS's own pool is set to one thread, because two pools
// spinning on two cores starve each other (a thousandfold slowdown on a loaded machine).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "engine/backend/cpu/cpu_kernels.h"

#if defined(__F16C__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PKV_HAVE_AVX2_F16C 1
#endif

namespace pkv::cpu {
namespace {

constexpr int64_t kGemmMinRows = 8;                  // below this, the streaming kernel wins
constexpr int64_t kPanelBytes = 64LL * 1024 * 1024;  // f32 scratch for one panel of W

float dot(const float* a, const float* b, int64_t n) {
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

#ifdef PKV_HAVE_AVX2_F16C
float hsum(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_hadd_ps(lo, lo);
    lo = _mm_hadd_ps(lo, lo);
    return _mm_cvtss_f32(lo);
}

// One f16 weight row dotted with x, converting 8 halves at a time without a scratch copy.
float dotF16(const uint16_t* w, const float* x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i + 8)));
        a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), a1);
    }
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; i < n; ++i) s += halfToFloat(w[i]) * x[i];
    return s;
}

float dotBf16(const uint16_t* w, const float* x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h0 = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
        __m256i h1 = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i + 8)));
        a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(h0, 16)), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(h1, 16)), _mm256_loadu_ps(x + i + 8), a1);
    }
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; i < n; ++i) s += bf16ToFloat(w[i]) * x[i];
    return s;
}
#endif

// Few rows of x: every weight row is read once and used for all of them.
void linearStreaming(const float* x, int64_t n, const Weight& w, float* y) {
    const int64_t in = w.cols, out = w.rows;
    const size_t elem = dtypeSize(w.dtype);
    const char* base = static_cast<const char*>(w.data);
#pragma omp parallel if (n * out * in >= kMinParallelWork)
    {
        std::vector<float> row(static_cast<size_t>(in));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < out; ++r) {
            const void* src = base + size_t(r) * size_t(in) * elem;
#ifdef PKV_HAVE_AVX2_F16C
            if (n == 1 && w.dtype != DType::F32) {
                const auto* h = static_cast<const uint16_t*>(src);
                y[r] = w.dtype == DType::F16 ? dotF16(h, x, in) : dotBf16(h, x, in);
                continue;
            }
#endif
            const float* wr = static_cast<const float*>(src);
            if (w.dtype != DType::F32) {
                convertToFloat(src, w.dtype, in, row.data());
                wr = row.data();
            }
            for (int64_t i = 0; i < n; ++i) y[i * out + r] = dot(wr, x + i * in, in);
        }
    }
}

// Many rows of x: each thread multiplies x by its own block of W's rows, in f32 panels.
void linearGemm(const float* x, int64_t n, const Weight& w, float* y) {
    const int64_t in = w.cols, out = w.rows;
    const size_t elem = dtypeSize(w.dtype);
    static std::once_flag blasThreads;
    std::call_once(blasThreads, [] { openblas_set_num_threads(1); });
#pragma omp parallel if (n * out * in >= kMinParallelWork)
    {
        const int threads = omp_get_num_threads(), t = omp_get_thread_num();
        // Blocks are multiples of 16 rows so every thread's sgemm gets whole kernel tiles.
        const int64_t per = ((out + threads - 1) / threads + 15) / 16 * 16;
        const int64_t begin = std::min(out, t * per), end = std::min(out, begin + per);
        if (w.dtype == DType::F32) {
            if (end > begin)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(end - begin), int(in), 1.f, x,
                            int(in), static_cast<const float*>(w.data) + begin * in, int(in), 0.f, y + begin,
                            int(out));
        } else {
            const int64_t panelRows =
                std::max<int64_t>(1, std::min<int64_t>(end - begin, kPanelBytes / threads / (in * 4)));
            std::vector<float> panel(size_t(panelRows * in));
            for (int64_t r0 = begin; r0 < end; r0 += panelRows) {
                const int64_t rows = std::min(panelRows, end - r0);
                convertToFloat(static_cast<const char*>(w.data) + size_t(r0) * size_t(in) * elem, w.dtype,
                               rows * in, panel.data());
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(rows), int(in), 1.f, x, int(in),
                            panel.data(), int(in), 0.f, y + r0, int(out));
            }
        }
    }
}

}  // namespace

void linear(const float* x, int64_t n, const Weight& w, const Weight* bias, float* y) {
    if (n < kGemmMinRows)
        linearStreaming(x, n, w, y);
    else
        linearGemm(x, n, w, y);
    if (bias && bias->valid()) {
        std::vector<float> b(size_t(w.rows));
        convertToFloat(bias->data, bias->dtype, w.rows, b.data());
        for (int64_t i = 0; i < n; ++i)
            for (int64_t r = 0; r < w.rows; ++r) y[i * w.rows + r] += b[size_t(r)];
    }
}

}  // namespace pkv::cpu
