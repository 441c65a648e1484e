// y = x W^T for many rows of x (prefill, vision tower) with W stored in f16 or bf16.
//
// Calling sgemm needs W in f32, so a panel of W would be converted to memory and then read and
// packed again by sgemm: about 6-10% on top of the multiply on this machine. This kernel instead
// widens W while it packs it, in the same pass, and runs the multiply on the packed blocks, so
// the widening costs one read of W per block of 512 columns. Measured at the decoder's shapes it
// runs at or above the machine's f32 sgemm rate (bench/README.md).
//
// Blocking (Goto-style, sized for a core with 32 KiB L1 and 1 MiB L2):
// - K is cut into blocks of kKc = 512. For each block, x's rows are packed once, shared by all
//   threads, as [row block of kMr = 12][k][12] so that the 12 values the kernel broadcasts per k
//   are one contiguous 48-byte read (reading 12 rows of x directly, 8 KiB apart, thrashes L1).
// - Threads take panels of kNr = 32 outputs; a panel of W is widened and transposed into
//   [k][32] (64 KiB, in L2), then multiplied with every row block of x. Panels or K blocks
//   outermost, by the size of x (below).
// - The micro-kernel keeps a 12 x 32 tile of y in 24 AVX-512 registers: per k, two loads of W,
//   twelve broadcasts of x, 24 fused multiply-adds.
// Where the compiler targets AVX2 and FMA but not AVX-512 (the engine is compiled with
// -march=native), the same blocking runs on the 6 x 16 ymm tile (cpu_tile_kernel.h): panels of 16
// outputs, row blocks of 6. AMD Zen 3 VM (AVX2), 600 rows, alternating against converting
// panels of W to f32 for OpenBLAS's sgemm (its Zen kernels): alone, 1.1B gate/up 168-176 ->
// 176-192 GFLOP/s, down 168-174 -> 176-185; in the model, prefill 84% and 81% -> 95% and 94% of
// the sgemm peak on the 7B shape, gate/up 173-175 -> 149-166 ms per layer on the 1.1B. (K blocks
// of 256 or 384 instead of 512: within the noise.) Without F16C and FMA gemm16() returns false
// and the caller converts panels for sgemm.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "engine/backend/cpu/cpu_aligned.h"
#include "engine/backend/cpu/cpu_kernels.h"
#include "engine/backend/cpu/cpu_tile_kernel.h"
#include "engine/backend/cpu/cpu_widen.h"

#if defined(__F16C__) && (defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__)))
#define PKV_HAVE_GEMM16 1
#endif

