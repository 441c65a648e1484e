#include "cuda/cuda_probe.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

namespace pkv::cuda {

DeviceProbe probeDevice() {
    DeviceProbe p;
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        cudaGetLastError();  // a failed probe must not be reported later by an unrelated check
        p.reason = err == cudaSuccess ? "no CUDA device found"
                                      : std::string("no CUDA device found (") + cudaGetErrorString(err) + ")";
        return p;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        cudaGetLastError();
        p.reason = "the CUDA device could not be queried";
        return p;
    }
    // The kernels need sm_80 (DeviceContext refuses older devices too); saying so here lets
    // the engine fall back to the cpu with the reason instead of failing at backend creation.
    if (prop.major < 8) {
        p.reason = "the CUDA device " + std::string(prop.name) + " has compute capability " +
                   std::to_string(prop.major) + "." + std::to_string(prop.minor) + "; 8.0 (Ampere) or newer is needed";
        return p;
    }
    size_t freeBytes = 0, totalBytes = 0;
    if (cudaMemGetInfo(&freeBytes, &totalBytes) != cudaSuccess) {
        cudaGetLastError();
        p.reason = "the CUDA device's memory could not be queried";
        return p;
    }
    // A cuBLAS handle is what every GEMM will need; failing here is failing early.
    cublasHandle_t handle = nullptr;
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
        p.reason = "cuBLAS could not be initialised on " + std::string(prop.name);
        return p;
    }
    cublasDestroy(handle);
    p.usable = true;
    p.name = prop.name;
    p.totalBytes = int64_t(totalBytes);
    p.freeBytes = int64_t(freeBytes);
    p.reason = "CUDA device " + p.name + " found";
    return p;
}

}  // namespace pkv::cuda
