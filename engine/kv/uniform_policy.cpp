#include "engine/kv/uniform_policy.h"

#include <algorithm>
#include <cmath>

namespace pkv {

std::unique_ptr<KvPolicy> UniformPolicy::clone() const { return std::make_unique<UniformPolicy>(*this); }

void UniformPolicy::planLayers(const std::vector<std::vector<float>>& importance, int64_t n) {
    const double r = budget_.evictedFraction(n);
    const int64_t e = std::min(int64_t(std::floor(r * double(n))), maxEvictCount(n));
    evict_.assign(importance.size(), e);
    fractions_.assign(importance.size(), r);
}

}  // namespace pkv
