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
    std::unique_ptr<KvCache> newCache() const;  // entries stored as kvDtype()
    DType kvDtype() const { return kvDtype_; }
    void setKvDtype(DType dtype) { kvDtype_ = dtype; }
    Tensor embed(const std::vector<int>& ids);  // [n, hidden]

    // What forward() reports of each layer's attention: per layer, the importance of every cache
    // entry from these queries (spec 2.1) and the head-averaged probability rows of the last
    // windowRows queries (observation windows, post-vision attention).
    struct AttentionRecord {
        bool importance = false;
        int64_t windowRows = 0;
        std::vector<std::vector<float>> perLayerImportance;
        std::vector<std::vector<float>> perLayerWindow;
    };

    // Runs the n rows of x (token positions `positions`) through every layer, appending their keys
    // and values to `cache`, recording attention into `record` when given. Checks `cancel` between layers; a
    // cancelled forward leaves the cache partly appended, so callers discard it. Returns the
    // final-normed hidden states [n, hidden].
    // firstToken is the sequence index of row 0 (recorded in the cache; RoPE uses `positions`).
    Tensor forward(Tensor x, const std::vector<int64_t>& positions, int64_t firstToken, KvCache& cache,
                   AttentionRecord* record, const std::atomic<bool>* cancel);
    // lm_head on rows [first, first+count) of normed hidden states: [count, vocab].
    Tensor logits(const Tensor& normed, int64_t first, int64_t count);

private:
    struct Layer {
        Weight attnNorm, q, k, v, o, qBias, kBias, vBias, oBias, mlpNorm, gate, up, down;
    };
    void attentionBlock(const Layer& L, int layer, Tensor& x, const std::vector<int64_t>& positions,
                        int64_t firstToken, KvCache& cache, const AttentionProbe* probe);
    void mlpBlock(const Layer& L, Tensor& x);

    Backend& be_;
    LlamaConfig cfg_;
    Weight embedTokens_, finalNorm_, lmHead_;
    std::vector<Layer> layers_;
    DType kvDtype_ = DType::F32;
};

}  // namespace pkv
