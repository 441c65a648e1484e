#include "engine/kv/baselines/h2o_policy.h"

#include <algorithm>

#include "engine/common/error.h"
#include "engine/kv/baselines/selection.h"

namespace pkv {

namespace {

// The mean over layers of per-layer vectors, summed in layer order in float.
std::vector<float> layerMean(const std::vector<std::vector<float>>& perLayer, int64_t length) {
    std::vector<float> mean(size_t(length), 0.f);
    for (const auto& layer : perLayer)
        for (int64_t i = 0; i < length; ++i) mean[size_t(i)] += layer[size_t(i)];
    for (float& m : mean) m /= float(perLayer.size());
    return mean;
}

}  // namespace

std::unique_ptr<KvPolicy> H2oPolicy::clone() const { return std::make_unique<H2oPolicy>(*this); }

void H2oPolicy::afterPrefill(KvCache& cache, const PrefillContext& ctx) {
    const int64_t n = ctx.promptLength;
    checkPrefilledCache(cache, n, name());
    checkImportance(cache, ctx, name());
    r_ = budget_.evictedFraction(n);
    prefilled_ = true;
    scores_ = layerMean(*ctx.importance, n);

    const int64_t forget = forgetCount(n, n, r_);
    if (forget <= 1) {
        evictIfOver(cache, n);
        return;
    }
    const std::vector<float> candidates(scores_.begin(), scores_.end() - 1);
    std::vector<int64_t> kept = ecArgsortSplit(candidates, forget, faithful_).important;
    kept.push_back(n - 1);
    for (int l = 0; l < cache.numLayers(); ++l) cache.gather(l, kept);
    if (!faithful_) {
        std::vector<float> aligned;
        for (int64_t j : kept) aligned.push_back(scores_[size_t(j)]);
        scores_ = std::move(aligned);
    }
}

void H2oPolicy::afterStep(KvCache& cache, const StepContext& ctx) {
    if (!prefilled_) throw Error("The " + name() + " policy was asked to maintain a cache it never saw prefilled.");
    const int64_t length = cache.length(0);
    if (!ctx.attention || int64_t(ctx.attention->size()) != cache.numLayers())
        throw Error("The " + name() + " policy needs every layer's attention of each decode step.");
    for (const auto& layer : *ctx.attention)
        if (int64_t(layer.size()) != length)
            throw Error("The " + name() + " policy got step attention over " + std::to_string(layer.size()) +
                        " entries for a cache of " + std::to_string(length) + ".");
    if (int64_t(scores_.size()) < length) scores_.resize(size_t(length), 0.f);
    const std::vector<float> step = layerMean(*ctx.attention, length);
    for (int64_t i = 0; i < length; ++i) scores_[size_t(i)] += step[size_t(i)];
    evictIfOver(cache, ctx.tokensSeen);
}

void H2oPolicy::evictIfOver(KvCache& cache, int64_t tokensSeen) {
    const int64_t length = cache.length(0);
    if (forgetCount(length, tokensSeen, r_) < 1 || length - 1 <= kBaselineStartSize) return;
    const auto first = scores_.begin() + kBaselineStartSize;
    const int64_t victim = int64_t(std::min_element(first, scores_.begin() + (length - 1)) - scores_.begin());
    for (int l = 0; l < cache.numLayers(); ++l) cache.erase(l, victim);
    scores_.erase(scores_.begin() + victim);
}

}  // namespace pkv
