#pragma once
// What running a model folder will cost in memory, from its config alone (no weights loaded):
// `prefixkv info`, the GUI's model dialog and `prefixkv bench` all read it from here.
#include <cstdint>

#include "engine/common/dtype.h"
#include "engine/io/model_folder.h"

namespace pkv {

struct MemoryEstimate {
    double weightBytes = 0;          // the safetensors files
    double kvBytesPerToken = 0;      // keys and values of every layer's KV heads, stored as the cache dtype
    int64_t typicalPromptTokens = 0; // the image plus 64 text tokens
    double prefillScratchBytes = 0;  // the widest live activations of that prompt's prefill
    double typicalRunBytes = 0;      // weights + the cache of that prompt and 512 new tokens + scratch
    double fullContextBytes = 0;     // weights + the cache at the full context + scratch
};

MemoryEstimate estimateMemory(const ModelFolder& folder, DType kvDtype);

}  // namespace pkv
