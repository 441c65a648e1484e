// The linear layer y = x W^T + b with W [out, in] in its stored dtype.
//
// Decode (few rows of x) is bound by reading W from memory once: each weight row is converted
// and dotted in one pass, rows split across threads. Prefill (many rows) is bound by arithmetic:
// 16-bit weights go to gemm16 (cpu_gemm16.cpp), which widens W while packing it; f32 weights, and
// 16-bit ones on builds without AVX-512, go to OpenBLAS: each thread takes a block of W's rows,
// converts it to f32 in panels (never the whole model, at most kPanelBytes per thread at a time)
// and multiplies with single-threaded sgemm.
// Threads come from OpenMP alone: OpenBLAS's own pool is set to one thread, because two pools
// spinning on two cores starve each other (a thousandfold slowdown on a loaded machine).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/backend/cpu/cpu_aligned.h"
#include "engine/backend/cpu/cpu_kernels.h"
#include "engine/backend/cpu/cpu_widen.h"

#if defined(__F16C__) && defined(__AVX2__) && defined(__FMA__)
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

// Four 16-bit weight rows dotted with one x, converting 8 weights at a time without a scratch
// copy. Each load of x serves four rows, so x's traffic through L1 is a quarter of the weights'.
//
// While it reads these four rows, it asks for the next four (the 4 x stride halves that follow,
// `next`) to be brought into L2, one cache line per row-line read. Without this the hardware
// prefetcher must find four new streams every few kilobytes, and stops at each 4 KiB page; with
// it a decode GEMV streams at 30-40 GB/s instead of 20-29 (bench/README.md). It also asks for the
// group after next, so every line is asked for twice, two groups and one group ahead: in the fast
// bandwidth phase that lifts the GEMV from 51-57 to 58-64 GB/s, level with a plain read (30 rows
// alternating, bench/README.md, seventh session), where asking two groups ahead once did nothing.
// Prefetching past the end of the matrix is harmless: a prefetch never faults.
//
// 8 weights per instruction even where the CPU has AVX-512. Measured, not derived: a 16-wide
// version of this loop (half the instructions, and in L2 5-15% faster) streams from memory 4%
// slower whenever the memory bus is fast: over 1,000 alternating pairs on 7B- and 1.1B-wide rows,
// 0.88 of the triad 16-wide against 0.92 8-wide in the fast phase (739 pairs), 0.91 and 0.905
// in the slow one (bench/README.md, seventh session). Kernels that run slower in cache stream
// faster here, as the x offset below also shows (a guess at why: the faster loop catches up with
// lines still in flight and waits on them as demand misses).
//
// The dtype is a template argument: with it known at compile time the widening is one instruction,
// where a runtime dtype left a test in the inner loop (in the fast bandwidth phase the GEMV then
// streamed at 48-50 GB/s instead of 53-56).
template <DType t>
void dot4(const uint16_t* w, int64_t stride, const float* x, int64_t n, float* y, uintptr_t next) {
    uintptr_t after = next + uintptr_t(4 * stride) * sizeof(uint16_t);  // the group after next
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    auto step8 = [&](int64_t j) {
        const __m256 xv = _mm256_loadu_ps(x + j);
        a0 = _mm256_fmadd_ps(widen8(w + j, t), xv, a0);
        a1 = _mm256_fmadd_ps(widen8(w + stride + j, t), xv, a1);
        a2 = _mm256_fmadd_ps(widen8(w + 2 * stride + j, t), xv, a2);
        a3 = _mm256_fmadd_ps(widen8(w + 3 * stride + j, t), xv, a3);
    };
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {  // 32 halves = one 64-byte line of each row
        for (int line = 0; line < 4; ++line) {
            _mm_prefetch(reinterpret_cast<const char*>(next + 64 * line), _MM_HINT_T1);
            _mm_prefetch(reinterpret_cast<const char*>(after + 64 * line), _MM_HINT_T2);
        }
        next += 256, after += 256;
        for (int64_t j = i; j < i + 32; j += 8) step8(j);
    }
    for (; i + 8 <= n; i += 8) step8(i);
    y[0] = hsum(a0), y[1] = hsum(a1), y[2] = hsum(a2), y[3] = hsum(a3);
    for (; i < n; ++i)
        for (int r = 0; r < 4; ++r) y[r] += widen1(w[r * stride + i], t) * x[i];
}
#endif

