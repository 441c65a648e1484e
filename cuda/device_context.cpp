#include "cuda/device_context.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

namespace pkv::cuda {
namespace {

constexpr int64_t kUploadChunkBytes = 4LL * 1024 * 1024;  // each of the two pinned halves

}  // namespace

void forgetError() noexcept { cudaGetLastError(); }

std::string formatBytes(int64_t bytes) {
    char text[64];
    const double b = double(bytes);
    if (b >= 1024.0 * 1024 * 1024)
        std::snprintf(text, sizeof text, "%.1f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024)
        std::snprintf(text, sizeof text, "%.1f MiB", b / (1024.0 * 1024));
    else
        std::snprintf(text, sizeof text, "%lld bytes", static_cast<long long>(bytes));
    return text;
}

DeviceContext::DeviceContext() {
    PKV_CUDA_CHECK(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    PKV_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    name_ = prop.name;
    multiprocessors_ = prop.multiProcessorCount;
    // The kernels are built for sm_80 and newer (bf16 conversions, 99 KiB of shared memory);
    // an older device would only fail at the first launch.
    if (prop.major < 8)
        throw Error("The CUDA device " + name_ + " has compute capability " + std::to_string(prop.major) + "." +
                    std::to_string(prop.minor) + "; the CUDA backend needs 8.0 (Ampere) or newer.");
    PKV_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    try {
        PKV_CUBLAS_CHECK(cublasCreate(&blas_));
        PKV_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
        // Stated rather than assumed: f32 GEMMs stay f32 (no TF32); 16-bit GEMMs still use
        // tensor cores, whose products of 16-bit inputs are exact in the f32 accumulator.
        PKV_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
        for (cudaEvent_t& e : uploadDone_) PKV_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
        // Freed blocks stay in the pool instead of going back to the driver at every
        // synchronisation: a forward pass allocates and frees the same sizes layer after layer.
        PKV_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool_, device_));
        uint64_t keep = std::numeric_limits<uint64_t>::max();
        PKV_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep));
    } catch (...) {
        for (cudaEvent_t e : uploadDone_)
            if (e) cudaEventDestroy(e);
        if (blas_) cublasDestroy(blas_);
        cudaStreamDestroy(stream_);
        forgetError();
        throw;
    }
}

DeviceContext::~DeviceContext() {
    // Errors cannot be reported from a destructor; a failed device already reported itself at
    // the call that failed.
    cudaStreamSynchronize(stream_);
    for (cudaEvent_t e : uploadDone_) cudaEventDestroy(e);
    cublasDestroy(blas_);
    cudaStreamDestroy(stream_);
    if (pool_) cudaMemPoolTrimTo(pool_, 0);
    forgetError();
}

void DeviceContext::throwOutOfMemory(int64_t bytes, const std::string& what) const {
    size_t freeBytes = 0, totalBytes = 0;
    if (cudaMemGetInfo(&freeBytes, &totalBytes) != cudaSuccess) forgetError();
    throw Error("The CUDA device " + name_ + " ran out of memory allocating " + formatBytes(bytes) + " for " + what +
                " (" + formatBytes(int64_t(freeBytes)) + " of " + formatBytes(int64_t(totalBytes)) + " free).");
}

void* DeviceContext::allocate(int64_t bytes, const std::string& what) {
    if (bytes <= 0) return nullptr;
    void* p = nullptr;
    const cudaError_t e = cudaMallocAsync(&p, size_t(bytes), stream_);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();  // not sticky: clear it so later checks do not see it
        throwOutOfMemory(bytes, what);
    }
    PKV_CUDA_CHECK(e);
    return p;
}

void DeviceContext::release(void* p) noexcept {
    if (p && cudaFreeAsync(p, stream_) != cudaSuccess) forgetError();
}

void* DeviceContext::allocatePersistent(int64_t bytes, const std::string& what) {
    if (bytes <= 0) return nullptr;
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size_t(bytes));
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        // The pool may be holding freed activations; give them back and try once more.
        PKV_CUDA_CHECK(cudaStreamSynchronize(stream_));
        PKV_CUDA_CHECK(cudaMemPoolTrimTo(pool_, 0));
        e = cudaMalloc(&p, size_t(bytes));
        if (e == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            throwOutOfMemory(bytes, what);
        }
    }
    PKV_CUDA_CHECK(e);
    return p;
}

void DeviceContext::releasePersistent(void* p) noexcept {
    if (p && cudaFree(p) != cudaSuccess) forgetError();
}

void DeviceContext::upload(void* device, const void* host, int64_t bytes) {
    if (bytes <= 0) return;
    char* staging = static_cast<char*>(uploadStaging_.ensure(2 * kUploadChunkBytes));
    for (int64_t done = 0; done < bytes; done += kUploadChunkBytes) {
        const int64_t n = std::min(kUploadChunkBytes, bytes - done);
        char* half = staging + uploadHalf_ * kUploadChunkBytes;
        PKV_CUDA_CHECK(cudaEventSynchronize(uploadDone_[uploadHalf_]));  // its last copy has left it
        std::memcpy(half, static_cast<const char*>(host) + done, size_t(n));
        PKV_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(device) + done, half, size_t(n), cudaMemcpyHostToDevice,
                                       stream_));
        PKV_CUDA_CHECK(cudaEventRecord(uploadDone_[uploadHalf_], stream_));
        uploadHalf_ ^= 1;
    }
}

void DeviceContext::synchronize() const { PKV_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

DeviceBuffer::DeviceBuffer(std::shared_ptr<DeviceContext> ctx, int64_t bytes, std::string what)
    : ctx_(std::move(ctx)), what_(std::move(what)) {
    ensure(bytes);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : ctx_(std::move(o.ctx_)), data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)),
      what_(std::move(o.what_)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
        reset();
        ctx_ = std::move(o.ctx_);
        data_ = std::exchange(o.data_, nullptr);
        bytes_ = std::exchange(o.bytes_, 0);
        what_ = std::move(o.what_);
    }
    return *this;
}

void* DeviceBuffer::ensure(int64_t bytes) {
    if (bytes <= bytes_) return data_;
    // Stream-ordered: the old block is reused only after the work already issued on it.
    ctx_->release(data_);
    data_ = nullptr;
    bytes_ = 0;
    data_ = ctx_->allocate(bytes, what_);
    bytes_ = bytes;
    return data_;
}

void DeviceBuffer::reset() noexcept {
    if (ctx_) ctx_->release(data_);
    data_ = nullptr;
    bytes_ = 0;
}

PinnedBuffer::~PinnedBuffer() {
    if (data_ && cudaFreeHost(data_) != cudaSuccess) forgetError();
}

void* PinnedBuffer::ensure(int64_t bytes) {
    if (bytes <= bytes_) return data_;
    if (data_) PKV_CUDA_CHECK(cudaFreeHost(data_));
    data_ = nullptr;
    bytes_ = 0;
    const cudaError_t e = cudaMallocHost(&data_, size_t(bytes));
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        throw Error("The host ran out of page-locked memory allocating " + formatBytes(bytes) +
                    " for copies between the host and the CUDA device.");
    }
    PKV_CUDA_CHECK(e);
    bytes_ = bytes;
    return data_;
}

}  // namespace pkv::cuda
