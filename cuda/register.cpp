#include "cuda/register.h"

#include <algorithm>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_probe.h"
#include "engine/backend/registry.h"

namespace pkv::cuda {
namespace {

// Working memory beyond the weights: activations, KV cache and cuBLAS workspace of a typical
// session. A guess on the safe side; a later out-of-memory still ends in a sentence, not a crash.
int64_t workingMargin(int64_t weightBytes) { return std::max<int64_t>(int64_t(1) << 30, weightBytes / 10); }

std::string withoutFinalStop(std::string s) {
    while (!s.empty() && (s.back() == '.' || s.back() == ' ')) s.pop_back();
    return s;
}

BackendChoice createBackend(int64_t weightBytes) {
    const DeviceProbe probe = probeDevice();
    if (!probe.usable) return {nullptr, probe.reason};
    const int64_t margin = workingMargin(weightBytes);
    if (probe.freeBytes < weightBytes + margin)
        return {nullptr, "the CUDA device " + probe.name + " has " + formatBytes(probe.freeBytes) +
                             " free but the weights need " + formatBytes(weightBytes) + " plus about " +
                             formatBytes(margin) + " of working memory"};
    try {
        auto backend = std::make_unique<CudaBackend>();
        return {std::move(backend), "cuda: " + probe.name + " (" + formatBytes(probe.totalBytes) + ")"};
    } catch (const Error& e) {
        return {nullptr, "the CUDA backend could not start: " + withoutFinalStop(e.what())};
    }
}

}  // namespace

void registerBackend() { registerCudaFactory(createBackend); }

}  // namespace pkv::cuda
