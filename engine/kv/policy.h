#pragma once
// A KV-cache policy decides which entries each layer keeps. The session calls it once after the
// prefill (with every layer's token importance) and once after every decode step.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/backend/backend.h"

namespace pkv {

struct PrefillContext {
    int64_t promptLength = 0;                        // N: all prompt tokens incl. image tokens
    const std::vector<std::vector<float>>* importance = nullptr;  // [layer][N], spec 2.1
    int64_t imageBegin = -1, imageEnd = -1;          // image token span in the prompt, if any
};

class KvPolicy {
public:
    virtual ~KvPolicy() = default;
    virtual std::string name() const = 0;
    virtual void afterPrefill(KvCache& cache, const PrefillContext& ctx) = 0;
    // tokensSeen = T, every token processed so far (prompt + generated), spec 2.5.
    virtual void afterStep(KvCache& cache, int64_t tokensSeen) = 0;
    virtual std::unique_ptr<KvPolicy> clone() const = 0;
};

}  // namespace pkv
