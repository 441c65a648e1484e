// Scaled dot-product attention, one (query, head) pair at a time: scores, a numerically stable
// softmax, and the weighted sum of values. The probabilities exist only in a per-thread row of
// scratch, so token importance (their head average, summed over queries) is accumulated here at
// the cost of one add per probability, into per-thread partial sums that are reduced at the end.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/backend/cpu/cpu_kernels.h"

namespace pkv::cpu {

void attention(const float* q, int64_t nq, const float* k, const float* v, int64_t nk, int64_t kvStride,
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
                float sum = 0.f;
                for (int64_t j = 0; j < visible; ++j) {
                    p[size_t(j)] = std::exp(p[size_t(j)] - maxScore);
                    sum += p[size_t(j)];
                }
                const float inv = 1.f / sum;

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

}  // namespace pkv::cpu
