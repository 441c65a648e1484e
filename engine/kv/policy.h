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
    // [layer][windowRows x N]: head-averaged attention rows of the last windowRows prompt tokens
    // (SnapKV's observation window; VL-Cache's post-vision queries). windowRows is
    // max(kPrefillWindowRows, tokens after the image), capped at N.
    const std::vector<std::vector<float>>* window = nullptr;
    int64_t windowRows = 0;
    int64_t imageBegin = -1, imageEnd = -1;          // image token span [begin, end) in the prompt, if any
};

constexpr int64_t kPrefillWindowRows = 32;

struct StepContext {
    int64_t tokensSeen = 0;  // T, every token processed so far (prompt + generated), spec 2.5
    // [layer][length]: this step's head-averaged attention over each layer's cache (the new token
    // included); only filled when the policy asks for it (wantsStepAttention).
    const std::vector<std::vector<float>>* attention = nullptr;
};

class KvPolicy {
public:
    virtual ~KvPolicy() = default;
    virtual std::string name() const = 0;
    virtual void afterPrefill(KvCache& cache, const PrefillContext& ctx) = 0;
    virtual void afterStep(KvCache& cache, const StepContext& ctx) = 0;
    // H2O-style policies score with every decode step's attention; computing it costs a little.
    virtual bool wantsStepAttention() const { return false; }
    virtual std::unique_ptr<KvPolicy> clone() const = 0;
};

}  // namespace pkv
