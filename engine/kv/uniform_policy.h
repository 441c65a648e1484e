#pragma once
// The "uniform" ablation: PrefixKV's scoring, selection and decode upkeep, but every layer
// evicts the same fraction r. It isolates what the per-layer budgets of PrefixKV contribute.
//
// The spec has no ablation script, so the count follows Elastic Cache, the uniform method
// PrefixKV builds on: e = floor(r * N) at prefill (EC's int(r * N)), clipped to the
// candidates, and f_l = r during decoding (EC's budget controller uses its one r throughout).
#include "engine/kv/prefixkv_policy.h"

namespace pkv {

class UniformPolicy : public PrefixKvPolicy {
public:
    explicit UniformPolicy(const Budget& budget) : PrefixKvPolicy(Source::Online, budget, {}) {}
    std::string name() const override { return "uniform"; }
    std::unique_ptr<KvPolicy> clone() const override;

protected:
    void planLayers(const std::vector<std::vector<float>>& importance, int64_t promptLength) override;
};

}  // namespace pkv