// Few rows of x: every weight row is read once and used for all of them. Row groups are handed
// out in guided chunks: large ones first (half the remaining groups over the threads), so each
// thread streams a long contiguous run of W with its prefetch always one group ahead inside it,
// then shrinking to 16 groups (64 rows), so that the threads still finish within one small chunk
// of each other (fixed chunks of 64 groups left one thread waiting up to 50 µs per call). Against
// fixed chunks of 16 groups: GEMV alone over 7B-shaped tensors 0.98-1.11 -> 1.0-1.15 of the triad,
// the 1.1B decode 83-86% -> 85-93% of the bound (paired, alternating runs).
// Several targets sharing x (q/k/v, gate/up) run in one parallel region: their row groups are
// numbered one after another, so no thread waits at a barrier between them.
//
// The four-row kernel reads x through a copy that starts 16 bytes into a cache line, so that every
// other 32-byte load of x straddles two lines. This is measured, not derived: with x on a line
// boundary the weights stream slower whenever the memory bus is fast (8-wide kernel over 7B-wide
// rows, alternating passes: 50-53 vs 55-59 GB/s; the 16-wide kernel it replaced lost 4-15%, and
// x at +32 fell in between; no difference when the bus is slow), while in L2 the offset costs the
// 8-wide kernel nothing (73 vs 75 GB/s). Prefetching x, or prefetching the weights further ahead,
// did not give the same.
void linearStreaming(const float* x, int64_t n, const std::vector<LinearTarget>& targets) {
    const int64_t in = targets.front().w->cols;
#ifdef PKV_HAVE_AVX2_F16C
    std::vector<float, CacheLineAllocator<float>> shifted;
    if (n == 1) {
        constexpr size_t kOffset = 16 / sizeof(float);
        shifted.reserve(kOffset + size_t(in));
        shifted.assign(kOffset, 0.f);
        shifted.insert(shifted.end(), x, x + in);  // each value written once, no zero fill first
        x = shifted.data() + kOffset;
    }
#endif
    std::vector<int64_t> firstGroup(targets.size() + 1, 0);  // four rows per task
    int64_t work = 0;
    for (size_t t = 0; t < targets.size(); ++t) {
        firstGroup[t + 1] = firstGroup[t] + (targets[t].w->rows + 3) / 4;
        work += n * targets[t].w->rows * in;
    }
    const int64_t groups = firstGroup.back();
#pragma omp parallel if (work >= kMinParallelWork)
    {
        std::vector<float> row(static_cast<size_t>(in));
        size_t t = 0;
#pragma omp for schedule(guided, 16)
        for (int64_t g = 0; g < groups; ++g) {
            while (g >= firstGroup[t + 1]) ++t;  // chunks only move forward within a thread
            while (g < firstGroup[t]) --t;
            const Weight& w = *targets[t].w;
            float* y = targets[t].y;
            const int64_t out = w.rows, r0 = (g - firstGroup[t]) * 4, rows = std::min<int64_t>(4, out - r0);
            const size_t elem = dtypeSize(w.dtype);
            const char* base = static_cast<const char*>(w.data);
#ifdef PKV_HAVE_AVX2_F16C
            if (n == 1 && w.dtype != DType::F32 && rows == 4) {
                const auto* rows4 = reinterpret_cast<const uint16_t*>(base + size_t(r0) * size_t(in) * elem);
                const auto next = reinterpret_cast<uintptr_t>(rows4 + 4 * in);
                if (w.dtype == DType::F16)
                    dot4<DType::F16>(rows4, in, x, in, y + r0, next);
                else
                    dot4<DType::BF16>(rows4, in, x, in, y + r0, next);
                continue;
            }
#endif
            for (int64_t r = r0; r < r0 + rows; ++r) {
                const void* src = base + size_t(r) * size_t(in) * elem;
                const float* wr = static_cast<const float*>(src);
                if (w.dtype != DType::F32) {
                    convertToFloat(src, w.dtype, in, row.data());
                    wr = row.data();
                }
                for (int64_t i = 0; i < n; ++i) y[i * out + r] = dot(wr, x + i * in, in);
            }
        }
    }
}

// Many rows of x: each thread multiplies x by its own block of W's rows, in f32 panels.
void linearGemm(const float* x, int64_t n, const Weight& w, float* y) {
    const int64_t in = w.cols, out = w.rows;
    const size_t elem = dtypeSize(w.dtype);
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
    linears(x, n, {LinearTarget{&w, bias, y}});
}

void linears(const float* x, int64_t n, const std::vector<LinearTarget>& targets) {
    if (targets.empty()) return;
    if (n < kGemmMinRows)
        linearStreaming(x, n, targets);
    else if (!gemm16(x, n, targets))
        for (const LinearTarget& t : targets) linearGemm(x, n, *t.w, t.y);
    for (const LinearTarget& t : targets) {
        if (!t.bias || !t.bias->valid()) continue;
        const int64_t out = t.w->rows;
        std::vector<float> b(static_cast<size_t>(out));
        convertToFloat(t.bias->data, t.bias->dtype, out, b.data());
        for (int64_t i = 0; i < n; ++i)
            for (int64_t r = 0; r < out; ++r) t.y[i * out + r] += b[size_t(r)];
    }
}

}  // namespace pkv::cpu
