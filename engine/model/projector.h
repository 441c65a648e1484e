#pragma once
// LLaVA's multi-modal projector: Linear, GELU, Linear, from vision width to text width.
#include "engine/backend/backend.h"
#include "engine/io/model_folder.h"

namespace pkv {

class Projector {
public:
    Projector(const ModelFolder& folder, Backend& backend);
    Tensor forward(const Tensor& features);  // [n, visionHidden] -> [n, textHidden]

private:
    Backend& be_;
    Weight w1_, b1_, w2_, b2_;
};

}  // namespace pkv
