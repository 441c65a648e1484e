#pragma once
// The full cache: nothing is ever evicted. The baseline every compressed run is compared with.
#include "engine/kv/policy.h"

namespace pkv {

class FullPolicy : public KvPolicy {
public:
    std::string name() const override { return "full"; }
    void afterPrefill(KvCache&, const PrefillContext&) override {}
    void afterStep(KvCache&, const StepContext&) override {}
    std::unique_ptr<KvPolicy> clone() const override;
};

}  // namespace pkv
