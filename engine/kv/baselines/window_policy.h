#pragma once
// What SnapKV, PyramidKV and VL-Cache share: they compress only the prompt, each layer keeping
// a trailing window of prompt tokens (the queries they score with) plus its highest-scored
// earlier tokens, with scores taken from the attention rows of those queries
// (PrefillContext::window). They differ in the scores and in how many entries each layer keeps.
//
// None of them says how the cache is kept in check while decoding. So that they can be set
// against the paper's budget, a fraction of all tokens seen (spec 2.5), they decode exactly as
// PrefixKV does: a layer that kept K_l of N prompt tokens holds (1 - f_l) * T entries with
// f_l = (N - K_l) / N, deleting at its fixed index P_l = K_l - 25 (spec 2.4 step 5).
#include <vector>

#include "engine/kv/budget.h"
#include "engine/kv/policy.h"

namespace pkv {

class WindowedPromptPolicy : public KvPolicy {
public:
    void afterPrefill(KvCache& cache, const PrefillContext& ctx) override;
    void afterStep(KvCache& cache, const StepContext& ctx) override;

    // Valid after the prefill: entries each layer kept, and its decode fraction f_l.
    const std::vector<int64_t>& keptCounts() const { return kept_; }
    const std::vector<double>& fractions() const { return fractions_; }

protected:
    explicit WindowedPromptPolicy(const Budget& budget) : budget_(budget) {}

    struct Plan {
        std::vector<std::vector<float>> scores;  // [layer][N]; only positions before the window count
        std::vector<int64_t> keep;               // entries per layer, in [1, N]
        int64_t window = 0;                      // trailing prompt tokens kept first (up to keep[l])
    };
    // `keptPerLayer` is the uniform count the budget gives: N - forget (spec 3's controller).
    virtual Plan plan(const PrefillContext& ctx, int numLayers, int64_t keptPerLayer) const = 0;

private:
    Budget budget_;
    std::vector<int64_t> kept_, index_;
    std::vector<double> fractions_;
};

// Throws pkv::Error naming the policy unless the prefill recorded window rows for every layer.
void checkWindow(const PrefillContext& ctx, int numLayers, const std::string& policy);

}  // namespace pkv
