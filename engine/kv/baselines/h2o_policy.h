#pragma once
// H2O ("heavy hitters") as Elastic Cache implements it (spec 3, EC H2OCache). One score vector
// serves all layers: attention summed over queries and averaged over heads and layers. After
// the prefill the cache keeps the important prompt tokens (the last one always, no sink), then
// every decode step adds its attention to the scores and, when the cache is over its share
// (1 - r) * T, evicts the lowest-scored entry in [1, len - 1): never BOS, never the newest.
//
// Two variants (spec 3 and 6.2):
//   faithful: the reference's argsort rule (ecArgsortSplit), and its score buffer, which the
//     prefill compression never re-indexes. Slot i first holds the prefill score of prompt
//     token i; decode step attention for cache entry i is added to slot i; an eviction at i
//     shifts slots i+1... down. The buffer is as long as the prompt or the cache, whichever is
//     longer (the reference's 2049 zeroed slots, without its fixed capacity), so the stale
//     prefill scores beyond the cache length keep sliding into use as entries are evicted.
//   fixed: true ranks, and the buffer is gathered with the cache, so slot i is entry i.
// Both keep the same number of entries; only which ones differ.
#include <vector>

#include "engine/kv/budget.h"
#include "engine/kv/policy.h"

namespace pkv {

class H2oPolicy : public KvPolicy {
public:
    H2oPolicy(const Budget& budget, bool faithful) : budget_(budget), faithful_(faithful) {}
    std::string name() const override { return faithful_ ? "h2o (faithful)" : "h2o (fixed)"; }
    void afterPrefill(KvCache& cache, const PrefillContext& ctx) override;
    void afterStep(KvCache& cache, const StepContext& ctx) override;
    bool wantsStepAttention() const override { return true; }
    std::unique_ptr<KvPolicy> clone() const override;

    // The accumulated scores, slot by slot (see the variants above).
    const std::vector<float>& scores() const { return scores_; }

private:
    // Evicts the lowest-scored entry in [1, len - 1) from every layer when forget >= 1; at most
    // one per step, as the reference (it asserts that decoding never asks for more).
    void evictIfOver(KvCache& cache, int64_t tokensSeen);

    Budget budget_;
    bool faithful_;
    double r_ = 0.0;
    bool prefilled_ = false;
    std::vector<float> scores_;
};

}  // namespace pkv
