#pragma once
// Whether a usable CUDA device is present, and why not when it is not. Linking this proves the
// toolkit (runtime + cuBLAS) is complete even on machines that cannot run it.
#include <cstdint>
#include <string>

namespace pkv::cuda {

struct DeviceProbe {
    bool usable = false;
    std::string name;           // device 0's name when usable
    int64_t totalBytes = 0;
    int64_t freeBytes = 0;
    std::string reason;         // a sentence: why CUDA is or is not used
};

DeviceProbe probeDevice();

}  // namespace pkv::cuda
