#include "engine/io/model_folder.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/common/error.h"
#include "engine/common/system_memory.h"

namespace pkv {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string readTextFile(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw Error("The file " + p.string() + " cannot be read.");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

bool isFile(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

// Regular files directly in `dir` whose name satisfies `pick`, sorted so shards load in order.
template <class Pred>
std::vector<fs::path> filesIn(const fs::path& dir, Pred pick) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (!name.empty() && name[0] != '.' && isFile(entry.path()) && pick(name)) out.push_back(entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

bool endsWith(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Shard file name for each tensor, as model.safetensors.index.json's weight_map states it.
std::map<std::string, std::string> readWeightMap(const fs::path& indexPath) {
    json index;
    try {
        index = json::parse(readTextFile(indexPath));
    } catch (const json::parse_error& e) {
        throw Error("The shard index " + indexPath.string() + " is not valid JSON (error at byte " +
                    std::to_string(e.byte) + ").");
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
        throw Error("The shard index " + indexPath.string() + " has no \"weight_map\" object.");
    std::map<std::string, std::string> map;
    for (const auto& [tensor, shard] : index["weight_map"].items()) {
        // Shards sit beside the index; a name reaching elsewhere is not a shard of this folder.
        if (!shard.is_string() || shard.get<std::string>().find('/') != std::string::npos)
            throw Error("The shard index " + indexPath.string() + " names no plain shard file for tensor \"" +
                        tensor + "\".");
        map.emplace(tensor, shard.get<std::string>());
    }
    if (map.empty()) throw Error("The shard index " + indexPath.string() + " lists no tensors.");
    return map;
}

// The name recent transformers versions save under, for a hub-layout name; empty if none.
std::string newLayoutName(const std::string& hub) {
    static const std::pair<const char*, const char*> prefixes[] = {
        {"language_model.model.", "model.language_model."},
        {"language_model.lm_head.", "lm_head."},
        {"vision_tower.", "model.vision_tower."},
        {"multi_modal_projector.", "model.multi_modal_projector."},
    };
    for (const auto& [from, to] : prefixes)
        if (hub.rfind(from, 0) == 0) return to + hub.substr(std::strlen(from));
    return {};
}

std::string shapeText(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

}  // namespace

std::unique_ptr<ModelFolder> ModelFolder::open(const std::string& dirText) {
    const fs::path dir(dirText);
    std::error_code ec;
    if (!fs::exists(dir, ec)) throw Error("The model folder " + dirText + " does not exist.");
    if (!fs::is_directory(dir, ec)) throw Error(dirText + " is not a folder; choose the folder that holds config.json.");

    auto folder = std::unique_ptr<ModelFolder>(new ModelFolder);
    folder->dir_ = dirText;

    const fs::path configPath = dir / "config.json";
    if (!isFile(configPath)) throw Error(dirText + " is not a model folder: config.json is missing.");
    folder->config_ = parseLlavaConfig(readTextFile(configPath), configPath.string());

    const fs::path preprocessPath = dir / "preprocessor_config.json";
    if (isFile(preprocessPath))
        folder->preprocess_ = parsePreprocessConfig(readTextFile(preprocessPath), preprocessPath.string());

    if (!isFile(folder->tokenizerModelPath()))
        throw Error("The model folder " + dirText + " has no tokenizer.model, the SentencePiece tokenizer it needs.");

    const fs::path indexPath = dir / "model.safetensors.index.json";
    if (isFile(indexPath)) {
        const std::map<std::string, std::string> weightMap = readWeightMap(indexPath);
        std::map<std::string, const SafetensorsFile*> shards;
        for (const auto& [tensor, shard] : weightMap) {
            if (shards.count(shard)) continue;
            const fs::path shardPath = dir / shard;
            if (!isFile(shardPath))
                throw Error("The shard " + shard + " listed in " + indexPath.string() + " is missing from " + dirText +
                            "; the download may be incomplete.");
            folder->files_.push_back(SafetensorsFile::open(shardPath.string()));
            shards[shard] = folder->files_.back().get();
        }
        for (const auto& [tensor, shard] : weightMap) {
            const TensorView* t = shards[shard]->find(tensor);
            if (!t)
                throw Error("The shard index " + indexPath.string() + " places tensor \"" + tensor + "\" in " + shard +
                            ", but that file does not hold it.");
            folder->tensors_[tensor] = t;
        }
        return folder;
    }

    const std::vector<fs::path> safetensors =
        filesIn(dir, [](const std::string& n) { return endsWith(n, ".safetensors"); });
    if (safetensors.empty()) {
        const std::vector<fs::path> pickled = filesIn(dir, [](const std::string& n) {
            return endsWith(n, ".bin") || endsWith(n, ".pt") || endsWith(n, ".pth");
        });
        if (!pickled.empty())
            throw Error("The model folder " + dirText + " holds only pickled PyTorch weights (" +
                        pickled.front().filename().string() +
                        "), which are refused because loading a pickle can execute arbitrary code; convert them to "
                        "safetensors, e.g. in Python with LlavaForConditionalGeneration.from_pretrained(folder)"
                        ".save_pretrained(new_folder, safe_serialization=True).");
        throw Error("The model folder " + dirText + " holds no weights: no .safetensors file was found.");
    }
    for (const fs::path& p : safetensors) {
        folder->files_.push_back(SafetensorsFile::open(p.string()));
        for (const auto& [name, view] : folder->files_.back()->tensors()) {
            auto [it, inserted] = folder->tensors_.emplace(name, &view);
            if (!inserted)
                throw Error("The tensor \"" + name + "\" appears in both " + it->second->file + " and " + view.file +
                            ", and no model.safetensors.index.json says which one to use.");
        }
    }
    return folder;
}

std::string ModelFolder::tokenizerModelPath() const { return (fs::path(dir_) / "tokenizer.model").string(); }

void checkWeightsFitInMemory(size_t weightBytes, size_t availableBytes) {
    if (weightBytes + kMemoryMargin <= availableBytes) return;
    throw Error("Reading the weights into memory needs " + gigabytes(weightBytes) + " and " + gigabytes(availableBytes) +
                " are available (with " + gigabytes(kMemoryMargin) +
                " kept for the rest of the run): keep them mapped from their files instead, or free memory.");
}

void ModelFolder::readWeightsIntoMemory(const std::function<void(double)>& progress,
                                        std::optional<size_t> availableBytes) {
    const size_t total = weightBytes();
    if (!availableBytes) availableBytes = availableMemoryBytes();
    if (availableBytes) checkWeightsFitInMemory(total, *availableBytes);
    size_t before = 0;
    for (const auto& f : files_) {
        f->readIntoMemory([&](size_t done) {
            if (progress) progress(double(before + done) / double(total));
        });
        before += f->fileBytes();
    }
}

bool ModelFolder::weightsInMemory() const {
    return std::all_of(files_.begin(), files_.end(), [](const auto& f) { return f->inMemory(); });
}

size_t ModelFolder::weightBytes() const {
    size_t total = 0;
    for (const auto& f : files_) total += f->fileBytes();
    return total;
}

const TensorView* ModelFolder::find(const std::string& hubName) const {
    auto it = tensors_.find(hubName);
    if (it != tensors_.end()) return it->second;
    const std::string other = newLayoutName(hubName);
    if (other.empty()) return nullptr;
    it = tensors_.find(other);
    return it == tensors_.end() ? nullptr : it->second;
}

const TensorView& ModelFolder::require(const std::string& hubName, const std::vector<int64_t>& shape) const {
    const TensorView* t = find(hubName);
    if (!t) {
        const std::string other = newLayoutName(hubName);
        throw Error("The model in " + dir_ + " lacks the tensor \"" + hubName + "\"" +
                    (other.empty() ? "" : " (also looked for \"" + other + "\")") + "; the weights do not match config.json.");
    }
    if (!t->dtypeSupported)
        throw Error("The tensor \"" + t->name + "\" in " + t->file + " is stored as " + t->dtypeText +
                    ", but only F32, F16 and BF16 weights are supported.");
    if (t->shape != shape)
        throw Error("The tensor \"" + t->name + "\" in " + t->file + " has shape " + shapeText(t->shape) +
                    ", but config.json implies " + shapeText(shape) + ".");
    return *t;
}

}  // namespace pkv
