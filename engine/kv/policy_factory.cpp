#include "engine/kv/policy_factory.h"

#include <algorithm>

#include "engine/common/error.h"
#include "engine/kv/full_policy.h"
#include "engine/kv/prefixkv_policy.h"
#include "engine/kv/profile.h"
#include "engine/kv/uniform_policy.h"

namespace pkv {

std::vector<std::string> knownMethods() { return {"full", "prefixkv", "uniform"}; }

bool methodHasVariants(const std::string& method) { return method == "h2o" || method == "elastic"; }

std::unique_ptr<KvPolicy> makePolicy(const PolicySpec& spec, int numLayers) {
    const std::string& m = spec.method;
    if (m == "full") return std::make_unique<FullPolicy>();
    if (m == "prefixkv") {
        if (spec.profilePath.empty()) return PrefixKvPolicy::online(spec.budget);
        return PrefixKvPolicy::fromFractions(readProfile(spec.profilePath, numLayers));
    }
    if (m == "uniform") return std::make_unique<UniformPolicy>(spec.budget);
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
