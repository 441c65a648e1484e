#pragma once
// Which backend a model runs on. The cpu backend is always there; an accelerator backend (CUDA)
// lives in its own library and registers a factory at program start, so the engine never links
// against it. The reason for the choice is kept, because a user who expected the GPU needs to know
// why it was not used.
#include <functional>
#include <memory>
#include <string>

#include "engine/backend/backend.h"

namespace pkv {

enum class DeviceChoice { Auto, Cpu, Cuda };

struct BackendChoice {
    std::unique_ptr<Backend> backend;
    std::string reason;  // "cpu: no CUDA device found", "cuda: NVIDIA H100 (80 GiB)", ...
};

// An accelerator factory returns a backend able to hold `weightBytes` of weights plus working
// memory, or no backend and a sentence saying why not.
using AcceleratorFactory = std::function<BackendChoice(int64_t weightBytes)>;
void registerCudaFactory(AcceleratorFactory factory);

// Auto: CUDA when registered and usable, else cpu with the reason. Cuda: CUDA or a pkv::Error
// with the reason. Cpu: cpu.
BackendChoice chooseBackend(DeviceChoice choice, int64_t weightBytes);

}  // namespace pkv
