#pragma once
// One place that turns a user's choice (method, variant, budget, profile) into a KvPolicy, so the
// CLI, the evaluation runner and the GUI build policies the same way and name them the same way.
#include <memory>
#include <string>
#include <vector>

#include "engine/kv/budget.h"
#include "engine/kv/policy.h"

namespace pkv {

struct PolicySpec {
    std::string method = "full";  // see knownMethods()
    bool faithful = true;         // h2o / elastic: reproduce the reference's argsort bug (spec 3)
    Budget budget = Budget::keptPercent(100.0);
    std::string profilePath;      // prefixkv: a reference-format conf file; empty = online search
};

// full, prefixkv, uniform, streaming, h2o, elastic, vlcache, snapkv, pyramidkv
std::vector<std::string> knownMethods();
// Whether the method has faithful/fixed variants.
bool methodHasVariants(const std::string& method);
// Throws pkv::Error for an unknown method (listing the known ones) or an unreadable profile.
std::unique_ptr<KvPolicy> makePolicy(const PolicySpec& spec, int numLayers);
// "prefixkv (online), 20% kept" / "h2o (faithful), 20% kept" — for tables, logs and the UI.
std::string describePolicy(const PolicySpec& spec);

}  // namespace pkv
