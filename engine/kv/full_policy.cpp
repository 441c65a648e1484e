#include "engine/kv/full_policy.h"

namespace pkv {

std::unique_ptr<KvPolicy> FullPolicy::clone() const { return std::make_unique<FullPolicy>(); }

}  // namespace pkv
