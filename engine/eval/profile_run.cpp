#include "engine/eval/profile_run.h"

#include <algorithm>

#include "engine/common/error.h"
#include "engine/kv/prefixkv_policy.h"

namespace pkv {

std::vector<std::vector<double>> profileSamples(std::shared_ptr<LlavaModel> model, const Dataset& data,
                                                const Budget& budget, int maxSamples, ImageMode mode,
                                                const std::function<void(int, int)>& onSample,
                                                const std::atomic<bool>* cancel) {
    const int n = maxSamples > 0 ? std::min<int>(maxSamples, int(data.samples.size())) : int(data.samples.size());
    std::vector<std::vector<double>> rows;
    for (int i = 0; i < n; ++i) {
        if (cancel && cancel->load()) throw Cancelled();
        if (onSample) onSample(i, n);
        Session s(model);
        std::unique_ptr<PrefixKvPolicy> online = PrefixKvPolicy::online(budget);
        const PrefixKvPolicy* policy = online.get();
        s.setPolicy(std::move(online));
        const std::vector<float> pixels = model->preprocess(decodeImageFile(data.imagePath(size_t(i))), mode);
        s.prefillPixels(data.samples[size_t(i)].prompt, &pixels);
        rows.push_back(policy->fractions());
    }
    return rows;
}

}  // namespace pkv
