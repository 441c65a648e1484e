#pragma once
// What one decode step of a model folder's language model reads and computes: the bytes the
// decode bound divides by, shared by `prefixkv bench` and bench/decode_blocks.
#include <string>

#include "engine/common/dtype.h"
#include "engine/io/model_folder.h"

namespace pkvbench {

struct DecoderCost {
    double weightBytesPerToken = 0;  // layers, final norm, lm_head and one embedding row
    double layerMatmulParams = 0;    // all layers' projection weights: 2 FLOPs each per token
    double kvBytesPerCachedToken = 0;
    std::string dtype;
};

DecoderCost decoderCost(const pkv::ModelFolder& folder, pkv::DType kvDtype);

}  // namespace pkvbench
