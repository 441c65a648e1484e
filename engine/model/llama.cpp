#include "engine/model/llama.h"

#include <cmath>
#include <string>

#include "engine/common/error.h"

namespace pkv {

LlamaDecoder::LlamaDecoder(const ModelFolder& folder, Backend& backend) : be_(backend), cfg_(folder.config().text) {
    const int64_t D = cfg_.hiddenSize, F = cfg_.intermediateSize, V = cfg_.vocabSize;
    const int64_t qDim = int64_t(cfg_.numHeads) * cfg_.headDim, kvDim = int64_t(cfg_.numKvHeads) * cfg_.headDim;
    auto load = [&](const std::string& name, std::vector<int64_t> shape) {
        const TensorView& t = folder.require("language_model." + name, shape);
        return be_.weight(t, shape.size() == 1 ? 1 : shape[0], shape.back());
    };
    // Attention biases are absent in LLaMA but present in some LLaMA-family checkpoints.
    auto optional = [&](const std::string& name, int64_t n) {
        return folder.find("language_model." + name) ? load(name, {n}) : Weight{};
    };
    embedTokens_ = load("model.embed_tokens.weight", {V, D});
    finalNorm_ = load("model.norm.weight", {D});
    lmHead_ = folder.find("language_model.lm_head.weight") || !cfg_.tieWordEmbeddings
                  ? load("lm_head.weight", {V, D})
                  : embedTokens_;
    for (int l = 0; l < cfg_.numLayers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        Layer L;
        L.attnNorm = load(p + "input_layernorm.weight", {D});
        L.q = load(p + "self_attn.q_proj.weight", {qDim, D});
        L.k = load(p + "self_attn.k_proj.weight", {kvDim, D});
        L.v = load(p + "self_attn.v_proj.weight", {kvDim, D});
        L.o = load(p + "self_attn.o_proj.weight", {D, qDim});
        L.qBias = optional(p + "self_attn.q_proj.bias", qDim);
        L.kBias = optional(p + "self_attn.k_proj.bias", kvDim);
        L.vBias = optional(p + "self_attn.v_proj.bias", kvDim);
        L.oBias = optional(p + "self_attn.o_proj.bias", D);
        L.mlpNorm = load(p + "post_attention_layernorm.weight", {D});
        L.gate = load(p + "mlp.gate_proj.weight", {F, D});
        L.up = load(p + "mlp.up_proj.weight", {F, D});
        L.down = load(p + "mlp.down_proj.weight", {D, F});
        layers_.push_back(L);
    }
}

std::unique_ptr<KvCache> LlamaDecoder::newCache() const {
    return be_.createKvCache(cfg_.numLayers, cfg_.numKvHeads * cfg_.headDim, kvDtype_);
}

Tensor LlamaDecoder::embed(const std::vector<int>& ids) {
    Tensor x = be_.allocOutput(int64_t(ids.size()), cfg_.hiddenSize);
    be_.embedRows(embedTokens_, ids, x);
    return x;
}

// x = x + o(attention(rope(q), rope(k), v)) on rmsnorm(x); keys/values go to the cache first so
// the new queries attend to the whole (possibly compressed) past plus themselves.
void LlamaDecoder::attentionBlock(const Layer& L, int layer, Tensor& x, const std::vector<int64_t>& positions,
                                  int64_t firstToken, KvCache& cache, const AttentionProbe* probe) {
    const int64_t n = x.rows();
    const int64_t qDim = int64_t(cfg_.numHeads) * cfg_.headDim, kvDim = int64_t(cfg_.numKvHeads) * cfg_.headDim;
    Tensor h = be_.allocOutput(n, cfg_.hiddenSize);
    be_.rmsNorm(x, L.attnNorm, cfg_.rmsNormEps, h);

    Tensor q = be_.allocOutput(n, qDim), k = be_.allocOutput(n, kvDim), v = be_.allocOutput(n, kvDim);
    be_.linearMany(h, {{&L.q, &L.qBias, &q}, {&L.k, &L.kBias, &k}, {&L.v, &L.vBias, &v}});
    be_.rope(q, cfg_.numHeads, cfg_.headDim, positions, cfg_.ropeTheta);
    be_.rope(k, cfg_.numKvHeads, cfg_.headDim, positions, cfg_.ropeTheta);
    cache.append(layer, k, v, firstToken);

    const AttentionShape shape{cfg_.numHeads, cfg_.numKvHeads, cfg_.headDim, 1.f / std::sqrt(float(cfg_.headDim))};
    Tensor attn = be_.allocOutput(n, qDim);
    be_.cachedAttention(q, cache, layer, shape, attn, probe);
    be_.linear(attn, L.o, &L.oBias, h);
    be_.add(x, h);
}

// x = x + down(silu(gate(h)) * up(h)), h = rmsnorm(x)
void LlamaDecoder::mlpBlock(const Layer& L, Tensor& x) {
    const int64_t n = x.rows();
    Tensor h = be_.allocOutput(n, cfg_.hiddenSize);
    be_.rmsNorm(x, L.mlpNorm, cfg_.rmsNormEps, h);
    Tensor gate = be_.allocOutput(n, cfg_.intermediateSize), up = be_.allocOutput(n, cfg_.intermediateSize);
    be_.linearMany(h, {{&L.gate, nullptr, &gate}, {&L.up, nullptr, &up}});
    be_.siluMul(gate, up, gate);
    be_.linear(gate, L.down, nullptr, h);
    be_.add(x, h);
}

Tensor LlamaDecoder::forward(Tensor x, const std::vector<int64_t>& positions, int64_t firstToken, KvCache& cache,
                             AttentionRecord* record, const std::atomic<bool>* cancel) {
    if (record) {
        record->perLayerImportance.assign(record->importance ? size_t(cfg_.numLayers) : 0, {});
        record->perLayerWindow.assign(record->windowRows > 0 ? size_t(cfg_.numLayers) : 0, {});
    }
    for (int l = 0; l < cfg_.numLayers; ++l) {
        if (cancel && cancel->load(std::memory_order_relaxed)) throw Cancelled();
        AttentionProbe probe;
        if (record && record->importance) probe.importance = &record->perLayerImportance[size_t(l)];
        if (record && record->windowRows > 0) {
            probe.window = &record->perLayerWindow[size_t(l)];
            probe.windowRows = record->windowRows;
        }
        attentionBlock(layers_[size_t(l)], l, x, positions, firstToken, cache, record ? &probe : nullptr);
        mlpBlock(layers_[size_t(l)], x);
    }
    Tensor normed = be_.allocOutput(x.rows(), cfg_.hiddenSize);
    be_.rmsNorm(x, finalNorm_, cfg_.rmsNormEps, normed);
    return normed;
}

Tensor LlamaDecoder::logits(const Tensor& normed, int64_t first, int64_t count) {
    Tensor rows = be_.allocOutput(count, cfg_.hiddenSize);
    be_.copyRows(normed, first, count, rows);
    Tensor out = be_.allocOutput(count, cfg_.vocabSize);
    be_.linear(rows, lmHead_, nullptr, out);
    return out;
}

}  // namespace pkv
