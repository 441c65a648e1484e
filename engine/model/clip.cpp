#include "engine/model/clip.h"

#include <cmath>
#include <string>

#include "engine/common/error.h"

namespace pkv {
namespace {

Weight load(Backend& be, const ModelFolder& f, const std::string& name, std::vector<int64_t> shape) {
    const TensorView& t = f.require("vision_tower.vision_model." + name, shape);
    const int64_t rows = shape.size() == 1 ? 1 : shape[0];
    return be.weight(t, rows, t.numel() / rows);
}

}  // namespace

ClipVisionTower::ClipVisionTower(const ModelFolder& folder, Backend& backend)
    : be_(backend), cfg_(folder.config().vision) {
    const LlavaConfig& lc = folder.config();
    layersToRun_ = lc.visionLayersToRun();
    keepCls_ = lc.visionFeatureSelectStrategy == "full";
    const int64_t D = cfg_.hiddenSize, F = cfg_.intermediateSize, P = cfg_.patchSize, C = cfg_.numChannels;
    patchEmbedding_ = load(be_, folder, "embeddings.patch_embedding.weight", {D, C, P, P});
    classEmbedding_ = load(be_, folder, "embeddings.class_embedding", {D});
    positionEmbedding_ = load(be_, folder, "embeddings.position_embedding.weight", {cfg_.numPatches() + 1, D});
    preLnGamma_ = load(be_, folder, "pre_layrnorm.weight", {D});
    preLnBeta_ = load(be_, folder, "pre_layrnorm.bias", {D});
    for (int l = 0; l < layersToRun_; ++l) {
        const std::string p = "encoder.layers." + std::to_string(l) + ".";
        Layer L;
        L.ln1Gamma = load(be_, folder, p + "layer_norm1.weight", {D});
        L.ln1Beta = load(be_, folder, p + "layer_norm1.bias", {D});
        L.q = load(be_, folder, p + "self_attn.q_proj.weight", {D, D});
        L.qBias = load(be_, folder, p + "self_attn.q_proj.bias", {D});
        L.k = load(be_, folder, p + "self_attn.k_proj.weight", {D, D});
        L.kBias = load(be_, folder, p + "self_attn.k_proj.bias", {D});
        L.v = load(be_, folder, p + "self_attn.v_proj.weight", {D, D});
        L.vBias = load(be_, folder, p + "self_attn.v_proj.bias", {D});
        L.o = load(be_, folder, p + "self_attn.out_proj.weight", {D, D});
        L.oBias = load(be_, folder, p + "self_attn.out_proj.bias", {D});
        L.ln2Gamma = load(be_, folder, p + "layer_norm2.weight", {D});
        L.ln2Beta = load(be_, folder, p + "layer_norm2.bias", {D});
        L.fc1 = load(be_, folder, p + "mlp.fc1.weight", {F, D});
        L.fc1Bias = load(be_, folder, p + "mlp.fc1.bias", {F});
        L.fc2 = load(be_, folder, p + "mlp.fc2.weight", {D, F});
        L.fc2Bias = load(be_, folder, p + "mlp.fc2.bias", {D});
        layers_.push_back(L);
    }
}

// [CLS; patches] + positions, then the pre-encoder LayerNorm: [1 + patches, D].
Tensor ClipVisionTower::embed(const std::vector<float>& pixels) {
    const int S = cfg_.imageSize, P = cfg_.patchSize, C = cfg_.numChannels, side = cfg_.patchesPerSide();
    const int64_t patchLen = int64_t(C) * P * P, D = cfg_.hiddenSize;
    if (pixels.size() != size_t(C) * S * S)
        throw Error("The preprocessed image has " + std::to_string(pixels.size()) + " values; the vision tower needs " +
                    std::to_string(C * S * S) + ".");

    // The stride-P convolution is a linear map of each flattened P x P patch (channel-major,
    // the order of the conv weight [D, C, P, P]).
    std::vector<float> patches(size_t(side * side * patchLen));
    for (int py = 0; py < side; ++py)
        for (int px = 0; px < side; ++px) {
            float* dst = patches.data() + (int64_t(py) * side + px) * patchLen;
            for (int c = 0; c < C; ++c)
                for (int ky = 0; ky < P; ++ky)
                    for (int kx = 0; kx < P; ++kx)
                        *dst++ = pixels[(size_t(c) * S + py * P + ky) * S + px * P + kx];
        }
    Tensor patchIn = be_.upload(patches.data(), side * side, patchLen);
    Tensor patchOut = be_.allocOutput(side * side, D);
    be_.linear(patchIn, patchEmbedding_, nullptr, patchOut);

    Tensor x = be_.alloc(side * side + 1, D);
    Tensor cls = be_.alloc(1, D);
    be_.addWeightRows(cls, classEmbedding_, 0);
    be_.writeRows(cls, x, 0);
    be_.writeRows(patchOut, x, 1);
    be_.addWeightRows(x, positionEmbedding_, 0);

    Tensor y = be_.allocOutput(x.rows(), D);
    be_.layerNorm(x, preLnGamma_, preLnBeta_, cfg_.layerNormEps, y);
    return y;
}

// x = x + attn(ln1(x)); x = x + mlp(ln2(x))
void ClipVisionTower::encoderLayer(const Layer& L, Tensor& x) {
    const int64_t n = x.rows(), D = cfg_.hiddenSize;
    const AttentionShape shape{cfg_.numHeads, cfg_.numHeads, int(D / cfg_.numHeads),
                               1.f / std::sqrt(float(D / cfg_.numHeads))};

    Tensor h = be_.allocOutput(n, D);
    be_.layerNorm(x, L.ln1Gamma, L.ln1Beta, cfg_.layerNormEps, h);
    Tensor q = be_.allocOutput(n, D), k = be_.allocOutput(n, D), v = be_.allocOutput(n, D), attn = be_.allocOutput(n, D);
    be_.linearMany(h, {{&L.q, &L.qBias, &q}, {&L.k, &L.kBias, &k}, {&L.v, &L.vBias, &v}});
    be_.selfAttention(q, k, v, shape, attn);
    be_.linear(attn, L.o, &L.oBias, h);
    be_.add(x, h);

    be_.layerNorm(x, L.ln2Gamma, L.ln2Beta, cfg_.layerNormEps, h);
    Tensor mid = be_.allocOutput(n, cfg_.intermediateSize);
    be_.linear(h, L.fc1, &L.fc1Bias, mid);
    if (cfg_.hiddenAct == "gelu")
        be_.gelu(mid);
    else
        be_.quickGelu(mid);
    be_.linear(mid, L.fc2, &L.fc2Bias, h);
    be_.add(x, h);
}

Tensor ClipVisionTower::forward(const std::vector<float>& pixels) {
    Tensor x = embed(pixels);
    for (const Layer& L : layers_) encoderLayer(L, x);
    if (keepCls_) return x;
    Tensor patches = be_.allocOutput(x.rows() - 1, x.cols());
    be_.copyRows(x, 1, x.rows() - 1, patches);
    return patches;
}

}  // namespace pkv
