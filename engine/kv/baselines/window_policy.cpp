#include "engine/kv/baselines/window_policy.h"

#include <algorithm>
#include <numeric>

#include "engine/common/error.h"
#include "engine/kv/baselines/selection.h"
#include "engine/kv/prefixkv_policy.h"

namespace pkv {

void checkWindow(const PrefillContext& ctx, int numLayers, const std::string& policy) {
    const int64_t n = ctx.promptLength;
    if (!ctx.window || int64_t(ctx.window->size()) != numLayers || ctx.windowRows < 1 || ctx.windowRows > n)
        throw Error("The " + policy + " policy needs the attention rows of the last prompt tokens of every layer after the prefill.");
    for (const auto& layer : *ctx.window)
        if (int64_t(layer.size()) != ctx.windowRows * n)
            throw Error("The " + policy + " policy got " + std::to_string(layer.size()) + " attention values for " +
                        std::to_string(ctx.windowRows) + " rows over " + std::to_string(n) + " tokens.");
}

void WindowedPromptPolicy::afterPrefill(KvCache& cache, const PrefillContext& ctx) {
    const int64_t n = ctx.promptLength;
    checkPrefilledCache(cache, n, name());
    checkWindow(ctx, cache.numLayers(), name());
    const double r = budget_.evictedFraction(n);
    const int64_t keptPerLayer = n - std::max<int64_t>(0, forgetCount(n, n, r));
    const Plan p = plan(ctx, cache.numLayers(), keptPerLayer);

    kept_.clear();
    index_.clear();
    fractions_.clear();
    for (int l = 0; l < cache.numLayers(); ++l) {
        const int64_t keep = std::clamp<int64_t>(p.keep[size_t(l)], 1, n);
        const int64_t tail = std::min(p.window, keep);
        std::vector<int64_t> candidates(size_t(n - tail));
        std::iota(candidates.begin(), candidates.end(), 0);
        std::vector<int64_t> kept = keepTopRanked(p.scores[size_t(l)], candidates, keep - tail);
        for (int64_t j = n - tail; j < n; ++j) kept.push_back(j);
        if (keep < n) cache.gather(l, kept);
        kept_.push_back(keep);
        fractions_.push_back(double(n - keep) / double(n));
        index_.push_back(fixedEvictionIndex(keep));
    }
}

void WindowedPromptPolicy::afterStep(KvCache& cache, const StepContext& ctx) {
    if (kept_.empty()) throw Error("The " + name() + " policy was asked to maintain a cache it never saw prefilled.");
    for (int l = 0; l < cache.numLayers(); ++l) {
        const int64_t length = cache.length(l);
        if (length > 1 && index_[size_t(l)] < length &&
            exceedsDecodeBudget(length, ctx.tokensSeen, fractions_[size_t(l)]))
            cache.erase(l, index_[size_t(l)]);
    }
}

}  // namespace pkv
