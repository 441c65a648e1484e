// Scaled dot-product attention: scores, a numerically stable softmax, the weighted sum of values.
// Three schedules of the same arithmetic:
// - one query (decode): the cache split by entries across threads, each reading whole entries
//   once, with per-range softmaxes merged at the end;
// - a few queries: one (query, head) pair at a time;
// - many queries (prefill, vision): per KV head and block of query rows (all query heads of the
//   group stacked), scores S = Q K^T and the output P V as single-threaded matrix products
//   (sgemm, or the register-tile kernel for grouped-query heads) on thread-private tiles, so the
//   work runs at GEMM speed; keys a block cannot see (causal) are never multiplied.
// The probabilities exist only in per-thread scratch, so token importance (their head average,
// summed over queries) and the window rows are accumulated there, into per-thread partials that
// are reduced at the end.
#include <cblas.h>
#ifdef __AVX512F__
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized in _mm512_reduce_add_ps (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/backend/cpu/cpu_exp.h"
#include "engine/backend/cpu/cpu_kernels.h"
#include "engine/backend/cpu/cpu_tile_kernel.h"
#include "engine/backend/cpu/cpu_widen.h"

namespace pkv::cpu {
namespace {

constexpr int64_t kGemmMinQueries = 16;  // below this, the per-query loop
// How far ahead of its reads each stream of the decode walks asks for cache lines (as the decode
// GEMV does, cpu_linear.cpp).
constexpr int kPrefetchBytes = 2048;
// Query rows per score tile: 64, fewer where a KV group has many query heads, so that the tile
// (all the group's heads stacked, about 256 rows x the keys) stays in L2 through its softmax and
// sums (1.1B shape, 8 heads per group, 600 tokens: 13.4 -> 11.8 ms with 32; MHA keeps 64, with
// 32 it slows 27 -> 32 ms).
int64_t queryBlock(int groupSize) { return std::clamp<int64_t>(256 / groupSize, 16, 64); }

void attentionRows(const float* q, int64_t nq, const float* k, const float* v, int64_t nk, int64_t kvStride,
                   const AttentionShape& s, bool causal, int64_t keyOffset, float* out, float* importance,
                   float* window, int64_t windowRows) {
    const int H = s.numHeads, d = s.headDim;
    const int groupSize = s.numHeads / s.numKvHeads;  // query heads sharing one KV head
    const int64_t qStride = int64_t(H) * d;
    const float invHeads = 1.f / float(H);
    const int64_t windowStart = nq - windowRows;
    const int threads = omp_get_max_threads();
    std::vector<std::vector<float>> partial(importance ? threads : 0, std::vector<float>(size_t(nk), 0.f));

    const bool parallel = nq * H * nk * d >= kMinParallelWork;
#pragma omp parallel if (parallel)
    {
        std::vector<float> p(static_cast<size_t>(nk));
        float* imp = importance ? partial[size_t(omp_get_thread_num())].data() : nullptr;
#pragma omp for collapse(2) schedule(static)
        for (int64_t i = 0; i < nq; ++i) {
            for (int h = 0; h < H; ++h) {
                const int64_t visible = causal ? std::min(nk, keyOffset + i + 1) : nk;
                const float* qi = q + i * qStride + int64_t(h) * d;
                const int64_t kvOff = int64_t(h / groupSize) * d;

                float maxScore = -INFINITY;
                for (int64_t j = 0; j < visible; ++j) {
                    const float* kj = k + j * kvStride + kvOff;
                    float dotv = 0.f;
#pragma omp simd reduction(+ : dotv)
                    for (int t = 0; t < d; ++t) dotv += qi[t] * kj[t];
                    p[size_t(j)] = dotv * s.scale;
                    maxScore = std::max(maxScore, p[size_t(j)]);
                }
                const float inv = 1.f / expShiftedSum(p.data(), p.data(), visible, maxScore);

                float* o = out + i * qStride + int64_t(h) * d;
                std::fill(o, o + d, 0.f);
                for (int64_t j = 0; j < visible; ++j) {
                    const float pj = p[size_t(j)] * inv;
                    const float* vj = v + j * kvStride + kvOff;
#pragma omp simd
                    for (int t = 0; t < d; ++t) o[t] += pj * vj[t];
                    if (imp) imp[j] += pj * invHeads;
                }
                // Each window row is written by the threads of its heads: accumulate atomically.
                if (window && i >= windowStart) {
                    float* row = window + (i - windowStart) * nk;
                    for (int64_t j = 0; j < visible; ++j) {
#pragma omp atomic
                        row[j] += p[size_t(j)] * inv * invHeads;
                    }
                }
            }
        }
    }
    if (importance)
        for (const auto& part : partial)
            for (int64_t j = 0; j < nk; ++j) importance[j] += part[size_t(j)];
}

// Softmax of one score row over its `visible` keys, left unnormalised: row[j] = exp(row[j] - max)
// for j < visible and 0 after (for the P V product); returns 1 / the sum. The caller scales the
// output row (d values) and the probes by it instead of the width values of the row.
float softmaxRowUnnormalised(float* row, int64_t visible, int64_t width) {
    const float inv = 1.f / expShiftedSum(row, row, visible, maxOf(row, visible));
    std::fill(row + visible, row + width, 0.f);
    return inv;
}

#ifdef __AVX512F__
// The keys and values of each KV head as the tile kernel's right operand, packed once per call
// and shared by every query block of the head. Keys: for every 32 keys p, the panel [d][32] with
// panel[c][j] = k[32 p + j][g d + c] (0 past the last key). Values: for every 32 of the head's
// dimensions c0, the panel [nk][32] with panel[j][c] = v[j][g d + c0 + c], contiguous where the
// rows are kvStride apart. Read in place instead, V cost the tiles their gain on long prompts
// (32 heads over 4 KV heads, d 64, rows 1 KiB apart, 1800 tokens: 189 GFLOP/s, as cblas; packed
// 204).
std::vector<float> packKeyPanels(const float* k, int64_t nk, int64_t kvStride, int numKvHeads, int d) {
    const int64_t panels = (nk + kTileCols - 1) / kTileCols, panelFloats = int64_t(d) * kTileCols;
    std::vector<float> out(size_t(numKvHeads * panels * panelFloats));
#pragma omp parallel for collapse(2) schedule(static) if (numKvHeads * nk * d >= kMinParallelWork)
    for (int g = 0; g < numKvHeads; ++g)
        for (int64_t p = 0; p < panels; ++p) {
            float* panel = out.data() + (g * panels + p) * panelFloats;
            for (int j = 0; j < kTileCols; ++j) {
                const int64_t key = p * kTileCols + j;
                const float* src = k + key * kvStride + int64_t(g) * d;
                for (int c = 0; c < d; ++c) panel[c * kTileCols + j] = key < nk ? src[c] : 0.f;
            }
        }
    return out;
}

std::vector<float> packValuePanels(const float* v, int64_t nk, int64_t kvStride, int numKvHeads, int d) {
    const int blocks = d / kTileCols;
    std::vector<float> out(size_t(numKvHeads * blocks * nk * kTileCols));
#pragma omp parallel for collapse(2) schedule(static) if (numKvHeads * nk * d >= kMinParallelWork)
    for (int g = 0; g < numKvHeads; ++g)
        for (int cb = 0; cb < blocks; ++cb) {
            float* panel = out.data() + (int64_t(g) * blocks + cb) * nk * kTileCols;
            for (int64_t j = 0; j < nk; ++j)
                std::copy_n(v + j * kvStride + int64_t(g) * d + cb * kTileCols, kTileCols, panel + j * kTileCols);
        }
    return out;
}
#endif

// Many queries. A task is one KV head g and one block of up to kQueryBlock queries: the block's
// rows of all groupSize query heads that share g are copied into one matrix, so the scores
// S = Q K_g^T and the output P V_g are one product each over the keys the block can see (K_g
// and V_g read once for the whole group instead of once per head).
//
// The products run on the 12 x 32 tile kernel (cpu_tile_kernel.h) where the CPU has AVX-512, the
// head dimension is a multiple of 32 and four or more query heads share a KV head: Q's rows and
// P's rows are read in place, K_g^T and V_g come from panels packed once per call. Elsewhere
// they are cblas_sgemm calls. OpenBLAS ran these shapes (a reduction over only 64 for Q K^T, 64
// outputs for P V) at about half its large-matrix rate: 1.1B shape, 600 tokens, per-thread cycle
// counts 10.2M for Q K^T, 10.8M for P V, 4.4M for the softmax and importance per call.
void attentionTiles(const float* q, int64_t nq, const float* k, const float* v, int64_t nk, int64_t kvStride,
                    const AttentionShape& s, bool causal, int64_t keyOffset, float* out, float* importance,
                    float* window, int64_t windowRows) {
    const int H = s.numHeads, d = s.headDim;
    const int groupSize = s.numHeads / s.numKvHeads;
    const int64_t qStride = int64_t(H) * d;
    const float invHeads = 1.f / float(H);
    const int64_t windowStart = nq - windowRows;
    const int64_t kQueryBlock = queryBlock(groupSize);
    const int64_t blocks = (nq + kQueryBlock - 1) / kQueryBlock;
    const int threads = omp_get_max_threads();
    std::vector<std::vector<float>> impPartial(importance ? threads : 0, std::vector<float>(size_t(nk), 0.f));
    std::vector<std::vector<float>> winPartial(window ? threads : 0,
                                               std::vector<float>(size_t(windowRows * nk), 0.f));
    auto roundUp = [](int64_t x, int64_t to) { return (x + to - 1) / to * to; };
#ifdef __AVX512F__
    // Tiles where several query heads share a KV head, so a task's block is tall (8 heads per KV
    // head: 256 rows) and each packed K/V panel serves many rows. With one or two heads per KV
    // head the packing (the whole call's K and V, written once more) costs more than the tiles
    // gain. Alternating calls, GFLOP/s cblas vs tiles: 32 heads over 4 KV heads, d 64, 600 tokens
    // 177-182 vs 193-203, 1800 tokens 179 vs 204; over 16 KV heads, 577 tokens 140-146 vs 131; MHA,
    // d 128, 600 tokens 126-142 vs 98-111, 1800 tokens 150 vs 155.
    const bool tiles = d % kTileCols == 0 && groupSize >= 4;
    const std::vector<float> keyPanels = tiles ? packKeyPanels(k, nk, kvStride, s.numKvHeads, d) : std::vector<float>();
    const std::vector<float> valuePanels = tiles ? packValuePanels(v, nk, kvStride, s.numKvHeads, d) : std::vector<float>();
    const int64_t panelsPerHead = (nk + kTileCols - 1) / kTileCols;
#else
    const bool tiles = false;
#endif
    // With tiles, the matrices have whole tiles: rows padded to 12 (zero queries), score rows to
    // 32 keys (zero keys).
    const int64_t rowAlign = tiles ? 12 : 1, keyAlign = tiles ? 32 : 1;

#pragma omp parallel
    {
        const int t = omp_get_thread_num();
        const int64_t maxRows = roundUp(int64_t(groupSize) * kQueryBlock, rowAlign);
        std::vector<float> scores(size_t(maxRows * roundUp(nk, keyAlign))), qBlock(size_t(maxRows * d), 0.f),
            oBlock(size_t(maxRows * d)), inv(static_cast<size_t>(maxRows));
        // Tasks dealt round-robin, not from a counter: which thread sums a block's probabilities into
        // its importance partial must not depend on timing, or the same prompt would give
        // importance (and PrefixKV budgets) that differ in the last bits from run to run. Dealt one
        // at a time, neighbouring blocks (causal: similar cost) go to different threads; as fast as
        // the counter (AMD Zen 3 VM, 600 causal queries, alternating, best of 30: 32 heads over 4 KV
        // heads d 64 13.6-15.7 vs 13.7-14.0 ms, MHA d 128 26.9-27.6 vs 26.8-28.6 ms).
#pragma omp for collapse(2) schedule(static, 1)
        for (int g = 0; g < s.numKvHeads; ++g) {
            for (int64_t b = 0; b < blocks; ++b) {
                const int64_t i0 = b * kQueryBlock, rows = std::min(kQueryBlock, nq - i0);
                const int64_t m = int64_t(groupSize) * rows;  // matrix row r * rows + i: head g*G + r, query i0 + i
                const int64_t mPad = roundUp(m, rowAlign);
                // Keys the last query of the block can see; earlier ones see fewer.
                const int64_t width = causal ? std::min(nk, keyOffset + i0 + rows) : nk;
                const int64_t ld = roundUp(width, keyAlign);  // score row stride
                const int64_t kvOff = int64_t(g) * d;
                // The tile kernel has no alpha: there the queries carry the scale.
                const float qScale = tiles ? s.scale : 1.f;
                for (int r = 0; r < groupSize; ++r)
                    for (int64_t i = 0; i < rows; ++i) {
                        const float* src = q + (i0 + i) * qStride + int64_t(g * groupSize + r) * d;
                        float* dst = qBlock.data() + (r * rows + i) * d;
                        for (int c = 0; c < d; ++c) dst[c] = src[c] * qScale;
                    }
                std::fill(qBlock.begin() + m * d, qBlock.begin() + mPad * d, 0.f);

#ifdef __AVX512F__
                if (tiles) {
                    const float* panels = keyPanels.data() + g * panelsPerHead * d * kTileCols;
                    for (int64_t r0 = 0; r0 < mPad; r0 += kTileRows)
                        for (int64_t p = 0; p < ld / kTileCols; ++p)
                            tileKernel<true>(qBlock.data() + r0 * d, d, panels + p * d * kTileCols, kTileCols, d,
                                             scores.data() + r0 * ld + p * kTileCols, ld, false);
                } else
#endif
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(width), d, s.scale, qBlock.data(),
                                d, k + kvOff, int(kvStride), 0.f, scores.data(), int(ld));
                for (int64_t row = 0; row < m; ++row) {
                    const int64_t i = row % rows;
                    float* p = scores.data() + row * ld;
                    inv[size_t(row)] = softmaxRowUnnormalised(p, causal ? std::min(nk, keyOffset + i0 + i + 1) : nk, width);
                    const float w = inv[size_t(row)] * invHeads;
                    if (importance) {
                        float* imp = impPartial[size_t(t)].data();
#pragma omp simd
                        for (int64_t j = 0; j < width; ++j) imp[j] += p[j] * w;
                    }
                    if (window && i0 + i >= windowStart) {
                        float* win = winPartial[size_t(t)].data() + (i0 + i - windowStart) * nk;
#pragma omp simd
                        for (int64_t j = 0; j < width; ++j) win[j] += p[j] * w;
                    }
                }
#ifdef __AVX512F__
                if (tiles) {
                    const float* panels = valuePanels.data() + int64_t(g) * d * nk;
                    for (int64_t r0 = 0; r0 < mPad; r0 += kTileRows)
                        for (int c0 = 0; c0 < d; c0 += kTileCols)
                            tileKernel<true>(scores.data() + r0 * ld, ld, panels + c0 * nk, kTileCols, int(width),
                                             oBlock.data() + r0 * d + c0, d, false);
                } else
#endif
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), d, int(width), 1.f, scores.data(),
                                int(ld), v + kvOff, int(kvStride), 0.f, oBlock.data(), d);
                for (int r = 0; r < groupSize; ++r)
                    for (int64_t i = 0; i < rows; ++i) {
                        const float* src = oBlock.data() + (r * rows + i) * d;
                        float* dst = out + (i0 + i) * qStride + int64_t(g * groupSize + r) * d;
                        const float scale = inv[size_t(r * rows + i)];
#pragma omp simd
                        for (int c = 0; c < d; ++c) dst[c] = src[c] * scale;
                    }
            }
        }
    }
    for (const auto& part : impPartial)
        for (int64_t j = 0; j < nk; ++j) importance[j] += part[size_t(j)];
    for (const auto& part : winPartial)
        for (int64_t j = 0; j < windowRows * nk; ++j) window[j] += part[size_t(j)];
}

