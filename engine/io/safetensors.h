#pragma once
// A .safetensors file, memory-mapped (or read into memory): an 8-byte little-endian header
// length, a JSON header naming each tensor's dtype, shape and byte range, then the raw data.
// Every way the file can be malformed is checked on open and reported as pkv::Error naming the
// file.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/common/dtype.h"

namespace pkv {

struct TensorView {
    std::string name;
    std::string dtypeText;        // as written in the header: "F32", "F16", "BF16", "I64", ...
    bool dtypeSupported = false;  // true for F32/F16/BF16, the element types the engine computes with
    DType dtype = DType::F32;     // meaningful only when dtypeSupported
    std::vector<int64_t> shape;
    const std::byte* data = nullptr;  // into the file's bytes; valid while the file object lives
    size_t nbytes = 0;
    std::string file;             // path of the file holding it, for error messages

    int64_t numel() const;
};

class SafetensorsFile {
public:
    // Maps the file and validates header and offsets. Throws pkv::Error with a sentence naming
    // the file when it is missing, empty, truncated, has a header length beyond the file, bad
    // JSON, an unknown dtype, a shape whose byte size disagrees with its range, or ranges that
    // leave the data section or overlap.
    static std::unique_ptr<SafetensorsFile> open(const std::string& path);
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::string& path() const { return path_; }
    const std::map<std::string, TensorView>& tensors() const { return tensors_; }
    const TensorView* find(const std::string& name) const;
    size_t fileBytes() const { return size_; }

    // Replaces the mapping of the file with a copy of it in the process's own memory (anonymous,
    // 2 MiB pages where the kernel has them), read in 64 MiB blocks by several threads at once;
    // every TensorView then points into the copy. `progress` is called on the calling thread with
    // the bytes read so far, several times a second, and may throw (to cancel), which stops the
    // readers and leaves the file mapped as before. Throws pkv::Error naming the file when
    // the memory cannot be had or the file cannot be read.
    void readIntoMemory(const std::function<void(size_t bytesRead)>& progress = {});
    bool inMemory() const { return inMemory_; }

private:
    SafetensorsFile() = default;
    std::string path_;
    void* map_ = nullptr;  // the file's bytes: its mapping, or the copy readIntoMemory made
    size_t size_ = 0;
    bool inMemory_ = false;
    std::map<std::string, TensorView> tensors_;
};

}  // namespace pkv
