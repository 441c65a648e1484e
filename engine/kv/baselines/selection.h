#pragma once
// Pieces the baseline policies share: Elastic Cache's budget controller and its argsort rule,
// rank selection, and the observation-window scoring of SnapKV, PyramidKV and VL-Cache.
// Pure functions on plain vectors, so tests/fixtures/baselines_reference.py can repeat them.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/kv/policy.h"

namespace pkv {

// EC's --start-size 1: BOS is the attention sink that Local and Elastic never evict.
inline constexpr int64_t kBaselineStartSize = 1;

// EC's budget controller (spec 3): forget = int(length - T * (1 - r)), truncated toward zero,
// with the product rounded on its own as Python does (no fused multiply-add). May be <= 0.
int64_t forgetCount(int64_t length, int64_t tokensSeen, double r);

// The split of M candidates that EC makes with `forget`: `important` keeps M - forget - 1 of
// them, `thrown` the other forget + 1 (fewer when M is small), both as candidate indices in
// increasing order. The rule compares a value against forget, for each candidate index i:
//   faithful: argsort(score)[i]  (the reference: a token index, so identities are scrambled)
//   fixed:    rank of candidate i (its place in the ascending order: what was meant)
// The ascending order is stable (equal scores: lower index first), where torch's argsort
// leaves ties unspecified.
struct ArgsortSplit {
    std::vector<int64_t> important;
    std::vector<int64_t> thrown;
};
ArgsortSplit ecArgsortSplit(const std::vector<float>& candidateScores, int64_t forget, bool faithful);

// The `keep` highest-scored of `candidates` (equal scores: the earlier position wins), returned
// in increasing position order. `keep` is clipped to [0, candidates].
std::vector<int64_t> keepTopRanked(const std::vector<float>& scores, const std::vector<int64_t>& candidates,
                                   int64_t keep);

// Column sums over window rows [rowBegin, rowEnd) of one layer's [windowRows x n] block,
// for columns [0, columns).
std::vector<float> windowColumnSums(const std::vector<float>& window, int64_t n, int64_t rowBegin, int64_t rowEnd,
                                    int64_t columns);

// Same-length 1-D max pooling (stride 1, window centred, padding never wins): SnapKV's
// clustering of votes so that neighbours of a strong token survive with it.
std::vector<float> maxPoolSame(const std::vector<float>& x, int kernel);

// Splits `total` entries over layers in proportion to `weights`, each layer within [lo, hi]:
// layers whose share leaves the bounds are pinned there and the rest is shared again among the
// others; whole entries are then handed out by largest remainder (equal remainders: lower layer
// first). `total` is clipped to [L * lo, L * hi]. All-zero weights share evenly.
std::vector<int64_t> apportion(const std::vector<double>& weights, int64_t total, int64_t lo, int64_t hi);

// Throws pkv::Error naming the policy unless every layer holds `n` entries after the prefill.
void checkPrefilledCache(const KvCache& cache, int64_t n, const std::string& policy);
// Throws unless ctx carries one importance vector of the prompt's length per cache layer.
void checkImportance(const KvCache& cache, const PrefillContext& ctx, const std::string& policy);

}  // namespace pkv
