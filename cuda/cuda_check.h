#pragma once
// Every CUDA runtime and cuBLAS call is checked; a failure becomes a pkv::Error naming the call
// and where it was made, so a user's report points at the line. Host code only (plain C++17).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "engine/common/error.h"

namespace pkv::cuda {

[[noreturn]] void throwCudaError(cudaError_t error, const char* call, const char* file, int line);
[[noreturn]] void throwCublasError(cublasStatus_t status, const char* call, const char* file, int line);

}  // namespace pkv::cuda

#define PKV_CUDA_CHECK(call)                                                                  \
    do {                                                                                      \
        const cudaError_t pkvCudaError_ = (call);                                             \
        if (pkvCudaError_ != cudaSuccess)                                                     \
            ::pkv::cuda::throwCudaError(pkvCudaError_, #call, __FILE__, __LINE__);            \
    } while (0)

#define PKV_CUBLAS_CHECK(call)                                                                \
    do {                                                                                      \
        const cublasStatus_t pkvCublasStatus_ = (call);                                       \
        if (pkvCublasStatus_ != CUBLAS_STATUS_SUCCESS)                                        \
            ::pkv::cuda::throwCublasError(pkvCublasStatus_, #call, __FILE__, __LINE__);       \
    } while (0)

// After a kernel launch: reports a bad launch configuration at the launch site.
#define PKV_CUDA_CHECK_LAUNCH() PKV_CUDA_CHECK(cudaGetLastError())