// One cache entry's row (every KV head) as float32: f32 entries are read where they are; f16
// entries are widened once into `scratch` (8 per instruction with F16C), so that every query head
// of a group dots against floats in L1. Widening inside each head's loop instead converted the
// same halves once per head, one at a time in software where the build has no AVX-512 path (AMD
// Zen 3 VM, AVX2 build, 1.1B shape, 600 f16 entries: 3.1 ms per layer, half of every decode step).
inline const float* entryAsFloats(const float* row, int64_t, float*) { return row; }
inline const float* entryAsFloats(const uint16_t* row, int64_t n, float* scratch) {
    convertToFloat(row, DType::F16, n, scratch);
    return scratch;
}
#ifdef __AVX512F__
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const uint16_t* p) { return widen16(p, DType::F16); }

// The lane sums of four vectors, as [sum a, sum b, sum c, sum d]: one reduction tree for four
// scores instead of four.
inline __m128 laneSums4(__m512 a, __m512 b, __m512 c, __m512 d) {
    auto halves = [](__m512 x) { return _mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1)); };
    const __m256 ab = _mm256_hadd_ps(halves(a), halves(b)), cd = _mm256_hadd_ps(halves(c), halves(d));
    const __m256 abcd = _mm256_hadd_ps(ab, cd);  // [a b c d] partial sums in each 128-bit half
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// The four slices of scores4 and weightedValues4 as zmm vectors: widened once and held in
// registers for all the group's heads where they fit (16 zmm for D = 64, leaving room for the
// accumulators and q), widened again from L1 at each use where they do not (D = 128 would take
// all 32 registers and spill).
template <int D, typename E>
class HeldSlices {
public:
    static constexpr bool kHold = D / 16 * 4 <= 16;
    HeldSlices(const E* slice, int64_t e) : slice_(slice), e_(e) {
        if constexpr (kHold)
            for (int i = 0; i < 4; ++i)
                for (int c = 0; c < D / 16; ++c) v_[i][c] = load16(slice + i * e + 16 * c);
    }
    // Columns 16c..16c+15 of slice i (the entry i * e elements after `slice`).
    __m512 at(int i, int c) const {
        if constexpr (kHold)
            return v_[i][c];
        else
            return load16(slice_ + i * e_ + 16 * c);
    }

private:
    const E* slice_;
    int64_t e_;
    __m512 v_[kHold ? 4 : 1][kHold ? D / 16 : 1];
};

