#include "engine/model/memory_estimate.h"

namespace pkv {

MemoryEstimate estimateMemory(const ModelFolder& folder, DType kvDtype) {
    const LlavaConfig& c = folder.config();
    const LlamaConfig& t = c.text;
    MemoryEstimate e;
    e.weightBytes = double(folder.weightBytes());
    e.kvBytesPerToken = double(t.numLayers) * 2 * t.numKvHeads * t.headDim * double(dtypeSize(kvDtype));
    e.typicalPromptTokens = c.imageTokens() + 64;
    // The widest live tensors are the MLP's gate and up projections and one layer's attention
    // scratch; logits are computed for the last row only.
    e.prefillScratchBytes = double(e.typicalPromptTokens) * (3.0 * t.intermediateSize + 6.0 * t.hiddenSize) * 4;
    e.typicalRunBytes = e.weightBytes + e.kvBytesPerToken * double(e.typicalPromptTokens + 512) + e.prefillScratchBytes;
    e.fullContextBytes = e.weightBytes + e.kvBytesPerToken * double(t.maxPositions) + e.prefillScratchBytes;
    return e;
}

}  // namespace pkv
