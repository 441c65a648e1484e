#include "cuda/cuda_probe.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace pkv::cuda {

DeviceProbe probeDevice() {
    DeviceProbe p;
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        p.reason = err == cudaSuccess ? "no CUDA device found"
                                      : std::string("no CUDA device found (") + cudaGetErrorString(err) + ")";
        return p;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        p.reason = "the CUDA device could not be queried";
        return p;
    }
    size_t freeBytes = 0, totalBytes = 0;
    if (cudaMemGetInfo(&freeBytes, &totalBytes) != cudaSuccess) {
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