// Four cache entries at a time, `step` entries apart (one from each of a range's four streams), one
// KV head's slice of each (D values at `slice`, the next entry's `step * kvStride` further): the
// decode walks' inner step where the head's slice fills whole zmm registers. Each query head of
// the group reads the four slices in one pass: S[h][e * step] = scale * q_h . k_e, and
// o_h += sum_e S[h][e * step] * v_e (in the order e = 0..3).
template <int D, typename E>
void scores4(const float* q, const E* slice, int64_t kvStride, int64_t step, int h0, int h1, float scale, float* S,
             int64_t len) {
    const int64_t e = step * kvStride;
    HeldSlices<D, E> keys(slice, e);
    for (int h = h0; h < h1; ++h) {
        const float* qh = q + int64_t(h) * D;
        __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int c = 0; c < D / 16; ++c) {
            const __m512 qc = _mm512_loadu_ps(qh + 16 * c);
            for (int i = 0; i < 4; ++i) a[i] = _mm512_fmadd_ps(keys.at(i, c), qc, a[i]);
        }
        alignas(16) float sums[4];
        _mm_store_ps(sums, _mm_mul_ps(laneSums4(a[0], a[1], a[2], a[3]), _mm_set1_ps(scale)));
        float* row = S + int64_t(h) * len;
        row[0] = sums[0], row[step] = sums[1], row[2 * step] = sums[2], row[3 * step] = sums[3];
    }
}

