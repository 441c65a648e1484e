#include "engine/kv/policy_factory.h"

#include <algorithm>

#include "engine/common/error.h"
#include "engine/kv/baselines/elastic_policy.h"
#include "engine/kv/baselines/h2o_policy.h"
#include "engine/kv/baselines/pyramidkv_policy.h"
#include "engine/kv/baselines/snapkv_policy.h"
#include "engine/kv/baselines/streaming_policy.h"
#include "engine/kv/baselines/vlcache_policy.h"
#include "engine/kv/full_policy.h"
#include "engine/kv/prefixkv_policy.h"
#include "engine/kv/profile.h"
#include "engine/kv/uniform_policy.h"

namespace pkv {

std::vector<std::string> knownMethods() {
    return {"full", "prefixkv", "uniform", "streaming", "h2o", "elastic", "vlcache", "snapkv", "pyramidkv"};
}

bool methodHasVariants(const std::string& method) { return method == "h2o" || method == "elastic"; }

std::unique_ptr<KvPolicy> makePolicy(const PolicySpec& spec, int numLayers) {
    const std::string& m = spec.method;
    if (m == "full") return std::make_unique<FullPolicy>();
    if (m == "prefixkv") {
        if (spec.profilePath.empty()) return PrefixKvPolicy::online(spec.budget);
        return PrefixKvPolicy::fromFractions(readProfile(spec.profilePath, numLayers));
    }
    if (m == "uniform") return std::make_unique<UniformPolicy>(spec.budget);
    if (m == "streaming") return std::make_unique<StreamingPolicy>(spec.budget);
    if (m == "h2o") return std::make_unique<H2oPolicy>(spec.budget, spec.faithful);
    if (m == "elastic") return std::make_unique<ElasticPolicy>(spec.budget, spec.faithful);
    if (m == "vlcache") return std::make_unique<VlCachePolicy>(spec.budget);
    if (m == "snapkv") return std::make_unique<SnapKvPolicy>(spec.budget);
    if (m == "pyramidkv") return std::make_unique<PyramidKvPolicy>(spec.budget);
    std::string known;
    for (const std::string& k : knownMethods()) known += (known.empty() ? "" : ", ") + k;
    throw Error("Unknown compression method \"" + m + "\"; known methods: " + known + ".");
}

std::string describePolicy(const PolicySpec& spec) {
    std::string s = spec.method;
    if (spec.method == "prefixkv") s += spec.profilePath.empty() ? " (online)" : " (profile)";
    if (methodHasVariants(spec.method)) s += spec.faithful ? " (faithful)" : " (fixed)";
    if (spec.method != "full") s += ", " + spec.budget.describe();
    return s;
}

}  // namespace pkv