namespace pkv::cpu {

#ifdef PKV_HAVE_GEMM16
namespace {

constexpr int kMr = kTileRows;  // rows of x per tile: 12 (AVX2: 6)
constexpr int kNr = kTileCols;  // outputs per tile: 32, two 16-float registers (AVX2: 16, two of 8)
constexpr int kKc = 512;  // k per block
constexpr int kPanelGroup = 2;  // panels of W a thread multiplies side by side (below)

// Which loop runs outermost. Panels outermost, a thread takes one panel of W through every K
// block, its tile of y (rows of x by 32) summed in an L2-resident scratch, but every panel reads
// all of packed x again, from L3 at best; K blocks outermost, each block of packed x (rows by
// 512) is read by every panel while it is in cache, but every K block reads and writes all of y
// again. Panels go outermost while packed x is at most a third of L3, between 12 and 48 MiB.
// Measured:
// - AMD Zen 4 VM, 32 MiB L3 (12 MiB; before the scratch tile), 600 rows, alternating calls over
//   cold weights, panels outermost against K blocks outermost: 1.1B q/k/v, o, gate/up (x 4.7 MiB)
//   +1-4%; 7B ones (x 9.4 MiB) +3-4%; but 1.1B down (x 13 MiB) -3 to +1%, 7B down (x 25 MiB) -12%.
// - Intel Xeon VM, 480 MiB L3 shared with other tenants (48 MiB), GFLOP/s panels outermost vs K
//   blocks outermost: 600 rows, 1.1B down (x 13 MiB) 284-293 vs 258-262, 7B down (x 25 MiB)
//   304-307 vs 261-265; 1800 rows, x 14.7 MiB 300 vs 255, 29.5 MiB 286 vs 249, 40.5 MiB 254 vs
//   243, 79 MiB 179 vs 247.
int64_t panelsOuterMaxBytes() {
    static const int64_t bytes = [] {
        const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);  // 0 or -1 where unknown
        return std::clamp<int64_t>(l3 > 0 ? l3 / 3 : 0, int64_t(12) << 20, int64_t(48) << 20);
    }();
    return bytes;
}

// Transposes 8 rows of 8 floats in registers: r[j][k] -> r[k][j].
inline void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// panel[k][j] = W[n0 + j][k0 + k] widened, for j < rows (the rest 0), k < kc. `w` points at
// W[n0][k0]; rows are `stride` elements apart.
void packWeights(const uint16_t* w, int64_t stride, int rows, int kc, DType t, float* panel) {
    int k = 0;
    if (rows == kNr) {
        for (; k + 8 <= kc; k += 8)
            for (int j0 = 0; j0 < kNr; j0 += 8) {
                __m256 r[8];
                for (int j = 0; j < 8; ++j) r[j] = widen8(w + (j0 + j) * stride + k, t);
                transpose8(r);
                for (int i = 0; i < 8; ++i) _mm256_store_ps(panel + (k + i) * kNr + j0, r[i]);
            }
    }
    for (; k < kc; ++k)
        for (int j = 0; j < kNr; ++j) panel[k * kNr + j] = j < rows ? widen1(w[j * stride + k], t) : 0.f;
}

#ifdef __AVX512F__
// Transposes 16 rows of 16 floats in registers: r[i] lane j -> r[j] lane i.
inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        const __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    // Each r[i] now holds, per 128-bit lane L, column (i % 4 after the two steps above) of rows
    // 4 * (i / 4) .. + 3 for columns 4 L + ...: gather the lanes across registers.
    for (int i = 0; i < 4; ++i) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; ++i) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
}

// packed[k][m] = x[m0 + m][k0 + k] for m < rows (the rest 0), k < kc: 16 columns at a time by a
// register transpose, the 12 rows stored as the first 12 lanes of each transposed column.
void packRows(const float* x, int64_t stride, int rows, int kc, float* packed) {
    int k = 0;
    for (; k + 16 <= kc; k += 16) {
        __m512 r[16];
        for (int m = 0; m < 16; ++m) r[m] = m < rows && m < kMr ? _mm512_loadu_ps(x + m * stride + k) : _mm512_setzero_ps();
        transpose16(r);
        for (int j = 0; j < 16; ++j) _mm512_mask_storeu_ps(packed + (k + j) * kMr, __mmask16(0x0FFF), r[j]);
    }
    for (; k < kc; ++k)
        for (int m = 0; m < kMr; ++m) packed[k * kMr + m] = m < rows ? x[m * stride + k] : 0.f;
}

#else
// packed[k][m] = x[m0 + m][k0 + k] for m < rows (the rest 0), k < kc: 8 columns at a time by a
// register transpose of 8 rows (the 6 of the block and two of zeros), the first 6 lanes of each
// transposed column stored.
void packRows(const float* x, int64_t stride, int rows, int kc, float* packed) {
    const __m256i firstRows = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
    int k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 r[8];
        for (int m = 0; m < 8; ++m) r[m] = m < rows && m < kMr ? _mm256_loadu_ps(x + m * stride + k) : _mm256_setzero_ps();
        transpose8(r);
        for (int j = 0; j < 8; ++j) _mm256_maskstore_ps(packed + (k + j) * kMr, firstRows, r[j]);
    }
    for (; k < kc; ++k)
        for (int m = 0; m < kMr; ++m) packed[k * kMr + m] = m < rows ? x[m * stride + k] : 0.f;
}