template <int D, typename E>
void weightedValues4(const E* slice, int64_t kvStride, int64_t step, int h0, int h1, const float* S, int64_t len,
                     float* o) {
    const int64_t e = step * kvStride;
    HeldSlices<D, E> values(slice, e);
    for (int h = h0; h < h1; ++h) {
        const float* p = S + int64_t(h) * len;
        const __m512 pe[4] = {_mm512_set1_ps(p[0]), _mm512_set1_ps(p[step]), _mm512_set1_ps(p[2 * step]),
                              _mm512_set1_ps(p[3 * step])};
        float* oh = o + int64_t(h) * D;
        for (int c = 0; c < D / 16; ++c) {
            __m512 acc = _mm512_loadu_ps(oh + 16 * c);
            for (int i = 0; i < 4; ++i) acc = _mm512_fmadd_ps(pe[i], values.at(i, c), acc);
            _mm512_storeu_ps(oh + 16 * c, acc);
        }
    }
}
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
// The same four-entry steps on ymm registers (builds without AVX-512). Sixteen registers cannot
// hold four slices for the group's heads, and widening the halves again for every head made the
// ports the limit, so f16 slices are widened once into a float copy on the stack (L1) that every
// head of the group reads; f32 slices are read where they are. AMD Zen 3 VM, 600 f16 entries,
// per layer, in the model, alternating runs against one entry at a time widened into a row of
// floats: 1.1B shape (8 heads per KV head, d 64) 136-165 -> 76-107 us, 7B shape (MHA, d 128)
// 642-775 -> 420-491 us.
inline __m128 laneSums4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));  // [a b c d] per 128-bit half
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// The four slices (D values each, the next `e` elements further) as floats.
template <int D>
struct FourSlices {
    FourSlices(const float* slice, int64_t e) {
        for (int i = 0; i < 4; ++i) at[i] = slice + i * e;
    }
    FourSlices(const uint16_t* slice, int64_t e) {
        for (int i = 0; i < 4; ++i) {
            for (int c = 0; c < D; c += 8)
                _mm256_store_ps(widened[i] + c, widen8(slice + i * e + c, DType::F16));
            at[i] = widened[i];
        }
    }
    const float* at[4];
    alignas(32) float widened[4][D];
};

