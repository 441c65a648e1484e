#include "cuda/cuda_check.h"

#include <string>

namespace pkv::cuda {

void throwCudaError(cudaError_t error, const char* call, const char* file, int line) {
    throw Error(std::string("The CUDA device reported an error: ") + cudaGetErrorString(error) + " (" + call +
                " at " + file + ":" + std::to_string(line) + ").");
}

void throwCublasError(cublasStatus_t status, const char* call, const char* file, int line) {
    throw Error(std::string("cuBLAS reported an error: ") + cublasGetStatusString(status) + " (" + call + " at " +
                file + ":" + std::to_string(line) + ").");
}

}  // namespace pkv::cuda
