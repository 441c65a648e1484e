// The linear layer y = x W^T + b with W [out, in] in its stored dtype.
//
// Decode (few rows of x) is bound by reading W from memory once: each weight row is converted
// and dotted in one pass, rows split across threads. Prefill (many rows) is bound by arithmetic:
// 16-bit weights go to gemm16 (cpu_gemm16.cpp), which widens W while packing it; f32 weights, and
// 16-bit ones on builds without AVX2/AVX-512 with FMA and F16C, go to OpenBLAS: each thread takes a block of W's rows,
// converts it to f32 in panels (never the whole model, at most kPanelBytes per thread at a time)
// and multiplies with single-threaded sgemm.
// Threads come from OpenMP alone: OpenBLAS's own pool is set to one thread, because two pools
// spinning on two cores starve each other (a thousandfold slowdown on a loaded machine).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

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

// How far ahead of its reads each weight stream asks for lines (into L2, one request per line).
// Measured on the 7B bench model's files (2 threads, 4 streams each, alternating passes over all
// 13 GB): 0.5 KiB ahead 19.4 GB/s, 1 KiB 27.5, 2 KiB 27.6-28.7, 3 KiB 28.0, 4 KiB 26.1; T1 and
// T2 hints alike.
constexpr int kPrefetchBytes = 2048;

// S 16-bit weight rows dotted with one x: y[s] = w_s . x, 8 weights widened per instruction. Each
// load of x serves all S rows. The rows are S independent streams (see linearStreaming), each
// asking for the line kPrefetchBytes ahead of where it reads. Every row is summed the same way
// (one 8-lane accumulator in order, then its lanes, then the scalar tail) whatever S is, so a
// row's result does not depend on which chunk or stream it fell into.
template <DType t, int S>
void dotRows(const uint16_t* const* w, const float* x, int64_t n, float* const* y) {
    __m256 acc[S];
    for (int s = 0; s < S; ++s) acc[s] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {  // 32 halves = one 64-byte line of each row
        for (int s = 0; s < S; ++s) _mm_prefetch(reinterpret_cast<const char*>(w[s] + i) + kPrefetchBytes, _MM_HINT_T1);
        for (int64_t j = i; j < i + 32; j += 8) {
            const __m256 xv = _mm256_loadu_ps(x + j);
            for (int s = 0; s < S; ++s) acc[s] = _mm256_fmadd_ps(widen8(w[s] + j, t), xv, acc[s]);
        }
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i);
        for (int s = 0; s < S; ++s) acc[s] = _mm256_fmadd_ps(widen8(w[s] + i, t), xv, acc[s]);
    }
    for (int s = 0; s < S; ++s) {
        float sum = hsum(acc[s]);
        for (int64_t j = i; j < n; ++j) sum += widen1(w[s][j], t) * x[j];
        *y[s] = sum;
    }
}

// One chunk of `count` consecutive rows of a 16-bit W, y = W x for one x: read as four streams,
// the chunk's four quarters side by side (rows begin + i, begin + c + i, begin + 2c + i,
// begin + 3c + i for i < c), the rows that do not fill four quarters one at a time after.
template <DType t>
void dotChunk(const uint16_t* w, int64_t in, int64_t begin, int64_t count, const float* x, float* y) {
    const int64_t c = count / 4;
    for (int64_t i = 0; i < c; ++i) {
        const int64_t r[4] = {begin + i, begin + c + i, begin + 2 * c + i, begin + 3 * c + i};
        const uint16_t* rows[4] = {w + r[0] * in, w + r[1] * in, w + r[2] * in, w + r[3] * in};
        float* out[4] = {y + r[0], y + r[1], y + r[2], y + r[3]};
        dotRows<t, 4>(rows, x, in, out);
    }
    for (int64_t r = begin + 4 * c; r < begin + count; ++r) {
        const uint16_t* row = w + r * in;
        float* out = y + r;
        dotRows<t, 1>(&row, x, in, &out);
    }
}
#endif

