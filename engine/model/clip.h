#pragma once
// The CLIP ViT vision tower: patch embedding, class token, learned positions, pre-LN encoder
// layers with quick-GELU MLPs. Returns the hidden state of the layer the config selects.
#include <vector>

#include "engine/backend/backend.h"
#include "engine/io/model_folder.h"

namespace pkv {

class ClipVisionTower {
public:
    ClipVisionTower(const ModelFolder& folder, Backend& backend);
    // pixels: CHW [3, imageSize, imageSize], normalised. Returns [tokens, hidden] where tokens
    // = patches (CLS dropped, "default" strategy) or patches + 1 ("full").
    Tensor forward(const std::vector<float>& pixels);

private:
    struct Layer {
        Weight ln1Gamma, ln1Beta, q, qBias, k, kBias, v, vBias, o, oBias;
        Weight ln2Gamma, ln2Beta, fc1, fc1Bias, fc2, fc2Bias;
    };
    Tensor embed(const std::vector<float>& pixels);
    void encoderLayer(const Layer& L, Tensor& x);

    Backend& be_;
    ClipVisionConfig cfg_;
    int layersToRun_;
    bool keepCls_;
    Weight patchEmbedding_, classEmbedding_, positionEmbedding_, preLnGamma_, preLnBeta_;
    std::vector<Layer> layers_;
};

}  // namespace pkv
