#include "engine/kv/baselines/snapkv_policy.h"

#include <algorithm>

#include "engine/kv/baselines/selection.h"

namespace pkv {

int64_t snapWindow(const PrefillContext& ctx) { return std::min(kSnapWindow, ctx.windowRows); }

std::vector<std::vector<float>> snapVotes(const PrefillContext& ctx, int numLayers, int64_t window) {
    const int64_t n = ctx.promptLength, prefix = n - window;
    std::vector<std::vector<float>> votes;
    for (int l = 0; l < numLayers; ++l) {
        std::vector<float> v = maxPoolSame(
            windowColumnSums((*ctx.window)[size_t(l)], n, ctx.windowRows - window, ctx.windowRows, prefix), kSnapPoolKernel);
        v.resize(size_t(n), 0.f);
        votes.push_back(std::move(v));
    }
    return votes;
}

std::unique_ptr<KvPolicy> SnapKvPolicy::clone() const { return std::make_unique<SnapKvPolicy>(*this); }

WindowedPromptPolicy::Plan SnapKvPolicy::plan(const PrefillContext& ctx, int numLayers, int64_t keptPerLayer) const {
    Plan p;
    p.window = snapWindow(ctx);
    p.scores = snapVotes(ctx, numLayers, p.window);
    p.keep.assign(size_t(numLayers), keptPerLayer);
    return p;
}

}  // namespace pkv
