#pragma once
// "Local" in the PrefixKV tables: StreamingLLM as Elastic Cache implements it (spec 3,
// EC LocalCache). Attention is never looked at. Whenever the cache holds `forget` >= 1 entries
// more than its share (1 - r) * T, the oldest entries after the sink are dropped, so the cache
// is BOS followed by a sliding window of the most recent tokens: at the prefill it keeps
// N - forget entries, and during decoding it drops one entry whenever the share falls behind.
#include "engine/kv/budget.h"
#include "engine/kv/policy.h"

namespace pkv {

class StreamingPolicy : public KvPolicy {
public:
    explicit StreamingPolicy(const Budget& budget) : budget_(budget) {}
    std::string name() const override { return "streaming"; }
    void afterPrefill(KvCache& cache, const PrefillContext& ctx) override;
    void afterStep(KvCache& cache, const StepContext& ctx) override;
    std::unique_ptr<KvPolicy> clone() const override;

private:
    // Drops the `forget` entries after the sink, in every layer; at least one entry stays.
    void dropOldest(KvCache& cache, int64_t forget) const;

    Budget budget_;
    double r_ = 0.0;  // fixed at the prefill: an absolute budget becomes the fraction of that prompt
    bool prefilled_ = false;
};

}  // namespace pkv
