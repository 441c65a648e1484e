#include "engine/model/llava.h"

#include "engine/common/error.h"

namespace pkv {

bool parseKvDtypeChoice(const std::string& text, KvDtypeChoice& out) {
    if (text == "auto") out = KvDtypeChoice::Auto;
    else if (text == "f32") out = KvDtypeChoice::F32;
    else if (text == "f16") out = KvDtypeChoice::F16;
    else return false;
    return true;
}

bool parseWeightStorage(const std::string& text, WeightStorage& out) {
    if (text == "mapped") out = WeightStorage::Mapped;
    else if (text == "memory") out = WeightStorage::Memory;
    else return false;
    return true;
}

DType preferredKvDtype(KvDtypeChoice choice, DType weights, bool backendKeepsF16) {
    if (choice == KvDtypeChoice::F32 || !backendKeepsF16) return DType::F32;
    if (choice == KvDtypeChoice::F16) return DType::F16;
    return weights == DType::F32 ? DType::F32 : DType::F16;  // Auto: the weights' precision
}

DType resolveKvDtype(KvDtypeChoice choice, DType weights, const Backend& backend) {
    const bool keepsF16 = backend.supportsKvDtype(DType::F16);
    if (choice == KvDtypeChoice::F16 && !keepsF16)
        throw Error("The " + backend.name() + " backend cannot keep the key/value cache in f16: choose f32 "
                    "(or auto) for the KV cache.");
    return preferredKvDtype(choice, weights, keepsF16);
}

DType decoderWeightDtype(const ModelFolder& folder) {
    const TensorView* q = folder.find("language_model.model.layers.0.self_attn.q_proj.weight");
    return q ? q->dtype : DType::F32;  // a folder without it fails at load with its own sentence
}

std::shared_ptr<LlavaModel> LlavaModel::load(const std::string& dir, const LoadOptions& options) {
    auto step = [&](double fraction, const std::string& what) {
        if (options.cancel && options.cancel->load()) throw Cancelled();
        if (options.progress) options.progress(fraction, what);
    };
    std::shared_ptr<LlavaModel> m(new LlavaModel());
    step(0.0, "Reading the model folder");
    m->folder_ = ModelFolder::open(dir);
    step(0.1, "Loading the tokenizer");
    m->tokenizer_ = Tokenizer::load(m->folder_->tokenizerModelPath(), dir);

    BackendChoice choice = chooseBackend(options.device, int64_t(m->folder_->weightBytes()));
    m->backend_ = std::move(choice.backend);
    // A backend that copies the weights (CUDA, to the device) reads the host bytes once, while the
    // model loads: a copy in RAM would only hold memory for the model's lifetime.
    if (options.weights == WeightStorage::Memory) {
        if (m->backend_->readsHostWeights())
            m->folder_->readWeightsIntoMemory([&](double f) { step(0.1 + 0.1 * f, "Reading the weights into memory"); });
        else
            m->weightsNote_ = "The weights stay mapped from their files: the " + m->backend_->name() +
                              " backend keeps its own copy of them, so a copy in memory would only take memory.";
    }
    if (options.profileOps) {
        auto profiler = std::make_unique<ProfilingBackend>(std::move(m->backend_));
        m->profiler_ = profiler.get();
        m->backend_ = std::move(profiler);
    }
    m->deviceReason_ = std::move(choice.reason);

    step(0.2, "Mapping the vision tower");
    m->vision_ = std::make_unique<ClipVisionTower>(*m->folder_, *m->backend_);
    step(0.4, "Mapping the projector");
    m->projector_ = std::make_unique<Projector>(*m->folder_, *m->backend_);
    step(0.5, "Mapping the language model");
    m->decoder_ = std::make_unique<LlamaDecoder>(*m->folder_, *m->backend_);
    m->decoder_->setKvDtype(resolveKvDtype(options.kvDtype, decoderWeightDtype(*m->folder_), *m->backend_));
    step(1.0, "Loaded");
    return m;
}

std::vector<float> LlavaModel::preprocess(const RgbImage& image, ImageMode mode) const {
    return preprocessImage(image, folder_->preprocess(), mode);
}

Tensor LlavaModel::visionFeatures(const std::vector<float>& pixels) { return vision_->forward(pixels); }

Tensor LlavaModel::encodeImage(const std::vector<float>& pixels) {
    return projector_->forward(vision_->forward(pixels));
}

}  // namespace pkv
