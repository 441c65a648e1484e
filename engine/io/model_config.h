#pragma once
// What config.json and preprocessor_config.json of a llava-hf model folder say, parsed into
// plain structs. Nothing here is hard-coded that a config states.
#include <array>
#include <optional>
#include <string>

namespace pkv {

struct LlamaConfig {
    int hiddenSize = 0;
    int intermediateSize = 0;
    int numLayers = 0;
    int numHeads = 0;
    int numKvHeads = 0;      // = numHeads when the config omits num_key_value_heads
    int headDim = 0;         // head_dim if stated, else hiddenSize / numHeads
    int vocabSize = 0;       // rows of the embedding table (llava-hf pads to 32064)
    int maxPositions = 0;    // max_position_embeddings: the context limit
    float rmsNormEps = 1e-6f;
    float ropeTheta = 10000.0f;
    bool tieWordEmbeddings = false;
    int bosTokenId = 1;
    int eosTokenId = 2;
    int padTokenId = -1;
};

struct ClipVisionConfig {
    int hiddenSize = 0;
    int intermediateSize = 0;
    int numLayers = 0;
    int numHeads = 0;
    int imageSize = 0;
    int patchSize = 0;
    int numChannels = 3;
    float layerNormEps = 1e-5f;
    std::string hiddenAct = "quick_gelu";
    int headDim = 0;         // head_dim if stated, else hiddenSize / numHeads

    int patchesPerSide() const { return imageSize / patchSize; }
    int numPatches() const { return patchesPerSide() * patchesPerSide(); }
};

struct LlavaConfig {
    LlamaConfig text;
    ClipVisionConfig vision;
    int imageTokenIndex = 32000;
    int visionFeatureLayer = -2;                     // index into hidden_states (negative from end)
    std::string visionFeatureSelectStrategy = "default";  // "default" drops CLS, "full" keeps it
    std::string projectorHiddenAct = "gelu";
    bool projectorBias = true;

    // Image embeddings spliced in place of one <image> marker.
    int imageTokens() const {
        return vision.numPatches() + (visionFeatureSelectStrategy == "full" ? 1 : 0);
    }
    // Encoder layers to run so that the selected hidden state is the last one computed.
    int visionLayersToRun() const {
        return visionFeatureLayer < 0 ? vision.numLayers + 1 + visionFeatureLayer : visionFeatureLayer;
    }
};

struct PreprocessConfig {
    int shortestEdge = 336;   // resize target of the shortest side
    // Set (non-zero) when "size" is {"height","width"}: resize to exactly this, ignoring the
    // aspect ratio, instead of scaling the shortest side to shortestEdge (= min of the two).
    int resizeHeight = 0;
    int resizeWidth = 0;
    int cropHeight = 336;
    int cropWidth = 336;
    bool doResize = true;
    bool doCenterCrop = true;
    bool doNormalize = true;
    bool doRescale = true;
    float rescaleFactor = 1.0f / 255.0f;
    int resample = 3;  // PIL bicubic
    std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
    std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
};

// Parse config.json text; `path` only names the file in error messages. Throws pkv::Error
// naming the missing or invalid field.
LlavaConfig parseLlavaConfig(const std::string& jsonText, const std::string& path);
// Parse preprocessor_config.json text.
PreprocessConfig parsePreprocessConfig(const std::string& jsonText, const std::string& path);

}  // namespace pkv
