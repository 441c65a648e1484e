#pragma once
// A llava-hf model folder: config.json, preprocessor_config.json, tokenizer.model (+
// added_tokens.json / tokenizer_config.json), and weights in one .safetensors file or shards
// listed by model.safetensors.index.json. Opening validates everything a load will need, so a
// wrong folder is reported before any weights are touched.
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "engine/io/model_config.h"
#include "engine/io/safetensors.h"

namespace pkv {

// Throws pkv::Error with a sentence when `weightBytes` read into memory would leave less than
// kMemoryMargin of `availableBytes` for the caches, activations and the rest of the machine.
void checkWeightsFitInMemory(size_t weightBytes, size_t availableBytes);
constexpr size_t kMemoryMargin = size_t(1) << 30;

class ModelFolder {
public:
    // Throws pkv::Error: folder missing, not a folder, config.json missing/invalid, only pickled
    // .bin weights (refused: unpickling can execute code), shard listed in the index missing,
    // tokenizer.model missing.
    static std::unique_ptr<ModelFolder> open(const std::string& dir);

    const std::string& dir() const { return dir_; }
    const LlavaConfig& config() const { return config_; }
    const PreprocessConfig& preprocess() const { return preprocess_; }  // defaults if the file is absent
    std::string tokenizerModelPath() const;  // <dir>/tokenizer.model
    size_t weightBytes() const;               // sum of safetensors file sizes

    // Reads every weight file into the process's memory (SafetensorsFile::readIntoMemory), calling
    // `progress` with the fraction read so far (it may throw to cancel). Throws pkv::Error before
    // reading anything when the weights would not fit in the memory available (availableBytes,
    // or the machine's MemAvailable when not given), with a margin for everything else a run
    // needs (checkWeightsFitInMemory).
    void readWeightsIntoMemory(const std::function<void(double fraction)>& progress = {},
                               std::optional<size_t> availableBytes = std::nullopt);
    bool weightsInMemory() const;  // every file read into memory

    // Looks a tensor up by its hub-layout name ("language_model.model.layers.0.self_attn.q_proj.weight",
    // "vision_tower.vision_model....", "multi_modal_projector.linear_1.weight",
    // "language_model.lm_head.weight"), falling back to the layout recent transformers saves
    // ("model.language_model.layers.0...", "model.vision_tower...", "model.multi_modal_projector...",
    // "lm_head.weight"). Returns nullptr when absent in both.
    const TensorView* find(const std::string& hubName) const;
    // As find(), but throws pkv::Error when the tensor is absent, its dtype is not F32/F16/BF16,
    // or its shape differs from `shape`.
    const TensorView& require(const std::string& hubName, const std::vector<int64_t>& shape) const;

private:
    ModelFolder() = default;
    std::string dir_;
    LlavaConfig config_;
    PreprocessConfig preprocess_;
    std::vector<std::unique_ptr<SafetensorsFile>> files_;
    std::map<std::string, const TensorView*> tensors_;  // every weight by its name in the files
};

}  // namespace pkv
