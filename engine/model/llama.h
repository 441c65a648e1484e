#pragma once
// The LLaMA decoder: RMSNorm, rotary positions, grouped-query attention over the per-layer KV
// cache, SwiGLU MLP, final norm and lm_head.
#include <atomic>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/io/model_folder.h"

namespace pkv {

class LlamaDecoder {
public:
    LlamaDecoder(const ModelFolder& folder, Backend& backend);

    const LlamaConfig& config() const { return cfg_; }
    std::unique_ptr<KvCache> newCache() const;
    Tensor embed(const std::vector<int>& ids);  // [n, hidden]

    // Runs the n rows of x (token positions `positions`) through every layer, appending their keys
    // and values to `cache`. When `importance` is given it receives, per layer, the importance of
    // every cache entry (spec 2.1) from these n queries. Checks `cancel` between layers; a
    // cancelled forward leaves the cache partly appended, so callers discard it. Returns the
    // final-normed hidden states [n, hidden].
    // firstToken is the sequence index of row 0 (recorded in the cache; RoPE uses `positions`).
    Tensor forward(Tensor x, const std::vector<int64_t>& positions, int64_t firstToken, KvCache& cache,
                   std::vector<std::vector<float>>* importance, const std::atomic<bool>* cancel);
    // lm_head on rows [first, first+count) of normed hidden states: [count, vocab].
    Tensor logits(const Tensor& normed, int64_t first, int64_t count);

private:
    struct Layer {
        Weight attnNorm, q, k, v, o, qBias, kBias, vBias, oBias, mlpNorm, gate, up, down;
    };
    void attentionBlock(const Layer& L, int layer, Tensor& x, const std::vector<int64_t>& positions,
                        int64_t firstToken, KvCache& cache, std::vector<float>* importance);
    void mlpBlock(const Layer& L, Tensor& x);

    Backend& be_;
    LlamaConfig cfg_;
    Weight embedTokens_, finalNorm_, lmHead_;
    std::vector<Layer> layers_;
};

}  // namespace pkv