// The rows of several targets, numbered one after another, handed out in chunks from one
// counter: large chunks first (the remaining rows over twice the threads), shrinking to
// kMinChunkRows, never across a target's end. Threads slowed by another tenant take fewer
// chunks, and all finish within one small chunk of each other.
class RowChunks {
public:
    explicit RowChunks(const std::vector<LinearTarget>& targets) : firstRow_(targets.size() + 1, 0) {
        for (size_t t = 0; t < targets.size(); ++t) firstRow_[t + 1] = firstRow_[t] + targets[t].w->rows;
    }
    struct Chunk {
        size_t target;
        int64_t begin, count;  // rows of that target
    };
    // The next chunk for one of `threads` threads; false when every row has been handed out.
    bool take(int threads, Chunk& chunk) {
        const int64_t total = firstRow_.back();
        int64_t cur = next_.load(std::memory_order_relaxed), count = 0;
        size_t t = 0;
        do {
            if (cur >= total) return false;
            t = size_t(std::upper_bound(firstRow_.begin(), firstRow_.end(), cur) - firstRow_.begin()) - 1;
            const int64_t guided = std::max<int64_t>(kMinChunkRows, (total - cur) / (2 * threads)) / 4 * 4;
            count = std::min(guided, firstRow_[t + 1] - cur);
        } while (!next_.compare_exchange_weak(cur, cur + count, std::memory_order_relaxed));
        chunk = Chunk{t, cur - firstRow_[t], count};
        return true;
    }

private:
    static constexpr int64_t kMinChunkRows = 64;
    std::vector<int64_t> firstRow_;
    std::atomic<int64_t> next_{0};
};

// Few rows of x: every weight row is read once and used for all of them, the rows handed out in
// RowChunks. Several targets sharing x (q/k/v, gate/up) run in one parallel region, so no thread
// waits at a barrier between them.
//
// One x and 16-bit weights (decode) go through dotChunk, which reads a chunk as four streams a
// quarter of the chunk apart, each asking for lines 2 KiB ahead of itself. A core's read rate is
// set by how many lines it has in flight; one sequential stream gets fewer than four, and the
// hardware prefetcher restarts at every 4 KiB page of a stream it has not yet followed for long.
// Measured over all 13 GB of the 7B bench model's weights in decode order (2 threads,
// alternating passes, Intel Xeon VM, triad 27-29 GB/s): a plain read as one stream per thread
// 24.0-24.2 GB/s, as four 27.2-27.3; the kernel this replaced (four adjacent rows, the next two
// row groups asked for) 22.7-23.0; four quarter-chunk streams without prefetch 24.3, with the
// 2 KiB prefetch 28.1-28.7. (That earlier kernel had been tuned on an AMD Zen 4 VM, where asking
// for the next groups lifted it from 20-29 to 30-40 GB/s: bench/README.md.) 16 weights per
// instruction instead of 8 measured the same (28.3 vs 28.7).
void linearStreaming(const float* x, int64_t n, const std::vector<LinearTarget>& targets) {
    const int64_t in = targets.front().w->cols;
    int64_t work = 0;
    for (const LinearTarget& t : targets) work += n * t.w->rows * in;
    RowChunks chunks(targets);
#pragma omp parallel if (work >= kMinParallelWork)
    {
        const int threads = omp_get_num_threads();
        std::vector<float> row(static_cast<size_t>(in));
        RowChunks::Chunk c{};
        while (chunks.take(threads, c)) {
            const Weight& w = *targets[c.target].w;
            float* y = targets[c.target].y;
            const int64_t out = w.rows;
            const size_t elem = dtypeSize(w.dtype);
            const char* base = static_cast<const char*>(w.data);
#ifdef PKV_HAVE_AVX2_F16C
            if (n == 1 && w.dtype != DType::F32) {
                const auto* w16 = static_cast<const uint16_t*>(w.data);
                if (w.dtype == DType::F16)
                    dotChunk<DType::F16>(w16, in, c.begin, c.count, x, y);
                else
                    dotChunk<DType::BF16>(w16, in, c.begin, c.count, x, y);
                continue;
            }
#endif
            for (int64_t r = c.begin; r < c.begin + c.count; ++r) {
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
