#include "bench/decoder_cost.h"

#include "engine/model/memory_estimate.h"

namespace pkvbench {

DecoderCost decoderCost(const pkv::ModelFolder& folder, pkv::DType kvDtype) {
    const pkv::LlamaConfig& t = folder.config().text;
    DecoderCost c;
    auto bytesOf = [&](const std::string& name, bool matmul) {
        const pkv::TensorView* v = folder.find("language_model." + name);
        if (!v) return;
        c.weightBytesPerToken += double(v->nbytes);
        if (matmul) c.layerMatmulParams += double(v->numel());
    };
    for (int l = 0; l < t.numLayers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        for (const char* norm : {"input_layernorm.weight", "post_attention_layernorm.weight"}) bytesOf(p + norm, false);
        for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
            bytesOf(p + "self_attn." + proj + ".weight", true);
            bytesOf(p + "self_attn." + proj + ".bias", false);
        }
        for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) bytesOf(p + "mlp." + proj + ".weight", true);
    }
    bytesOf("model.norm.weight", false);
    const pkv::TensorView* embed = folder.find("language_model.model.embed_tokens.weight");
    const pkv::TensorView* head = folder.find("language_model.lm_head.weight");
    c.weightBytesPerToken += double((head ? head : embed)->nbytes) + double(embed->nbytes) / double(t.vocabSize);
    c.dtype = embed->dtypeText;
    c.kvBytesPerCachedToken = pkv::estimateMemory(folder, kvDtype).kvBytesPerToken;
    return c;
}

}  // namespace pkvbench
