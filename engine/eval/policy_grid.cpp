#include "engine/eval/policy_grid.h"

#include <algorithm>
#include <cstdlib>

#include "engine/common/error.h"

namespace pkv {

std::vector<std::string> splitCommaList(const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find(',', start);
        if (end == std::string::npos) end = text.size();
        std::string item = text.substr(start, end - start);
        item.erase(0, item.find_first_not_of(" \t"));
        item.erase(item.find_last_not_of(" \t") + 1);
        if (!item.empty()) out.push_back(item);
        start = end + 1;
    }
    return out;
}

std::vector<double> parseKeepList(const std::string& text) {
    std::vector<double> out;
    for (std::string item : splitCommaList(text)) {
        if (item.back() == '%') item.pop_back();
        char* end = nullptr;
        const double v = std::strtod(item.c_str(), &end);
        if (item.empty() || *end != '\0')
            throw Error("A KV budget must be a percentage kept such as 20 or 20%, not \"" + item + "\".");
        Budget::keptPercent(v);  // range check with its sentence
        out.push_back(v);
    }
    if (out.empty()) throw Error("Give at least one KV budget, e.g. --keep 20 or --keep 10,20,50.");
    return out;
}

std::vector<PolicySpec> policyGrid(const std::vector<std::string>& methods, const std::vector<double>& keepPercents,
                                   bool faithful, const std::string& prefixkvProfile) {
    const std::vector<std::string> known = knownMethods();
    std::vector<PolicySpec> out;
    for (const std::string& m : methods) {
        if (std::find(known.begin(), known.end(), m) == known.end()) {
            std::string list;
            for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
            throw Error("Unknown compression method \"" + m + "\"; known methods: " + list + ".");
        }
        PolicySpec spec;
        spec.method = m;
        spec.faithful = faithful;
        if (m == "full" || (m == "prefixkv" && !prefixkvProfile.empty())) {
            if (m == "prefixkv") spec.profilePath = prefixkvProfile;
            out.push_back(spec);
            continue;
        }
        for (double b : keepPercents) {
            spec.budget = Budget::keptPercent(b);
            out.push_back(spec);
        }
    }
    if (out.empty()) throw Error("Give at least one method to evaluate, e.g. --methods prefixkv,streaming.");
    return out;
}

}  // namespace pkv