#endif

// y tile [kMr, kNr] (row stride ldy) = (accumulate ? y : 0) + a · b over kc, where a is a packed
// row block [kc][kMr] and b a packed panel [kc][kNr].
inline void microKernel(const float* a, const float* b, int kc, float* y, int64_t ldy, bool accumulate) {
    tileKernel<false>(a, kMr, b, kNr, kc, y, ldy, accumulate);
}

// A tile at the edge of y (fewer than kMr rows or kNr columns) goes through a full-size scratch
// tile, so the kernel never writes outside y.
void edgeTile(const float* a, const float* b, int kc, float* y, int64_t ldy, int rows, int cols, bool accumulate) {
    alignas(64) float tile[kMr * kNr] = {};
    if (accumulate)
        for (int m = 0; m < rows; ++m) std::copy(y + m * ldy, y + m * ldy + cols, tile + m * kNr);
    microKernel(a, b, kc, tile, kNr, accumulate);
    for (int m = 0; m < rows; ++m) std::copy(tile + m * kNr, tile + m * kNr + cols, y + m * ldy);
}

}  // namespace

bool gemm16(const float* x, int64_t n, const std::vector<LinearTarget>& targets) {
    for (const LinearTarget& t : targets)
        if (t.w->dtype != DType::F16 && t.w->dtype != DType::BF16) return false;
    const int64_t in = targets.front().w->cols;
    const int64_t rowBlocks = (n + kMr - 1) / kMr, kBlocks = (in + kKc - 1) / kKc;
    // Every panel of every target, numbered one after another: (target, first output).
    std::vector<std::pair<size_t, int64_t>> panels;
    for (size_t t = 0; t < targets.size(); ++t)
        for (int64_t n0 = 0; n0 < targets[t].w->rows; n0 += kNr) panels.emplace_back(t, n0);
    // x packed block by block: as large as x itself. Kept per calling thread between calls, so a
    // prefill does not map and fault in a fresh buffer for every layer.
    static thread_local std::vector<float> packedX;
    packedX.resize(size_t(rowBlocks * kBlocks) * kKc * kMr);
    float* px = packedX.data();
    auto rowBlock = [&](int64_t kb, int64_t mb) { return px + (kb * rowBlocks + mb) * kKc * kMr; };
    const bool panelsOuter = int64_t(packedX.size() * sizeof(float)) <= panelsOuterMaxBytes();

#pragma omp parallel
    {
#pragma omp for collapse(2) schedule(static)
        for (int64_t kb = 0; kb < kBlocks; ++kb)
            for (int64_t mb = 0; mb < rowBlocks; ++mb) {
                const int64_t k0 = kb * kKc, m0 = mb * kMr;
                packRows(x + m0 * in + k0, in, int(std::min<int64_t>(kMr, n - m0)), int(std::min<int64_t>(kKc, in - k0)),
                         rowBlock(kb, mb));
            }
        // Panels of W over one K block, widened: 64 KiB each, up to kPanelGroup per thread.
        static thread_local std::vector<float, CacheLineAllocator<float>> panelBuffer;
        panelBuffer.resize(size_t(kPanelGroup) * kKc * kNr);
        auto packPanel = [&](size_t p, int64_t kb, float* dst) {
            const auto [t, n0] = panels[p];
            const Weight& w = *targets[t].w;
            const int64_t k0 = kb * kKc;
            const int cols = int(std::min<int64_t>(kNr, w.rows - n0)), kc = int(std::min<int64_t>(kKc, in - k0));
            packWeights(static_cast<const uint16_t*>(w.data) + n0 * in + k0, in, cols, kc, w.dtype, dst);
            return kc;
        };
        if (panelsOuter) {
            // A group of panels through every K block. Their tiles of y (all rows of x by 32
            // each) are summed in a contiguous scratch and written to y once at the end: in y
            // itself a tile's rows lie `out` floats apart, a multiple of 4 KiB for most models'
            // widths, so they fall into a few cache sets and the tile did not stay in L2 between
            // K blocks (on an Intel Xeon VM the multiply ran at 70% of the micro-kernel's
            // in-cache rate). Each row block of packed x, read from L3, serves every panel of the
            // group while it is in L1. 600 rows, GFLOP/s before the scratch and with it: 7B q/k/v
            // 280 -> 309, gate/up 280 -> 314; 1.1B q/k/v 247 -> 273 (OpenBLAS sgemm on f32
            // weights: 290-318). Groups of two panels against one, alternating calls in one
            // process, median speed ratio: 1.1B q/k/v 1.04, o 1.05, gate/up 1.04, down 1.04; 7B
            // q/k/v 1.02 (groups of four or eight: the same within noise, with wider spreads).
            static thread_local std::vector<float, CacheLineAllocator<float>> tile;
            tile.resize(size_t(kPanelGroup) * rowBlocks * kMr * kNr);
            const size_t groups = (panels.size() + kPanelGroup - 1) / kPanelGroup;
            const int64_t tileFloats = rowBlocks * kMr * kNr;
#pragma omp for schedule(dynamic, 1)
            for (size_t gr = 0; gr < groups; ++gr) {
                const size_t p0 = gr * kPanelGroup, count = std::min<size_t>(kPanelGroup, panels.size() - p0);
                for (int64_t kb = 0; kb < kBlocks; ++kb) {
                    int kc = 0;
                    for (size_t i = 0; i < count; ++i) kc = packPanel(p0 + i, kb, panelBuffer.data() + i * kKc * kNr);
                    for (int64_t mb = 0; mb < rowBlocks; ++mb)
                        for (size_t i = 0; i < count; ++i)
                            microKernel(rowBlock(kb, mb), panelBuffer.data() + i * kKc * kNr, kc,
                                        tile.data() + int64_t(i) * tileFloats + mb * kMr * kNr, kNr, kb > 0);
                }
                for (size_t i = 0; i < count; ++i) {
                    const auto [t, n0] = panels[p0 + i];
                    const int64_t out = targets[t].w->rows;
                    const int cols = int(std::min<int64_t>(kNr, out - n0));
                    for (int64_t m = 0; m < n; ++m)
                        std::copy_n(tile.data() + int64_t(i) * tileFloats + m * kNr, cols, targets[t].y + m * out + n0);
                }
            }
        } else {
            // One K block at a time, every panel's tile summed in y: each block of packed x is
            // read by every panel while it is in cache.
            for (int64_t kb = 0; kb < kBlocks; ++kb) {
#pragma omp for schedule(dynamic, 2)
                for (size_t p = 0; p < panels.size(); ++p) {
                    float* panel = panelBuffer.data();
                    const int kc = packPanel(p, kb, panel);
                    const auto [t, n0] = panels[p];
                    const int64_t out = targets[t].w->rows;
                    const int cols = int(std::min<int64_t>(kNr, out - n0));
                    for (int64_t mb = 0; mb < rowBlocks; ++mb) {
                        const int64_t m0 = mb * kMr;
                        const int rows = int(std::min<int64_t>(kMr, n - m0));
                        float* y = targets[t].y + m0 * out + n0;
                        if (rows == kMr && cols == kNr)
                            microKernel(rowBlock(kb, mb), panel, kc, y, out, kb > 0);
                        else
                            edgeTile(rowBlock(kb, mb), panel, kc, y, out, rows, cols, kb > 0);
                    }
                }
            }
        }
    }
    return true;
}
#else
bool gemm16(const float*, int64_t, const std::vector<LinearTarget>&) { return false; }
#endif

}  // namespace pkv::cpu
