#include "engine/backend/registry.h"

#include "engine/common/error.h"

namespace pkv {
namespace {

AcceleratorFactory& cudaFactory() {
    static AcceleratorFactory f;
    return f;
}

}  // namespace

void registerCudaFactory(AcceleratorFactory factory) { cudaFactory() = std::move(factory); }

BackendChoice chooseBackend(DeviceChoice choice, int64_t weightBytes) {
    if (choice == DeviceChoice::Cpu) return {createCpuBackend(), "cpu: chosen by the user"};
    std::string why = "this build has no CUDA backend";
    if (cudaFactory()) {
        BackendChoice c = cudaFactory()(weightBytes);
        if (c.backend) return c;
        why = c.reason;
    }
    if (choice == DeviceChoice::Cuda) throw Error("CUDA was requested but cannot be used: " + why + ".");
    return {createCpuBackend(), "cpu: " + why};
}

}  // namespace pkv
