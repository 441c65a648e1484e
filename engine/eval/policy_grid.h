#pragma once
// The methods x budgets grid of an evaluation, from the lists a person types
// ("prefixkv,streaming" and "10,20,50%"), shared by the CLI and the GUI's batch dialog.
#include <string>
#include <vector>

#include "engine/kv/policy_factory.h"

namespace pkv {

// "10, 20,50%" -> {10, 20, 50}: kept percentages in (0, 100]. Throws pkv::Error naming the entry.
std::vector<double> parseKeepList(const std::string& text);
// "a, b,,c" -> {"a", "b", "c"}.
std::vector<std::string> splitCommaList(const std::string& text);

// One spec per (method, budget), methods outer. "full" appears once whatever the budgets; a
// non-empty profile applies to prefixkv only, which then appears once too (the file fixes the
// budget). Throws pkv::Error for an unknown method, naming the known ones.
std::vector<PolicySpec> policyGrid(const std::vector<std::string>& methods, const std::vector<double>& keepPercents,
                                   bool faithful = true, const std::string& prefixkvProfile = "");

}  // namespace pkv
