#include "engine/kv/baselines/selection.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/common/error.h"

namespace pkv {

int64_t forgetCount(int64_t length, int64_t tokensSeen, double r) {
    volatile double share = double(tokensSeen) * (1.0 - r);
    return int64_t(std::trunc(double(length) - share));
}

namespace {

std::vector<int64_t> stableAscendingOrder(const std::vector<float>& scores) {
    std::vector<int64_t> order(scores.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return scores[size_t(a)] < scores[size_t(b)]; });
    return order;
}

}  // namespace

ArgsortSplit ecArgsortSplit(const std::vector<float>& candidateScores, int64_t forget, bool faithful) {
    const std::vector<int64_t> order = stableAscendingOrder(candidateScores);
    std::vector<int64_t> compared(order.size());
    if (faithful) {
        compared = order;
    } else {
        for (size_t k = 0; k < order.size(); ++k) compared[size_t(order[k])] = int64_t(k);
    }
    ArgsortSplit split;
    for (size_t i = 0; i < compared.size(); ++i)
        (compared[i] > forget ? split.important : split.thrown).push_back(int64_t(i));
    return split;
}

std::vector<int64_t> keepTopRanked(const std::vector<float>& scores, const std::vector<int64_t>& candidates,
                                   int64_t keep) {
    std::vector<int64_t> ranked = candidates;
    std::stable_sort(ranked.begin(), ranked.end(), [&](int64_t a, int64_t b) {
        const float sa = scores[size_t(a)], sb = scores[size_t(b)];
        return sa > sb || (sa == sb && a < b);
    });
    ranked.resize(size_t(std::clamp<int64_t>(keep, 0, int64_t(ranked.size()))));
    std::sort(ranked.begin(), ranked.end());
    return ranked;
}

std::vector<float> windowColumnSums(const std::vector<float>& window, int64_t n, int64_t rowBegin, int64_t rowEnd,
                                    int64_t columns) {
    std::vector<float> sums(size_t(columns), 0.f);
    for (int64_t row = rowBegin; row < rowEnd; ++row)
        for (int64_t j = 0; j < columns; ++j) sums[size_t(j)] += window[size_t(row * n + j)];
    return sums;
}

std::vector<float> maxPoolSame(const std::vector<float>& x, int kernel) {
    const int64_t n = int64_t(x.size()), half = kernel / 2;
    std::vector<float> pooled(x.size());
    for (int64_t i = 0; i < n; ++i) {
        const auto first = x.begin() + std::max<int64_t>(0, i - half);
        const auto last = x.begin() + std::min<int64_t>(n, i + half + 1);
        pooled[size_t(i)] = *std::max_element(first, last);
    }
    return pooled;
}

std::vector<int64_t> apportion(const std::vector<double>& weights, int64_t total, int64_t lo, int64_t hi) {
    const int64_t layers = int64_t(weights.size());
    total = std::clamp(total, layers * lo, layers * hi);
    std::vector<bool> pinned(weights.size(), false);
    std::vector<double> share(weights.size(), 0.0);
    for (;;) {
        double remaining = double(total), weightSum = 0.0;
        int64_t free = 0;
        for (int64_t l = 0; l < layers; ++l) {
            if (pinned[size_t(l)]) {
                remaining -= share[size_t(l)];
            } else {
                weightSum += weights[size_t(l)];
                ++free;
            }
        }
        if (free == 0) break;
        for (int64_t l = 0; l < layers; ++l)
            if (!pinned[size_t(l)])
                share[size_t(l)] = weightSum > 0.0 ? remaining * weights[size_t(l)] / weightSum : remaining / double(free);
        // Pin the layers above hi first: giving their surplus to the others can only push those
        // up, so each round pins at least one layer and the loop ends within L rounds.
        bool changed = false;
        for (int64_t l = 0; l < layers; ++l)
            if (!pinned[size_t(l)] && share[size_t(l)] > double(hi)) {
                share[size_t(l)] = double(hi);
                pinned[size_t(l)] = changed = true;
            }
        if (changed) continue;
        for (int64_t l = 0; l < layers; ++l)
            if (!pinned[size_t(l)] && share[size_t(l)] < double(lo)) {
                share[size_t(l)] = double(lo);
                pinned[size_t(l)] = changed = true;
            }
        if (!changed) break;
    }
    std::vector<int64_t> counts(weights.size());
    int64_t left = total;
    for (int64_t l = 0; l < layers; ++l) {
        counts[size_t(l)] = int64_t(std::floor(share[size_t(l)]));
        left -= counts[size_t(l)];
    }
    std::vector<int64_t> order(weights.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return share[size_t(a)] - std::floor(share[size_t(a)]) > share[size_t(b)] - std::floor(share[size_t(b)]);
    });
    for (int64_t l : order) {
        if (left <= 0) break;
        if (counts[size_t(l)] < hi) {
            ++counts[size_t(l)];
            --left;
        }
    }
    return counts;
}

void checkPrefilledCache(const KvCache& cache, int64_t n, const std::string& policy) {
    for (int l = 0; l < cache.numLayers(); ++l)
        if (cache.length(l) != n)
            throw Error("The " + policy + " policy found " + std::to_string(cache.length(l)) + " entries in layer " +
                        std::to_string(l) + " of the KV cache after a prefill of " + std::to_string(n) + " tokens.");
}

void checkImportance(const KvCache& cache, const PrefillContext& ctx, const std::string& policy) {
    if (!ctx.importance || int64_t(ctx.importance->size()) != cache.numLayers())
        throw Error("The " + policy + " policy needs the token importance of every layer after the prefill.");
    for (const auto& layer : *ctx.importance)
        if (int64_t(layer.size()) != ctx.promptLength)
            throw Error("The " + policy + " policy got " + std::to_string(layer.size()) +
                        " importance values for a prompt of " + std::to_string(ctx.promptLength) + " tokens.");
}

}  // namespace pkv