template <int D, typename E>
void scores4(const float* q, const E* slice, int64_t kvStride, int64_t step, int h0, int h1, float scale, float* S,
             int64_t len) {
    const FourSlices<D> keys(slice, step * kvStride);
    for (int h = h0; h < h1; ++h) {
        const float* qh = q + int64_t(h) * D;
        __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int c = 0; c < D; c += 8) {
            const __m256 qc = _mm256_loadu_ps(qh + c);
            for (int i = 0; i < 4; ++i) a[i] = _mm256_fmadd_ps(_mm256_loadu_ps(keys.at[i] + c), qc, a[i]);
        }
        alignas(16) float sums[4];
        _mm_store_ps(sums, _mm_mul_ps(laneSums4(a[0], a[1], a[2], a[3]), _mm_set1_ps(scale)));
        float* row = S + int64_t(h) * len;
        row[0] = sums[0], row[step] = sums[1], row[2 * step] = sums[2], row[3 * step] = sums[3];
    }
}

template <int D, typename E>
void weightedValues4(const E* slice, int64_t kvStride, int64_t step, int h0, int h1, const float* S, int64_t len,
                     float* o) {
    const FourSlices<D> values(slice, step * kvStride);
    for (int h = h0; h < h1; ++h) {
        const float* p = S + int64_t(h) * len;
        const __m256 pe[4] = {_mm256_set1_ps(p[0]), _mm256_set1_ps(p[step]), _mm256_set1_ps(p[2 * step]),
                              _mm256_set1_ps(p[3 * step])};
        float* oh = o + int64_t(h) * D;
        for (int c = 0; c < D; c += 8) {
            __m256 acc = _mm256_loadu_ps(oh + c);
            for (int i = 0; i < 4; ++i) acc = _mm256_fmadd_ps(pe[i], _mm256_loadu_ps(values.at[i] + c), acc);
            _mm256_storeu_ps(oh + c, acc);
        }
    }
}
#define PKV_DECODE_YMM 1
#endif

