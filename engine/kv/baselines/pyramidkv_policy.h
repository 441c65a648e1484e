#pragma once
// PyramidKV (arXiv 2406.02069): SnapKV's window and pooled votes, but a pyramid of budgets,
// widest in the lowest layer, where attention is spread out, narrowing linearly to the top.
// With the average A = K - w of the entries kept before the window (K = N - forget, w the
// window) and beta = 20 as in PyramidKV's code: the top layer gets A / beta, the bottom layer
// 2A - A / beta, the layers between lie on the line, so the mean stays A. Whole entries come
// from apportion() (each layer within [0, N - w], total L * A), then every layer adds the window.
// A budget at or below the window (K <= w) or a single layer leaves no pyramid: all keep K.
// Decoding: see WindowedPromptPolicy.
#include "engine/kv/baselines/snapkv_policy.h"

namespace pkv {

inline constexpr double kPyramidBeta = 20.0;

class PyramidKvPolicy : public WindowedPromptPolicy {
public:
    explicit PyramidKvPolicy(const Budget& budget) : WindowedPromptPolicy(budget) {}
    std::string name() const override { return "pyramidkv"; }
    std::unique_ptr<KvPolicy> clone() const override;

protected:
    Plan plan(const PrefillContext& ctx, int numLayers, int64_t keptPerLayer) const override;
};

}  // namespace pkv
