#pragma once
// PrefixKV (arXiv 2412.03409) as its reference code runs it (spec 2.2-2.6). After the prefill
// every layer l evicts its e_l least important prompt tokens (BOS and the last prompt token are
// never candidates), keeping the rest in sequence order. During decoding each layer keeps about
// (1 - f_l) of all tokens seen, by deleting at a fixed cache index P_l: what lies before P_l is
// permanent, what lies after it is a first-in first-out window.
//
// Per-layer fractions come either from this sample's own importance (online: the search of
// spec 2.2, the reference's --profile run) or from a profile file (offline: spec 2.3).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/kv/budget.h"
#include "engine/kv/budget_search.h"
#include "engine/kv/policy.h"

namespace pkv {

inline constexpr int64_t kEvictionDistance = -25;  // P_l = kept + distance (reference default)

// Spec 2.4: the original positions a layer keeps after evicting its `evict` least important
// candidates in [s, N - q), in increasing order with [0, s) and N - q included. Equal scores
// are evicted in position order, earliest first: a stable sort, where the reference's unstable
// argsort leaves the order unspecified. A prompt of at most s + q tokens is kept whole.
std::vector<int64_t> selectKeptPositions(const std::vector<float>& importance, int64_t evict);

// Spec 2.4 step 5: P_l = kept - 25, or kept / 2 when that is below 1.
int64_t fixedEvictionIndex(int64_t keptCount);

// Spec 2.5: whether a layer holding `length` entries after T tokens exceeds its share
// (1 - f) * T by at least one whole entry: trunc(length - T * (1 - f)) >= 1.
bool exceedsDecodeBudget(int64_t length, int64_t tokensSeen, double fraction);

class PrefixKvPolicy : public KvPolicy {
public:
    // Online: the budgets come from this sample's search (spec 2.2) at the given budget.
    static std::unique_ptr<PrefixKvPolicy> online(const Budget& budget);
    // Offline: per-layer evicted fractions f_l, usually read from a profile file.
    static std::unique_ptr<PrefixKvPolicy> fromFractions(std::vector<double> fractions);

    std::string name() const override { return "prefixkv"; }
    void afterPrefill(KvCache& cache, const PrefillContext& ctx) override;
    void afterStep(KvCache& cache, const StepContext& ctx) override;
    std::unique_ptr<KvPolicy> clone() const override;

    // Read-outs for the GUI and the evaluation, valid once afterPrefill has run.
    bool prefilled() const { return !keptAfterPrefill_.empty(); }
    int64_t promptLength() const { return promptLength_; }
    // f_l, what decoding keeps to. Online these are e_l / N: the line a profile run records.
    const std::vector<double>& fractions() const { return fractions_; }
    const std::vector<int64_t>& evictCounts() const { return evict_; }      // e_l
    const std::vector<int64_t>& evictionIndex() const { return index_; }    // P_l
    // The prompt positions each layer kept. What a layer holds later, decode erasures included,
    // is the cache's own record: KvCache::tokenIndices.
    const std::vector<std::vector<int64_t>>& keptAfterPrefill() const { return keptAfterPrefill_; }
    // Online only: the threshold p, iteration count, and counts before and after the rescale.
    const std::optional<BudgetSearchResult>& search() const { return search_; }

protected:
    enum class Source { Online, Fractions };
    PrefixKvPolicy(Source source, Budget budget, std::vector<double> fractions)
        : source_(source), budget_(budget), configured_(std::move(fractions)) {}

    // Fills evict_ and fractions_ for this prompt. Subclasses with another budget rule override
    // only this; selection and decode upkeep stay the same.
    virtual void planLayers(const std::vector<std::vector<float>>& importance, int64_t promptLength);

    Source source_;
    Budget budget_;
    std::vector<double> configured_;  // the profile's fractions (Source::Fractions)

    int64_t promptLength_ = 0;
    std::vector<double> fractions_;
    std::vector<int64_t> evict_;
    std::vector<int64_t> index_;
    std::vector<std::vector<int64_t>> keptAfterPrefill_;
    std::optional<BudgetSearchResult> search_;
};

}  // namespace pkv
