#include "engine/kv/baselines/pyramidkv_policy.h"

#include "engine/kv/baselines/selection.h"

namespace pkv {

std::unique_ptr<KvPolicy> PyramidKvPolicy::clone() const { return std::make_unique<PyramidKvPolicy>(*this); }

WindowedPromptPolicy::Plan PyramidKvPolicy::plan(const PrefillContext& ctx, int numLayers, int64_t keptPerLayer) const {
    Plan p;
    p.window = snapWindow(ctx);
    p.scores = snapVotes(ctx, numLayers, p.window);
    p.keep.assign(size_t(numLayers), keptPerLayer);
    const int64_t average = keptPerLayer - p.window;
    if (average <= 0 || numLayers < 2) return p;

    const double top = double(average) / kPyramidBeta, bottom = 2.0 * double(average) - top;
    const double step = (bottom - top) / double(numLayers - 1);
    std::vector<double> shape;
    for (int l = 0; l < numLayers; ++l) shape.push_back(bottom - double(l) * step);
    const std::vector<int64_t> before = apportion(shape, int64_t(numLayers) * average, 0, ctx.promptLength - p.window);
    for (int l = 0; l < numLayers; ++l) p.keep[size_t(l)] = before[size_t(l)] + p.window;
    return p;
}

}  // namespace pkv