// One query row (decode), split by keys rather than heads: each thread takes a contiguous range
// of cache entries and walks it entry by entry, reading each entry's keys (then, in a second
// walk, its values) once, whole and in order: all heads of a token are one contiguous row, so
// the reads stream and the hardware prefetcher sees one sequential stream per thread (a software
// prefetch a few entries ahead covers the start of each row). Each thread keeps a softmax that is
// exact for its own range (its max, its sum, its weighted values); the ranges are merged by
// rescaling to the global max, as flash-decoding does. Importance and the window row, when asked
// for, are the final probabilities averaged over heads, written per range.
//
// Where a head's slice fills whole vector registers (zmm, or ymm in builds without AVX-512), each
// walk takes four entries at a time: four
// scores share one reduction tree, and the head's output row is loaded and stored once per four
// entries instead of once per entry. Entry by entry, those reductions and the output's loads and
// stores held the walks to about half the rate a plain read of the same bytes reaches (AMD Zen 4
// VM, 7B shape, 605 f16 entries, cold: 680-760 -> 360-410 us per layer). The four entries are
// one from each quarter of the thread's range, so a walk reads four long sequential streams,
// each asking for lines 2 KiB ahead of itself, as the decode GEMV does (cpu_linear.cpp says
// why); four adjacent entries with the next four prefetched made short streams that the
// hardware prefetcher kept restarting. Intel Xeon VM, cold, the two alternating in one process
// over 32 layers' caches: 7B shape (MHA, d 128) 605 entries 422 -> 383 us per layer, 2000
// entries 1388 -> 1308; 1.1B shape (GQA, 4 KV heads, d 64) 605 entries 101 -> 73, 1800 entries
// 275 -> 218.
//
// An earlier schedule went head by head over L2-sized blocks of entries with the next block
// prefetched in one burst; it was bound by that burst and by the strided per-head reads (7B
// shape, 606 entries, f16, cold: 0.90-1.0 ms per layer; the entry-by-entry walk 0.56-0.60 ms).
// Handing out several smaller ranges per thread, to even out a core slowed by another tenant,
// cost more in merging than it saved in waiting (7B 411 -> 430 us, 1.1B 93 -> 129).
//
// E is the stored type (float, or uint16_t for f16 entries, widened in registers). D is the head
// dimension when known at compile time (64 and 128 cover LLaMA and CLIP): one entry at a time, a
// KV head's slice of the row is loaded into registers once and dotted with each query head of its
// group; four at a time, the four slices are widened once and held in registers for all the
// group's heads where they fit (HeldSlices; D = 64: AMD Zen 5 VM, 1.1B shape, 600 entries, in the
// model, alternating runs: 41-54 -> 32-43 us per layer), and each head widens them again from L1
// where they do not (D = 128; widening them once into an f32 scratch instead made the 1.1B shape
// slower on Zen 4); 0 reads d from s and runs plain loops.
template <int D, typename E>
void attentionDecode(const float* q, const E* k, const E* v, int64_t nk, int64_t kvStride, const AttentionShape& s,
                     float* out, float* importance, float* window) {
#if defined(__AVX512F__)
    constexpr bool kVector = D > 0 && D % 16 == 0;  // a head's slice fits whole zmm registers
#elif defined(PKV_DECODE_YMM)
    constexpr bool kVector = D > 0 && D % 8 == 0;  // whole ymm registers: four entries at a time
#endif
    const int H = s.numHeads, d = D ? D : s.headDim, groupSize = s.numHeads / s.numKvHeads;
    const int threads = nk * kvStride >= kMinParallelWork ? omp_get_max_threads() : 1;
    const size_t T = static_cast<size_t>(threads), heads = static_cast<size_t>(H);
    // Rows ahead to prefetch: about 32 KiB, at least 4 entries.
    const int64_t ahead = std::max<int64_t>(4, (32 << 10) / (kvStride * int64_t(sizeof(E))));
    std::vector<float> rangeMax(T * heads), rangeSum(T * heads), rangeOut(T * heads * size_t(d), 0.f),
        headMax(heads), headInv(heads);
    std::vector<std::vector<float>> scores(T);
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), team = omp_get_num_threads();
        const int64_t per = (nk + team - 1) / team, j0 = std::min(nk, t * per), j1 = std::min(nk, j0 + per);
        const int64_t len = j1 - j0;
        std::vector<float>& S = scores[size_t(t)];  // [head][entry of the range]
        S.resize(size_t(H * len));
        std::vector<float> entry(std::is_same_v<E, float> ? 0 : size_t(kvStride));  // a widened f16 entry
        auto prefetchRow = [&](const E* base, int64_t j) {
            if (j >= j1) return;
            const char* row = reinterpret_cast<const char*>(base + j * kvStride);
            for (int64_t b = 0; b < kvStride * int64_t(sizeof(E)); b += 64) __builtin_prefetch(row + b, 0, 3);
        };

        // The vector path reads its range as four streams, a quarter of the range apart (entries
        // j0 + i, j0 + c + i, j0 + 2c + i, j0 + 3c + i for i < c), each asking for the lines
        // kPrefetchBytes ahead of the slice it reads, into L2 (head dimensions that are not whole
        // registers walk entry by entry).
        const int64_t quarter = len / 4;
        [[maybe_unused]] auto prefetchStreams = [&](const E* slice) {
            for (int e = 0; e < 4; ++e) {
                const char* ahead = reinterpret_cast<const char*>(slice + e * quarter * kvStride) + kPrefetchBytes;
                for (int64_t b = 0; b < int64_t(d) * int64_t(sizeof(E)); b += 64) __builtin_prefetch(ahead + b, 0, 2);
            }
        };

        // Scores: S[h][j] = scale * q_h . k_j[g(h)]. Blocks of four entries, then one at a time.
        int64_t j = j0;
