#pragma once
// SnapKV (arXiv 2404.14469): the last w = 32 prompt tokens form an observation window; each
// earlier token gets the votes of the window's queries (the column sum of their attention rows),
// smoothed by 1-D max pooling with kernel 7 so that a strong token's neighbours survive with it
// (SnapKV's pooling option; its released configs use kernel 7). Each layer keeps the window and
// the K - w best-voted earlier tokens, with one K = N - forget for all layers (spec 3's
// controller). A budget below the window keeps the last K tokens.
//
// SnapKV selects per attention head. Here the votes are head-averaged attention and one
// selection serves all heads of a layer, because a cache entry holds every head of its token;
// this keeps the cache layout shared by every policy, at some cost to SnapKV's accuracy.
// Decoding: see WindowedPromptPolicy.
#include "engine/kv/baselines/window_policy.h"

namespace pkv {

inline constexpr int64_t kSnapWindow = 32;
inline constexpr int kSnapPoolKernel = 7;

// The observation window SnapKV uses for this prefill: min(32, recorded rows).
int64_t snapWindow(const PrefillContext& ctx);
// Pooled votes of the last `window` rows, per layer, over the prompt (zero inside the window).
std::vector<std::vector<float>> snapVotes(const PrefillContext& ctx, int numLayers, int64_t window);

class SnapKvPolicy : public WindowedPromptPolicy {
public:
    explicit SnapKvPolicy(const Budget& budget) : WindowedPromptPolicy(budget) {}
    std::string name() const override { return "snapkv"; }
    std::unique_ptr<KvPolicy> clone() const override;

protected:
    Plan plan(const PrefillContext& ctx, int numLayers, int64_t keptPerLayer) const override;
};

}  // namespace pkv
