#include "engine/kv/prefixkv_policy.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/common/error.h"

namespace pkv {

std::vector<int64_t> selectKeptPositions(const std::vector<float>& importance, int64_t evict) {
    const int64_t n = int64_t(importance.size());
    std::vector<int64_t> kept(static_cast<size_t>(n));
    std::iota(kept.begin(), kept.end(), 0);
    if (n <= kPrefixStartSize + kPrefixProtectSize) return kept;

    std::vector<int64_t> ranked(kept.begin() + kPrefixStartSize, kept.end() - kPrefixProtectSize);
    std::stable_sort(ranked.begin(), ranked.end(),
                     [&](int64_t a, int64_t b) { return importance[size_t(a)] < importance[size_t(b)]; });
    const int64_t dropped = std::clamp<int64_t>(evict, 0, int64_t(ranked.size()));
    std::vector<bool> drop(static_cast<size_t>(n), false);
    for (int64_t k = 0; k < dropped; ++k) drop[size_t(ranked[size_t(k)])] = true;
    kept.erase(std::remove_if(kept.begin(), kept.end(), [&](int64_t j) { return drop[size_t(j)]; }), kept.end());
    return kept;
}

int64_t fixedEvictionIndex(int64_t keptCount) {
    const int64_t index = keptCount + kEvictionDistance;
    return index >= 1 ? index : keptCount / 2;
}

bool exceedsDecodeBudget(int64_t length, int64_t tokensSeen, double fraction) {
    // The product is rounded on its own before the subtraction, as in the reference's Python;
    // `volatile` stops the compiler fusing the two into one FMA (-march=native allows it), which
    // would change trunc() whenever the difference lands next to a whole number.
    volatile double share = double(tokensSeen) * (1.0 - fraction);
    return std::trunc(double(length) - share) >= 1.0;
}

std::unique_ptr<PrefixKvPolicy> PrefixKvPolicy::online(const Budget& budget) {
    return std::unique_ptr<PrefixKvPolicy>(new PrefixKvPolicy(Source::Online, budget, {}));
}

std::unique_ptr<PrefixKvPolicy> PrefixKvPolicy::fromFractions(std::vector<double> fractions) {
    for (size_t l = 0; l < fractions.size(); ++l)
        if (!(fractions[l] >= 0.0 && fractions[l] <= 1.0))
            throw Error("The evicted fraction for layer " + std::to_string(l) + " is " + std::to_string(fractions[l]) +
                        ", outside [0, 1].");
    return std::unique_ptr<PrefixKvPolicy>(
        new PrefixKvPolicy(Source::Fractions, Budget::fromEvictedFraction(0.0), std::move(fractions)));
}

std::unique_ptr<KvPolicy> PrefixKvPolicy::clone() const { return std::unique_ptr<KvPolicy>(new PrefixKvPolicy(*this)); }

void PrefixKvPolicy::planLayers(const std::vector<std::vector<float>>& importance, int64_t n) {
    if (source_ == Source::Online) {
        search_ = searchPrefixBudgets(importance, budget_.evictedFraction(n));
        evict_ = search_->evict;
        fractions_.clear();
        for (int64_t e : evict_) fractions_.push_back(double(e) / double(n));
        return;
    }
    if (configured_.size() != importance.size())
        throw Error("The PrefixKV profile has " + std::to_string(configured_.size()) +
                    " per-layer fractions, but the model has " + std::to_string(importance.size()) + " layers.");
    fractions_ = configured_;
    evict_ = countsFromFractions(configured_, n);
}

void PrefixKvPolicy::afterPrefill(KvCache& cache, const PrefillContext& ctx) {
    const int64_t n = ctx.promptLength;
    if (!ctx.importance || int64_t(ctx.importance->size()) != cache.numLayers())
        throw Error("The " + name() + " policy needs the token importance of every layer after the prefill.");
    const auto& importance = *ctx.importance;
    checkImportance(importance, n);
    for (int l = 0; l < cache.numLayers(); ++l)
        if (cache.length(l) != n)
            throw Error("Layer " + std::to_string(l) + " of the KV cache holds " + std::to_string(cache.length(l)) +
                        " entries after a prefill of " + std::to_string(n) + " tokens.");

    planLayers(importance, n);
    promptLength_ = n;
    index_.clear();
    keptAfterPrefill_.clear();
    for (int l = 0; l < cache.numLayers(); ++l) {
        std::vector<int64_t> kept = selectKeptPositions(importance[size_t(l)], evict_[size_t(l)]);
        if (int64_t(kept.size()) < n) cache.gather(l, kept);
        index_.push_back(fixedEvictionIndex(int64_t(kept.size())));
        keptAfterPrefill_.push_back(std::move(kept));
    }
}

void PrefixKvPolicy::afterStep(KvCache& cache, const StepContext& ctx) {
    if (!prefilled()) throw Error("The " + name() + " policy was asked to maintain a cache it never saw prefilled.");
    // At most one entry per layer per step, even when the excess is larger (spec 6.7).
    for (int l = 0; l < cache.numLayers(); ++l)
        if (exceedsDecodeBudget(cache.length(l), ctx.tokensSeen, fractions_[size_t(l)])) cache.erase(l, index_[size_t(l)]);
}

}  // namespace pkv
