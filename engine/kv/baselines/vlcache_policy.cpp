#include "engine/kv/baselines/vlcache_policy.h"

#include <algorithm>

#include "engine/kv/baselines/selection.h"

namespace pkv {

int64_t postVisionFirstRow(const PrefillContext& ctx) {
    const int64_t n = ctx.promptLength, firstPosition = n - ctx.windowRows;
    if (ctx.imageEnd < 0 || ctx.imageEnd >= n) return 0;
    return std::max<int64_t>(0, ctx.imageEnd - firstPosition);
}

double postVisionSparsity(const std::vector<float>& window, const PrefillContext& ctx, int64_t firstRow) {
    const int64_t n = ctx.promptLength;
    int64_t below = 0, visible = 0;
    for (int64_t row = firstRow; row < ctx.windowRows; ++row) {
        const int64_t position = n - ctx.windowRows + row;
        const float* a = window.data() + row * n;
        const float limit = kVlSparsityThreshold * *std::max_element(a, a + position + 1);
        below += std::count_if(a, a + position + 1, [&](float x) { return x < limit; });
        visible += position + 1;
    }
    return double(below) / double(visible);
}

std::unique_ptr<KvPolicy> VlCachePolicy::clone() const { return std::make_unique<VlCachePolicy>(*this); }

WindowedPromptPolicy::Plan VlCachePolicy::plan(const PrefillContext& ctx, int numLayers, int64_t keptPerLayer) const {
    const int64_t n = ctx.promptLength, firstRow = postVisionFirstRow(ctx);
    Plan p;
    p.window = ctx.windowRows - firstRow;
    std::vector<double> density;
    for (int l = 0; l < numLayers; ++l) {
        const std::vector<float>& window = (*ctx.window)[size_t(l)];
        p.scores.push_back(windowColumnSums(window, n, firstRow, ctx.windowRows, n));
        density.push_back(1.0 - postVisionSparsity(window, ctx, firstRow));
    }
    p.keep = apportion(density, int64_t(numLayers) * keptPerLayer, std::min(p.window, keptPerLayer), n);
    return p;
}

}  // namespace pkv
