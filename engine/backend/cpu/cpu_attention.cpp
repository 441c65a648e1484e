// Scaled dot-product attention: scores, a numerically stable softmax, the weighted sum of values.
// Three schedules of the same arithmetic:
// - one query (decode): per KV head, the query heads that share it form a small matrix, so
//   S = Q_group K^T and P V are sgemm calls that read each cached key and value once per group;
// - a few queries: one (query, head) pair at a time;
// - many queries (prefill, vision): per head and block of query rows, scores S = Q K^T and the
//   output P V as single-threaded sgemm calls on thread-private tiles, so the work runs at GEMM
//   speed; keys a block cannot see (causal) are never multiplied.
// The probabilities exist only in per-thread scratch, so token importance (their head average,
// summed over queries) and the window rows are accumulated there, into per-thread partials that
// are reduced at the end.
#include <cblas.h>
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

// Softmax of one score row over its `visible` keys, in place; returns nothing else because the
// row itself becomes the probabilities. Keys past `visible` are set to 0 for the P V product.
void softmaxRow(float* row, int64_t visible, int64_t width) {
    float maxScore = -INFINITY;
#pragma omp simd reduction(max : maxScore)
    for (int64_t j = 0; j < visible; ++j) maxScore = std::max(maxScore, row[j]);
    const float inv = 1.f / expShiftedSum(row, row, visible, maxScore);
#pragma omp simd
    for (int64_t j = 0; j < visible; ++j) row[j] *= inv;
    std::fill(row + visible, row + width, 0.f);
}

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
        std::vector<float> scores(size_t(kQueryBlock * nk));
#pragma omp for collapse(2) schedule(dynamic)
        for (int h = 0; h < H; ++h) {
            for (int64_t b = 0; b < blocks; ++b) {
                const int64_t i0 = b * kQueryBlock, rows = std::min(kQueryBlock, nq - i0);
                // Keys the last row of the block can see; earlier rows see fewer.
                const int64_t width = causal ? std::min(nk, keyOffset + i0 + rows) : nk;
                const float* qh = q + i0 * qStride + int64_t(h) * d;
                const int64_t kvOff = int64_t(h / groupSize) * d;

                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(width), d, s.scale, qh,
                            int(qStride), k + kvOff, int(kvStride), 0.f, scores.data(), int(width));
                for (int64_t r = 0; r < rows; ++r) {
                    float* row = scores.data() + r * width;
                    softmaxRow(row, causal ? std::min(nk, keyOffset + i0 + r + 1) : nk, width);
                    if (importance) {
                        float* imp = impPartial[size_t(t)].data();
                        for (int64_t j = 0; j < width; ++j) imp[j] += row[j] * invHeads;
                    }
                    if (window && i0 + r >= windowStart) {
                        float* win = winPartial[size_t(t)].data() + (i0 + r - windowStart) * nk;
                        for (int64_t j = 0; j < width; ++j) win[j] += row[j] * invHeads;
                    }
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), d, int(width), 1.f, scores.data(),
                            int(width), v + kvOff, int(kvStride), 0.f, out + i0 * qStride + int64_t(h) * d,
                            int(qStride));
            }
        }
    }
    for (const auto& part : impPartial)
        for (int64_t j = 0; j < nk; ++j) importance[j] += part[size_t(j)];
    for (const auto& part : winPartial)
        for (int64_t j = 0; j < windowRows * nk; ++j) window[j] += part[size_t(j)];
}

// One query row: for each KV head g, its groupSize query heads are consecutive in q, so they are a
// [groupSize x d] matrix against the layer's keys.
void attentionDecode(const float* q, const float* k, const float* v, int64_t nk, int64_t kvStride,
                     const AttentionShape& s, float* out, float* importance, float* window) {
    const int groupSize = s.numHeads / s.numKvHeads, d = s.headDim;
    const float invHeads = 1.f / float(s.numHeads);
    const int threads = omp_get_max_threads();
    std::vector<std::vector<float>> partial((importance || window) ? threads : 0, std::vector<float>(size_t(nk), 0.f));
#pragma omp parallel if (int64_t(s.numHeads) * nk * d >= kMinParallelWork)
    {
        const int t = omp_get_thread_num();
        std::vector<float> scores(size_t(groupSize) * size_t(nk));
#pragma omp for schedule(static)
        for (int g = 0; g < s.numKvHeads; ++g) {
            const float* qg = q + int64_t(g) * groupSize * d;
            const int64_t kvOff = int64_t(g) * d;
            // One query head per KV head (multi-head attention) makes these matrix-vector products,
            // for which sgemv is several times faster than sgemm with one row.
            if (groupSize == 1)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, int(nk), d, s.scale, k + kvOff, int(kvStride), qg, 1, 0.f,
                            scores.data(), 1);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, groupSize, int(nk), d, s.scale, qg, d, k + kvOff,
                            int(kvStride), 0.f, scores.data(), int(nk));
            for (int r = 0; r < groupSize; ++r) {
                float* row = scores.data() + int64_t(r) * nk;
                softmaxRow(row, nk, nk);
                if (!partial.empty())
                    for (int64_t j = 0; j < nk; ++j) partial[size_t(t)][size_t(j)] += row[j] * invHeads;
            }
            if (groupSize == 1)
                cblas_sgemv(CblasRowMajor, CblasTrans, int(nk), d, 1.f, v + kvOff, int(kvStride), scores.data(), 1, 0.f,
                            out + int64_t(g) * d, 1);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, groupSize, d, int(nk), 1.f, scores.data(),
                            int(nk), v + kvOff, int(kvStride), 0.f, out + int64_t(g) * groupSize * d, d);
        }
    }
    // The one query is both the importance row and the whole window.
    for (const auto& part : partial)
        for (int64_t j = 0; j < nk; ++j) {
            if (importance) importance[j] += part[size_t(j)];
            if (window) window[j] += part[size_t(j)];
        }
}

}  // namespace

void attention(const float* q, int64_t nq, const float* k, const float* v, int64_t nk, int64_t kvStride,
               const AttentionShape& s, bool causal, int64_t keyOffset, float* out, float* importance,
               float* window, int64_t windowRows) {
    if (nq >= kGemmMinQueries)
        attentionTiles(q, nq, k, v, nk, kvStride, s, causal, keyOffset, out, importance, window, windowRows);
    else if (nq == 1 && (!causal || keyOffset + 1 >= nk))  // one query that sees every key
        attentionDecode(q, k, v, nk, kvStride, s, out, importance, windowRows > 0 ? window : nullptr);
    else
        attentionRows(q, nq, k, v, nk, kvStride, s, causal, keyOffset, out, importance, window, windowRows);
}

}  // namespace pkv::cpu