#if defined(__AVX512F__) || defined(PKV_DECODE_YMM)
        if constexpr (kVector) {
            for (int64_t i = 0; i < quarter; ++i)
                for (int g = 0; g < s.numKvHeads; ++g) {
                    const E* slice = k + (j0 + i) * kvStride + int64_t(g) * D;
                    prefetchStreams(slice);
                    scores4<D>(q, slice, kvStride, quarter, g * groupSize, (g + 1) * groupSize, s.scale, S.data() + i,
                               len);
                }
            j = j0 + 4 * quarter;
        }
#endif
        for (; j < j1; ++j) {
            prefetchRow(k, j + ahead);
            const E* kj = k + j * kvStride;
#ifdef __AVX512F__
            if constexpr (kVector) {
                for (int g = 0; g < s.numKvHeads; ++g) {
                    __m512 kc[D / 16];
                    for (int c = 0; c < D / 16; ++c) kc[c] = load16(kj + int64_t(g) * D + 16 * c);
                    for (int h = g * groupSize; h < (g + 1) * groupSize; ++h) {
                        const float* qh = q + int64_t(h) * D;
                        __m512 acc = _mm512_mul_ps(kc[0], _mm512_loadu_ps(qh));
                        for (int c = 1; c < D / 16; ++c) acc = _mm512_fmadd_ps(kc[c], _mm512_loadu_ps(qh + 16 * c), acc);
                        S[size_t(h * len + (j - j0))] = _mm512_reduce_add_ps(acc) * s.scale;
                    }
                }
                continue;
            }
#endif
            const float* kf = entryAsFloats(kj, kvStride, entry.data());
            for (int g = 0; g < s.numKvHeads; ++g) {
                const float* kg = kf + int64_t(g) * d;
                for (int h = g * groupSize; h < (g + 1) * groupSize; ++h) {
                    const float* qh = q + int64_t(h) * d;
                    float dotv = 0.f;
#pragma omp simd reduction(+ : dotv)
                    for (int i = 0; i < d; ++i) dotv += qh[i] * kg[i];
                    S[size_t(h * len + (j - j0))] = dotv * s.scale;
                }
            }
        }

        // This range's softmax per head, left unnormalised.
        float* mx = rangeMax.data() + int64_t(t) * H;
        float* sum = rangeSum.data() + int64_t(t) * H;
        for (int h = 0; h < H; ++h) {
            float* row = S.data() + h * len;
            const float m = maxOf(row, len);
            mx[h] = m;
            sum[h] = len > 0 ? expShiftedSum(row, row, len, m) : 0.f;
        }

        // Weighted values: o_h += p[h][j] * v_j[g(h)], the outputs (H * d floats) staying in L1.
        float* o = rangeOut.data() + int64_t(t) * H * d;
        j = j0;
#if defined(__AVX512F__) || defined(PKV_DECODE_YMM)
        if constexpr (kVector) {
            for (int64_t i = 0; i < quarter; ++i)
                for (int g = 0; g < s.numKvHeads; ++g) {
                    const E* slice = v + (j0 + i) * kvStride + int64_t(g) * D;
                    prefetchStreams(slice);
                    weightedValues4<D>(slice, kvStride, quarter, g * groupSize, (g + 1) * groupSize, S.data() + i, len,
                                       o);
                }
            j = j0 + 4 * quarter;
        }
