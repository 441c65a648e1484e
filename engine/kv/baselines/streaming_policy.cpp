#include "engine/kv/baselines/streaming_policy.h"

#include <algorithm>
#include <numeric>

#include "engine/common/error.h"
#include "engine/kv/baselines/selection.h"

namespace pkv {

std::unique_ptr<KvPolicy> StreamingPolicy::clone() const { return std::make_unique<StreamingPolicy>(*this); }

void StreamingPolicy::afterPrefill(KvCache& cache, const PrefillContext& ctx) {
    checkPrefilledCache(cache, ctx.promptLength, name());
    r_ = budget_.evictedFraction(ctx.promptLength);
    prefilled_ = true;
    dropOldest(cache, forgetCount(ctx.promptLength, ctx.promptLength, r_));
}

void StreamingPolicy::afterStep(KvCache& cache, const StepContext& ctx) {
    if (!prefilled_) throw Error("The " + name() + " policy was asked to maintain a cache it never saw prefilled.");
    dropOldest(cache, forgetCount(cache.length(0), ctx.tokensSeen, r_));
}

void StreamingPolicy::dropOldest(KvCache& cache, int64_t forget) const {
    if (forget < 1) return;
    for (int l = 0; l < cache.numLayers(); ++l) {
        const int64_t length = cache.length(l);
        const int64_t sink = std::min(kBaselineStartSize, length);
        // EC slices [0, s) + [s + forget, len): the sink always stays, so no layer empties.
        const int64_t resume = std::min(sink + forget, length);
        if (resume == sink) continue;
        std::vector<int64_t> kept(static_cast<size_t>(sink));
        std::iota(kept.begin(), kept.end(), 0);
        for (int64_t i = resume; i < length; ++i) kept.push_back(i);
        cache.gather(l, kept);
    }
}

}  // namespace pkv
