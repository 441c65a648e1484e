#pragma once
// VL-Cache (arXiv 2410.23317), from its abstract and reviews only (spec 8: no public code).
// Both of its ideas use the post-vision attention: the attention rows of the prompt tokens that
// follow the image (the instruction), taken at the prefill.
//   (a) Layer budgets from sparsity: a layer's sparsity is the share of post-vision attention
//       entries below 1% of their row's maximum; the budget L * K (K = N - forget, spec 3's
//       controller) is shared in proportion to each layer's density, 1 - sparsity.
//   (b) Modality-aware scores: a token's score is the sum of the post-vision attention it gets.
// A layer keeps the post-vision tokens themselves (like SnapKV's window), then its
// highest-scored earlier tokens.
//
// Choices the paper's summaries leave open, made here:
//   - post-vision rows: the window rows (PrefillContext::window) of tokens at positions >=
//     imageEnd; the session records all of them. Without an image, or with the image last,
//     all recorded window rows stand in for them;
//   - sparsity counts only entries a query can see (columns <= its own position), with the
//     threshold relative to each row's maximum (kVlSparsityThreshold);
//   - each layer keeps between min(p, K) and N entries (p = post-vision tokens), whole entries
//     and clipping handled by apportion(); all-sparse layers (density 0) share evenly;
//   - no score pooling and no sink protection: the scores decide alone;
//   - decoding: see WindowedPromptPolicy.
#include "engine/kv/baselines/window_policy.h"

namespace pkv {

inline constexpr float kVlSparsityThreshold = 0.01f;

// First window row that belongs to a token after the image (0 when there is none).
int64_t postVisionFirstRow(const PrefillContext& ctx);
// A layer's share of visible post-vision attention entries below the threshold times their
// row's maximum.
double postVisionSparsity(const std::vector<float>& window, const PrefillContext& ctx, int64_t firstRow);

class VlCachePolicy : public WindowedPromptPolicy {
public:
    explicit VlCachePolicy(const Budget& budget) : WindowedPromptPolicy(budget) {}
    std::string name() const override { return "vlcache"; }
    std::unique_ptr<KvPolicy> clone() const override;

protected:
    Plan plan(const PrefillContext& ctx, int numLayers, int64_t keptPerLayer) const override;
};

}  // namespace pkv
