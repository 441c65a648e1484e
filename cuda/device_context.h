#pragma once
// What one CUDA backend owns on the device: a stream that every op of the backend (and its KV
// caches) is issued on, the cuBLAS handle bound to it, and stream-ordered allocation from the
// device's memory pool. Tensors, KV caches and scratch buffers hold a shared_ptr to the context,
// so the stream outlives every allocation freed on it, whatever order owners are destroyed in.
//
// One stream means no cross-stream hazards: an allocation freed with cudaFreeAsync is reused
// only by work ordered after everything already issued, so scratch buffers can be grown and
// reused without events. Downloads synchronise the stream where the host needs the data;
// uploads are staged through pinned memory (upload()), so no caller's host memory is read late.
#include <cstdint>
#include <memory>
#include <string>

#include "cuda/cuda_check.h"

namespace pkv::cuda {

// Page-locked host memory for staging copies, grown on demand.
class PinnedBuffer {
public:
    PinnedBuffer() = default;
    ~PinnedBuffer();
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;
    void* ensure(int64_t bytes);

private:
    void* data_ = nullptr;
    int64_t bytes_ = 0;
};

class DeviceContext {
public:
    DeviceContext();  // device 0, as probeDevice() describes
    ~DeviceContext();
    DeviceContext(const DeviceContext&) = delete;
    DeviceContext& operator=(const DeviceContext&) = delete;

    cudaStream_t stream() const { return stream_; }
    cublasHandle_t blas() const { return blas_; }
    const std::string& deviceName() const { return name_; }
    int multiprocessors() const { return multiprocessors_; }

    // Stream-ordered memory for activations, caches and scratch; `what` names the use in the
    // out-of-memory sentence. Never returns null for bytes > 0.
    void* allocate(int64_t bytes, const std::string& what);
    void release(void* p) noexcept;
    // Long-lived memory (weights): cudaMalloc, after returning cached pool memory when needed.
    void* allocatePersistent(int64_t bytes, const std::string& what);
    void releasePersistent(void* p) noexcept;

    // Copies host memory (pageable or not) to `device` in stream order and returns once `host`
    // may be reused. cudaMemcpyAsync from pageable memory only "might be synchronous" (CUDA's
    // API synchronisation notes), so a caller's short-lived vector could otherwise be read after
    // it is gone. The bytes go through two pinned halves in turn, each refilled only after the
    // event recorded behind its previous copy: no stall when uploads are small and far apart
    // (token ids per decode step), overlap of memcpy and DMA when they are large (weights).
    void upload(void* device, const void* host, int64_t bytes);

    void synchronize() const;

private:
    [[noreturn]] void throwOutOfMemory(int64_t bytes, const std::string& what) const;
    int device_ = 0;
    cudaStream_t stream_ = nullptr;
    cublasHandle_t blas_ = nullptr;
    cudaMemPool_t pool_ = nullptr;
    PinnedBuffer uploadStaging_;
    cudaEvent_t uploadDone_[2] = {nullptr, nullptr};
    int uploadHalf_ = 0;
    std::string name_;
    int multiprocessors_ = 1;
};

// A uniquely owned device allocation; resize() grows it (contents are not kept) and is how
// scratch buffers are reused across calls.
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    DeviceBuffer(std::shared_ptr<DeviceContext> ctx, int64_t bytes, std::string what);
    ~DeviceBuffer() { reset(); }
    DeviceBuffer(DeviceBuffer&& o) noexcept;
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    void* get() const { return data_; }
    template <class T>
    T* as() const { return static_cast<T*>(data_); }
    int64_t bytes() const { return bytes_; }
    // Makes room for at least `bytes` (contents are lost when it grows) and returns the memory.
    void* ensure(int64_t bytes);
    void reset() noexcept;

private:
    std::shared_ptr<DeviceContext> ctx_;
    void* data_ = nullptr;
    int64_t bytes_ = 0;
    std::string what_;
};

// Clears the runtime's last error after a call whose failure is deliberately not reported
// (destructors, release paths). Left set, it would surface at the next launch check
// (cudaGetLastError) and blame an unrelated kernel. Sticky errors (a lost device) stay anyway.
void forgetError() noexcept;

// "1.5 GiB" for sentences about memory.
std::string formatBytes(int64_t bytes);

}  // namespace pkv::cuda
