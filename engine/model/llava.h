#pragma once
// A loaded LLaVA model: the folder it came from, the backend it runs on, the tokenizer, and the
// three networks. Loading is all-or-nothing; the object is immutable afterwards and may be shared
// by several sessions (a full-cache and a compressed one, say) on one thread at a time.
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/backend/profiling_backend.h"
#include "engine/backend/registry.h"
#include "engine/io/image.h"
#include "engine/io/model_folder.h"
#include "engine/model/clip.h"
#include "engine/model/llama.h"
#include "engine/model/projector.h"
#include "engine/tokenizer/tokenizer.h"

namespace pkv {

// How the key/value cache stores its entries.
enum class KvDtypeChoice {
    Auto,  // F16 when the language model's weights are 16-bit and the backend can, else F32
    F32,   // exact: the same numbers transformers computes in float32
    F16,   // half the memory and half the bytes a decode step reads from the cache
};
// "auto", "f32", "f16" (the CLI's and the settings' spelling); false for anything else.
bool parseKvDtypeChoice(const std::string& text, KvDtypeChoice& out);
// The dtype a cache gets for a language model whose linears are stored as `weights`, on `backend`.
// Throws pkv::Error when F16 is asked for and the backend cannot.
DType resolveKvDtype(KvDtypeChoice choice, DType weights, const Backend& backend);
// The same choice where only whether the backend keeps f16 caches is known (an estimate before
// loading): F32 where it cannot, instead of an error.
DType preferredKvDtype(KvDtypeChoice choice, DType weights, bool backendKeepsF16);
// The dtype of a model folder's decoder linears (what Auto looks at).
DType decoderWeightDtype(const ModelFolder& folder);

// Where the weights live while the model is loaded.
enum class WeightStorage {
    // Mapped from their files: loading is instant, the page cache is shared with other processes,
    // and a model larger than memory still runs (reading from disk as it goes).
    Mapped,
    // Read into the process's own memory first (seconds per GB from the page cache, longer from
    // disk). Where the page cache's pages read slower than a process's own, decode is faster: on
    // a KVM guest, file pages filled by the disk's DMA streamed 11-30% slower than the same bytes
    // copied by the CPU (a 7B decode GEMV 27.7 vs 30.8 GB/s; plain reads 21.8 vs 31.7 on another
    // day's page cache; bench/README.md). Needs the weights' size free
    // (ModelFolder::readWeightsIntoMemory). A backend that keeps its own copy (CUDA) leaves them
    // mapped, and LlavaModel::weightsNote() says so.
    Memory,
};
// "mapped", "memory" (the CLI's and the settings' spelling); false for anything else.
bool parseWeightStorage(const std::string& text, WeightStorage& out);

struct LoadOptions {
    DeviceChoice device = DeviceChoice::Auto;
    // Auto keeps the cache in the precision the weights were published in, as a PyTorch fp16
    // deployment (and the reference implementation) does.
    KvDtypeChoice kvDtype = KvDtypeChoice::Auto;
    WeightStorage weights = WeightStorage::Mapped;
    std::function<void(double fraction, const std::string& what)> progress;  // 0..1
    const std::atomic<bool>* cancel = nullptr;
    // Time every backend op (ProfilingBackend); read with LlavaModel::opProfiler().
    bool profileOps = false;
};

class LlavaModel {
public:
    // Throws pkv::Error (bad folder, weights, tokenizer) or pkv::Cancelled.
    static std::shared_ptr<LlavaModel> load(const std::string& dir, const LoadOptions& options = {});

    const LlavaConfig& config() const { return folder_->config(); }
    const ModelFolder& folder() const { return *folder_; }
    const Tokenizer& tokenizer() const { return *tokenizer_; }
    Backend& backend() { return *backend_; }
    // The op timer when loaded with profileOps, else null.
    ProfilingBackend* opProfiler() { return profiler_; }
    LlamaDecoder& decoder() { return *decoder_; }
    // The dtype the KV cache stores (resolved from LoadOptions::kvDtype).
    DType kvDtype() const { return decoder_->kvDtype(); }
    // Why the backend is what it is ("cpu: no CUDA device found", ...).
    const std::string& deviceReason() const { return deviceReason_; }
    // Why the weights are not where LoadOptions::weights asked ("" when they are).
    const std::string& weightsNote() const { return weightsNote_; }

    std::vector<float> preprocess(const RgbImage& image, ImageMode mode) const;
    // Vision tower + projector: [imageTokens, textHidden].
    Tensor encodeImage(const std::vector<float>& pixels);
    // Vision tower only: [imageTokens, visionHidden] (exposed for tests and inspection).
    Tensor visionFeatures(const std::vector<float>& pixels);

private:
    LlavaModel() = default;
    std::unique_ptr<ModelFolder> folder_;
    std::unique_ptr<Tokenizer> tokenizer_;
    std::unique_ptr<Backend> backend_;
    ProfilingBackend* profiler_ = nullptr;  // owned by backend_ when profiling
    std::string deviceReason_;
    std::string weightsNote_;
    std::unique_ptr<ClipVisionTower> vision_;
    std::unique_ptr<Projector> projector_;
    std::unique_ptr<LlamaDecoder> decoder_;
};

}  // namespace pkv
