// Scaled dot-product attention: scores, a numerically stable softmax, the weighted sum of values.
// Three schedules of the same arithmetic:
// - one query (decode): the cache split by entries across threads, each reading whole entries
//   once, with per-range softmaxes merged at the end;
// - a few queries: one (query, head) pair at a time;
// - many queries (prefill, vision): per KV head and block of query rows (all query heads of the
//   group stacked), scores S = Q K^T and the output P V as single-threaded sgemm calls on
//   thread-private tiles, so the work runs at GEMM speed; keys a block cannot see (causal) are
//   never multiplied.
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
#include <vector>

#include "engine/backend/cpu/cpu_exp.h"
#include "engine/backend/cpu/cpu_kernels.h"

namespace pkv::cpu {
namespace {

constexpr int64_t kGemmMinQueries = 16;  // below this, the per-query loop
constexpr int64_t kQueryBlock = 64;      // query rows per score tile

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
    float maxScore = -INFINITY;
#pragma omp simd reduction(max : maxScore)
    for (int64_t j = 0; j < visible; ++j) maxScore = std::max(maxScore, row[j]);
    const float inv = 1.f / expShiftedSum(row, row, visible, maxScore);
    std::fill(row + visible, row + width, 0.f);
    return inv;
}

// Many queries. A task is one KV head g and one block of up to kQueryBlock queries: the block's
// rows of all groupSize query heads that share g are copied into one matrix, so the scores
// S = Q K_g^T and the output P V_g are one sgemm each over the keys the block can see (K_g and
// V_g packed once for the whole group instead of once per head).
void attentionTiles(const float* q, int64_t nq, const float* k, const float* v, int64_t nk, int64_t kvStride,
                    const AttentionShape& s, bool causal, int64_t keyOffset, float* out, float* importance,
                    float* window, int64_t windowRows) {
    const int H = s.numHeads, d = s.headDim;
    const int groupSize = s.numHeads / s.numKvHeads;
    const int64_t qStride = int64_t(H) * d;
    const float invHeads = 1.f / float(H);
    const int64_t windowStart = nq - windowRows;
    const int64_t blocks = (nq + kQueryBlock - 1) / kQueryBlock;
    const int threads = omp_get_max_threads();
    std::vector<std::vector<float>> impPartial(importance ? threads : 0, std::vector<float>(size_t(nk), 0.f));
    std::vector<std::vector<float>> winPartial(window ? threads : 0,
                                               std::vector<float>(size_t(windowRows * nk), 0.f));

#pragma omp parallel
    {
        const int t = omp_get_thread_num();
        const int64_t maxRows = int64_t(groupSize) * kQueryBlock;
        std::vector<float> scores(size_t(maxRows * nk)), qBlock(size_t(maxRows * d)), oBlock(size_t(maxRows * d)),
            inv(static_cast<size_t>(maxRows));
#pragma omp for collapse(2) schedule(dynamic)
        for (int g = 0; g < s.numKvHeads; ++g) {
            for (int64_t b = 0; b < blocks; ++b) {
                const int64_t i0 = b * kQueryBlock, rows = std::min(kQueryBlock, nq - i0);
                const int64_t m = int64_t(groupSize) * rows;  // matrix row r * rows + i: head g*G + r, query i0 + i
                // Keys the last query of the block can see; earlier ones see fewer.
                const int64_t width = causal ? std::min(nk, keyOffset + i0 + rows) : nk;
                const int64_t kvOff = int64_t(g) * d;
                for (int r = 0; r < groupSize; ++r)
                    for (int64_t i = 0; i < rows; ++i)
                        std::copy_n(q + (i0 + i) * qStride + int64_t(g * groupSize + r) * d, d,
                                    qBlock.data() + (r * rows + i) * d);

                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(width), d, s.scale, qBlock.data(), d,
                            k + kvOff, int(kvStride), 0.f, scores.data(), int(width));
                for (int64_t row = 0; row < m; ++row) {
                    const int64_t i = row % rows;
                    float* p = scores.data() + row * width;
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
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), d, int(width), 1.f, scores.data(),
                            int(width), v + kvOff, int(kvStride), 0.f, oBlock.data(), d);
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

// Dot product of one query head with one key head. With the head dimension known at compile time
// and AVX-512, the products of all 16-float chunks are independent and summed as a tree, so a dot
// costs a few instructions instead of a chain of dependent multiply-adds.
template <int D>
inline float headDot(const float* a, const float* b, int d) {
#ifdef __AVX512F__
    if constexpr (D > 0 && D % 16 == 0 && ((D / 16) & (D / 16 - 1)) == 0) {  // a power of two of chunks
        __m512 part[D / 16];
        for (int c = 0; c < D / 16; ++c) part[c] = _mm512_mul_ps(_mm512_loadu_ps(a + 16 * c), _mm512_loadu_ps(b + 16 * c));
        for (int width = D / 16; width > 1; width /= 2)
            for (int c = 0; c < width / 2; ++c) part[c] = _mm512_add_ps(part[c], part[c + width / 2]);
        return _mm512_reduce_add_ps(part[0]);
    }
#endif
    float dotv = 0.f;
#pragma omp simd reduction(+ : dotv)
    for (int i = 0; i < d; ++i) dotv += a[i] * b[i];
    return dotv;
}

#ifdef __AVX512F__
// scale · (q · k_j) for 16 consecutive entries k_j = k + j * stride, j < 16. The 16 per-entry sums
// of products are reduced together by a transpose-and-add tree (45 shuffles and adds for 16
// results, instead of a full horizontal reduction for each), which is what bounds this loop.
template <int D>
inline void headDots16(const float* q, const float* k, int64_t stride, float scale, float* out) {
    __m512 qc[D / 16];
    for (int c = 0; c < D / 16; ++c) qc[c] = _mm512_loadu_ps(q + 16 * c);
    __m512 a[16];
    for (int j = 0; j < 16; ++j) {
        const float* kj = k + j * stride;
        a[j] = _mm512_mul_ps(qc[0], _mm512_loadu_ps(kj));
        for (int c = 1; c < D / 16; ++c) a[j] = _mm512_fmadd_ps(qc[c], _mm512_loadu_ps(kj + 16 * c), a[j]);
    }
    // 16 -> 8: within each 128-bit lane, pairs of entries interleaved and half-summed.
    __m512 b[8];
    for (int i = 0; i < 8; ++i)
        b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    // 8 -> 4: each 128-bit lane holds the partial sums of four consecutive entries.
    __m512 c4[4];
    for (int i = 0; i < 4; ++i)
        c4[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44), _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
    // 4 -> 2 -> 1: add the 128-bit lanes, keeping entries in order.
    const __m512 d0 = _mm512_add_ps(_mm512_shuffle_f32x4(c4[0], c4[1], 0x88), _mm512_shuffle_f32x4(c4[0], c4[1], 0xDD));
    const __m512 d1 = _mm512_add_ps(_mm512_shuffle_f32x4(c4[2], c4[3], 0x88), _mm512_shuffle_f32x4(c4[2], c4[3], 0xDD));
    const __m512 sums = _mm512_add_ps(_mm512_shuffle_f32x4(d0, d1, 0x88), _mm512_shuffle_f32x4(d0, d1, 0xDD));
    _mm512_storeu_ps(out, _mm512_mul_ps(sums, _mm512_set1_ps(scale)));
}
#endif

// o[0..d) += Σ_{j in [j0, j1)} p[j] · v[j * stride .. + d): one head's weighted values over a block
// of entries, with o held in registers across the block when d is known.
template <int D>
inline void headAccumulate(float* o, const float* p, const float* v, int64_t stride, int64_t j0, int64_t j1, int d) {
#ifdef __AVX512F__
    if constexpr (D > 0 && D % 16 == 0) {
        __m512 acc[D / 16];
        for (int c = 0; c < D / 16; ++c) acc[c] = _mm512_loadu_ps(o + 16 * c);
        for (int64_t j = j0; j < j1; ++j) {
            const __m512 pj = _mm512_set1_ps(p[j]);
            const float* vj = v + j * stride;
            for (int c = 0; c < D / 16; ++c) acc[c] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 16 * c), acc[c]);
        }
        for (int c = 0; c < D / 16; ++c) _mm512_storeu_ps(o + 16 * c, acc[c]);
        return;
    }
#endif
    for (int64_t j = j0; j < j1; ++j) {
        const float* vj = v + j * stride;
#pragma omp simd
        for (int i = 0; i < d; ++i) o[i] += p[j] * vj[i];
    }
}

// Asks for rows [r0, r1) of a row-major matrix with `rowBytes` bytes per row to be brought into L2.
inline void prefetchRows(const void* base, size_t rowBytes, int64_t r0, int64_t r1) {
    if (r1 <= r0) return;
    const char* begin = static_cast<const char*>(base) + size_t(r0) * rowBytes;
    const char* end = static_cast<const char*>(base) + size_t(r1) * rowBytes;
    for (const char* p = begin; p < end; p += 64) __builtin_prefetch(p, 0, 2);
}

// Cache rows [j0, j1) as float32: the cache itself when it is stored so, else the rows widened into
// `scratch` (a block of them fits in L2, so the kernels below read the widened copy from there).
inline const float* rowsAsFloat(const void* base, DType type, int64_t stride, int64_t j0, int64_t j1,
                                std::vector<float>& scratch) {
    if (type == DType::F32) return static_cast<const float*>(base) + j0 * stride;
    scratch.resize(size_t((j1 - j0) * stride));
    convertToFloat(static_cast<const uint16_t*>(base) + j0 * stride, type, (j1 - j0) * stride, scratch.data());
    return scratch.data();
}

// One query row (decode), split by keys rather than heads: each thread takes a contiguous range
// of cache entries and reads each entry's keys and values once, whole (all heads of a token are
// one contiguous row), which streams from memory; splitting by head instead reads every row in
// head-sized strided pieces (7B shape: 18.6 GB/s that way, 26 GB/s this way, cold). Each thread
// keeps a softmax that is exact for its own range (its max, its sum, its weighted values); the
// ranges are merged by rescaling to the global max, as flash-decoding does. Importance and the
// window row, when asked for, are the final probabilities averaged over heads, written per range.
//
// D is the head dimension when known at compile time (64 and 128 cover LLaMA and CLIP), so the
// per-head dot products and updates unroll into a few vector instructions; 0 reads it from s.
// An f16 cache is read as stored (half the bytes) and widened one block at a time.
template <int D>
void attentionDecode(const float* q, const void* k, const void* v, DType kvType, int64_t nk, int64_t kvStride,
                     const AttentionShape& s, float* out, float* importance, float* window) {
    const int H = s.numHeads, d = D ? D : s.headDim, groupSize = s.numHeads / s.numKvHeads;
    const int threads = nk * kvStride >= kMinParallelWork ? omp_get_max_threads() : 1;
    const size_t T = static_cast<size_t>(threads), heads = static_cast<size_t>(H);
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
        // Keys in blocks of about 256 KiB as f32 (they stay in L2 while every head passes over them);
        // the next block is prefetched whole while this one is used.
        const size_t rowBytes = size_t(kvStride) * dtypeSize(kvType);
        const int64_t block = std::clamp<int64_t>((256 << 10) / (kvStride * 4), 8, 256);
        thread_local std::vector<float> widened;  // one block, kept between calls (256 KiB)
        for (int64_t b0 = j0; b0 < j1; b0 += block) {
            const int64_t b1 = std::min(j1, b0 + block);
            prefetchRows(k, rowBytes, b1, std::min(j1, b1 + block));
            const float* kb = rowsAsFloat(k, kvType, kvStride, b0, b1, widened);  // entry b0 first
            for (int g = 0; g < s.numKvHeads; ++g)
                for (int h = g * groupSize; h < (g + 1) * groupSize; ++h) {
                    const float* qh = q + int64_t(h) * d;
                    float* Sh = S.data() + h * len;  // entry j's score at Sh[j - j0]
                    int64_t j = b0;
#ifdef __AVX512F__
                    if constexpr (D > 0 && D % 16 == 0)
                        for (; j + 16 <= b1; j += 16)
                            headDots16<D>(qh, kb + (j - b0) * kvStride + int64_t(g) * d, kvStride, s.scale, Sh + (j - j0));
#endif
                    for (; j < b1; ++j) Sh[j - j0] = headDot<D>(qh, kb + (j - b0) * kvStride + int64_t(g) * d, d) * s.scale;
                }
        }
        float* mx = rangeMax.data() + int64_t(t) * H;
        float* sum = rangeSum.data() + int64_t(t) * H;
        for (int h = 0; h < H; ++h) {
            float* row = S.data() + h * len;
            float m = -INFINITY;
#pragma omp simd reduction(max : m)
            for (int64_t j = 0; j < len; ++j) m = std::max(m, row[j]);
            mx[h] = m;
            sum[h] = len > 0 ? expShiftedSum(row, row, len, m) : 0.f;
        }
        float* o = rangeOut.data() + int64_t(t) * H * d;
        for (int64_t b0 = j0; b0 < j1; b0 += block) {
            const int64_t b1 = std::min(j1, b0 + block);
            prefetchRows(v, rowBytes, b1, std::min(j1, b1 + block));
            const float* vb = rowsAsFloat(v, kvType, kvStride, b0, b1, widened);  // entry b0 first
            for (int g = 0; g < s.numKvHeads; ++g)
                for (int h = g * groupSize; h < (g + 1) * groupSize; ++h)
                    headAccumulate<D>(o + int64_t(h) * d, S.data() + h * len + (b0 - j0), vb + int64_t(g) * d, kvStride, 0,
                                      b1 - b0, d);
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

void decodeForHeadDim(const float* q, const void* k, const void* v, DType kvType, int64_t nk, int64_t kvStride,
                      const AttentionShape& s, float* out, float* importance, float* window) {
    if (s.headDim == 64)
        attentionDecode<64>(q, k, v, kvType, nk, kvStride, s, out, importance, window);
    else if (s.headDim == 128)
        attentionDecode<128>(q, k, v, kvType, nk, kvStride, s, out, importance, window);
    else
        attentionDecode<0>(q, k, v, kvType, nk, kvStride, s, out, importance, window);
}

}  // namespace

void attention(const float* q, int64_t nq, const float* k, const float* v, int64_t nk, int64_t kvStride,
               const AttentionShape& s, bool causal, int64_t keyOffset, float* out, float* importance,
               float* window, int64_t windowRows) {
    if (nq >= kGemmMinQueries)
        attentionTiles(q, nq, k, v, nk, kvStride, s, causal, keyOffset, out, importance, window, windowRows);
    else if (nq == 1 && (!causal || keyOffset + 1 >= nk))  // one query that sees every key
        decodeForHeadDim(q, k, v, DType::F32, nk, kvStride, s, out, importance, windowRows > 0 ? window : nullptr);
    else
        attentionRows(q, nq, k, v, nk, kvStride, s, causal, keyOffset, out, importance, window, windowRows);
}

void attentionOneQuery(const float* q, const void* k, const void* v, DType kvType, int64_t nk, int64_t kvStride,
                       const AttentionShape& s, float* out, float* importance, float* window) {
    decodeForHeadDim(q, k, v, kvType, nk, kvStride, s, out, importance, window);
}

}  // namespace pkv::cpu