#endif
        for (; j < j1; ++j) {
            prefetchRow(v, j + ahead);
            const E* vj = v + j * kvStride;
#ifdef __AVX512F__
            if constexpr (kVector) {
                for (int g = 0; g < s.numKvHeads; ++g) {
                    __m512 vc[D / 16];
                    for (int c = 0; c < D / 16; ++c) vc[c] = load16(vj + int64_t(g) * D + 16 * c);
                    for (int h = g * groupSize; h < (g + 1) * groupSize; ++h) {
                        const __m512 p = _mm512_set1_ps(S[size_t(h * len + (j - j0))]);
                        float* oh = o + int64_t(h) * D;
                        for (int c = 0; c < D / 16; ++c)
                            _mm512_storeu_ps(oh + 16 * c, _mm512_fmadd_ps(p, vc[c], _mm512_loadu_ps(oh + 16 * c)));
                    }
                }
                continue;
            }
#endif
            const float* vf = entryAsFloats(vj, kvStride, entry.data());
            for (int g = 0; g < s.numKvHeads; ++g) {
                const float* vg = vf + int64_t(g) * d;
                for (int h = g * groupSize; h < (g + 1) * groupSize; ++h) {
                    const float p = S[size_t(h * len + (j - j0))];
                    float* oh = o + int64_t(h) * d;
#pragma omp simd
                    for (int i = 0; i < d; ++i) oh[i] += p * vg[i];
                }
            }
        }
#pragma omp barrier
#pragma omp single
        {
            for (int h = 0; h < H; ++h) {
                float m = -INFINITY, total = 0.f;
                for (int r = 0; r < team; ++r) m = std::max(m, rangeMax[size_t(r * H + h)]);
                for (int r = 0; r < team; ++r)
                    if (rangeSum[size_t(r * H + h)] > 0) total += rangeSum[size_t(r * H + h)] * std::exp(rangeMax[size_t(r * H + h)] - m);
                headMax[size_t(h)] = m;
                headInv[size_t(h)] = 1.f / total;
                float* oh = out + int64_t(h) * d;
                std::fill(oh, oh + d, 0.f);
                for (int r = 0; r < team; ++r) {
                    if (rangeSum[size_t(r * H + h)] <= 0) continue;  // an empty range
                    const float w = std::exp(rangeMax[size_t(r * H + h)] - m) * headInv[size_t(h)];
                    const float* part = rangeOut.data() + (int64_t(r) * H + h) * d;
                    for (int i = 0; i < d; ++i) oh[i] += w * part[i];
                }
            }
        }
        if ((importance || window) && len > 0) {
            const float invHeads = 1.f / float(H);
            for (int h = 0; h < H; ++h) {
                // This range's exp(score - its max) times exp(its max - global max) / global sum.
                const float w = std::exp(mx[h] - headMax[size_t(h)]) * headInv[size_t(h)] * invHeads;
                const float* row = S.data() + h * len;
                if (importance)
                    for (int64_t j = 0; j < len; ++j) importance[j0 + j] += w * row[j];
                if (window)
                    for (int64_t j = 0; j < len; ++j) window[j0 + j] += w * row[j];
            }
        }
    }
}

template <typename E>
void decodeForHeadDim(const float* q, const E* k, const E* v, int64_t nk, int64_t kvStride, const AttentionShape& s,
                      float* out, float* importance, float* window) {
    if (s.headDim == 64)
        attentionDecode<64>(q, k, v, nk, kvStride, s, out, importance, window);
    else if (s.headDim == 128)
        attentionDecode<128>(q, k, v, nk, kvStride, s, out, importance, window);
    else
        attentionDecode<0>(q, k, v, nk, kvStride, s, out, importance, window);
}

void decodeAnyType(const float* q, const void* k, const void* v, DType kvType, int64_t nk, int64_t kvStride,
                   const AttentionShape& s, float* out, float* importance, float* window) {
    if (kvType == DType::F32)
        decodeForHeadDim(q, static_cast<const float*>(k), static_cast<const float*>(v), nk, kvStride, s, out, importance,
                         window);
    else if (kvType == DType::F16)
        decodeForHeadDim(q, static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v), nk, kvStride, s, out,
                         importance, window);
    else
        throw std::invalid_argument("attention over a cache of " + std::string(dtypeName(kvType)) + " entries");
}

}  // namespace

void attention(const float* q, int64_t nq, const float* k, const float* v, int64_t nk, int64_t kvStride,
               const AttentionShape& s, bool causal, int64_t keyOffset, float* out, float* importance,
               float* window, int64_t windowRows) {
    if (nq >= kGemmMinQueries)
        attentionTiles(q, nq, k, v, nk, kvStride, s, causal, keyOffset, out, importance, window, windowRows);
    else if (nq == 1 && (!causal || keyOffset + 1 >= nk))  // one query that sees every key
        decodeForHeadDim(q, k, v, nk, kvStride, s, out, importance, windowRows > 0 ? window : nullptr);
    else
        attentionRows(q, nq, k, v, nk, kvStride, s, causal, keyOffset, out, importance, window, windowRows);
}

void attentionOneQuery(const float* q, const void* k, const void* v, DType kvType, int64_t nk, int64_t kvStride,
                       const AttentionShape& s, float* out, float* importance, float* window) {
    decodeAnyType(q, k, v, kvType, nk, kvStride, s, out, importance, window);
}

}  // namespace pkv::cpu
