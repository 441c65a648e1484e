#pragma once
// Elastic Cache (ECCV 2024) as its reference code runs in the PrefixKV comparison (spec 3,
// EC ElasticCache). Every layer evicts the same count with its own importance (PrefixKV's,
// spec 2.1). After the prefill a layer keeps BOS, the important candidates of [1, N - 1) and
// the last prompt token; each thrown entry is merged into the nearest kept candidate (equal
// distance: the lower index), the anchor becoming the mean of its own and its merged entries'
// original keys, and likewise values. Decoding deletes at one fixed cache index for all layers,
// P = N - forget + distance (-25), whenever the cache is over its share (1 - r) * T.
//
// Variants (spec 3): faithful copies the reference's argsort rule and its thrown indices
// without the +1 start offset (they name raw cache positions, so BOS can be merged into an
// anchor while it is also kept, and a kept candidate can be merged into another); fixed uses
// true ranks and real positions. Both keep N - forget - 1 prompt entries.
//
// Where the reference breaks, this port picks (both variants):
//   - no kept candidate to merge into (tiny prompts; the reference fails on an empty argmin):
//     the anchors are BOS and the last prompt token;
//   - P < 1 (prompts under ~26 tokens; the reference's negative slice would duplicate the
//     cache): P = kept / 2, PrefixKV's guard (spec 2.4 step 5);
//   - no compression at the prefill (forget <= 1; the reference leaves P = 0 and deletes BOS):
//     P comes from the formula with forget = 0.
#include "engine/kv/budget.h"
#include "engine/kv/policy.h"

namespace pkv {

class ElasticPolicy : public KvPolicy {
public:
    ElasticPolicy(const Budget& budget, bool faithful) : budget_(budget), faithful_(faithful) {}
    std::string name() const override { return faithful_ ? "elastic (faithful)" : "elastic (fixed)"; }
    void afterPrefill(KvCache& cache, const PrefillContext& ctx) override;
    void afterStep(KvCache& cache, const StepContext& ctx) override;
    std::unique_ptr<KvPolicy> clone() const override;

    int64_t evictionIndex() const { return index_; }  // P, valid after the prefill

private:
    // Merges and gathers one layer; returns the number of entries kept.
    int64_t compressLayer(KvCache& cache, int layer, const std::vector<float>& importance, int64_t forget) const;
    void deleteIfOver(KvCache& cache, int64_t tokensSeen);

    Budget budget_;
    bool faithful_;
    double r_ = 0.0;
    bool prefilled_ = false;
    int64_t index_ = 0;
};

}  // namespace pkv
