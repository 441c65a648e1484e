#include "cuda/cuda_kv_cache.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cuda/kv_ops.cuh"

namespace pkv::cuda {
namespace {

// Growth as the cpu cache grows (engine/backend/cpu/cpu_kv_cache.cpp): a quarter more, at least
// 64 entries. Doubling would leave up to half of a layer allocated and unused, and device
// memory is the scarcer kind; decode still reallocates only every 64+ steps.
constexpr int64_t kMinGrowth = 64;

}  // namespace

CudaKvCache::CudaKvCache(std::shared_ptr<DeviceContext> ctx, int numLayers, int entryWidth)
    : KvCache(numLayers), ctx_(std::move(ctx)), layers_(size_t(numLayers)), width_(entryWidth) {}

CudaKvCache::CudaKvCache(const CudaKvCache& other)
    : KvCache(other), ctx_(other.ctx_), layers_(other.layers_.size()), width_(other.width_) {
    for (size_t l = 0; l < layers_.size(); ++l) {
        const Layer& src = other.layers_[l];
        Layer& dst = layers_[l];
        dst.capacity = src.capacity;
        dst.length = src.length;
        dst.k = buffer(src.capacity);
        dst.v = buffer(src.capacity);
        const size_t bytes = size_t(src.length * rowBytes());
        if (bytes == 0) continue;
        PKV_CUDA_CHECK(cudaMemcpyAsync(dst.k.get(), src.k.get(), bytes, cudaMemcpyDeviceToDevice, ctx_->stream()));
        PKV_CUDA_CHECK(cudaMemcpyAsync(dst.v.get(), src.v.get(), bytes, cudaMemcpyDeviceToDevice, ctx_->stream()));
    }
}

CudaKvCache::Layer& CudaKvCache::at(int layer) {
    if (layer < 0 || layer >= numLayers()) throw std::out_of_range("KV cache layer " + std::to_string(layer));
    return layers_[size_t(layer)];
}

const CudaKvCache::Layer& CudaKvCache::at(int layer) const {
    if (layer < 0 || layer >= numLayers()) throw std::out_of_range("KV cache layer " + std::to_string(layer));
    return layers_[size_t(layer)];
}

int64_t CudaKvCache::capacity(int layer) const { return at(layer).capacity; }

DeviceBuffer CudaKvCache::buffer(int64_t entries) const {
    return DeviceBuffer(ctx_, entries * rowBytes(), "the key/value cache");
}

void CudaKvCache::reallocate(Layer& L, int64_t entries) {
    DeviceBuffer k = buffer(entries), v = buffer(entries);
    const size_t bytes = size_t(L.length * rowBytes());
    if (bytes > 0) {
        PKV_CUDA_CHECK(cudaMemcpyAsync(k.get(), L.k.get(), bytes, cudaMemcpyDeviceToDevice, ctx_->stream()));
        PKV_CUDA_CHECK(cudaMemcpyAsync(v.get(), L.v.get(), bytes, cudaMemcpyDeviceToDevice, ctx_->stream()));
    }
    L.k = std::move(k);  // the old blocks are freed after the copies, in stream order
    L.v = std::move(v);
    L.capacity = entries;
}

void CudaKvCache::appendData(int layer, const Tensor& k, const Tensor& v) {
    Layer& L = at(layer);
    const int64_t n = k.rows();
    if (k.cols() != width_ || v.cols() != width_ || v.rows() != n)
        throw std::invalid_argument("KV append of [" + std::to_string(k.rows()) + ", " + std::to_string(k.cols()) +
                                    "] into entries of width " + std::to_string(width_));
    if (n == 0) return;
    if (L.length + n > L.capacity) {
        const int64_t entries = L.length + n;
        reallocate(L, entries + std::max(entries / 4, kMinGrowth));
    }
    const size_t offset = size_t(L.length * rowBytes()), bytes = size_t(n * rowBytes());
    PKV_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(L.k.get()) + offset, k.data(), bytes, cudaMemcpyDeviceToDevice,
                                   ctx_->stream()));
    PKV_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(L.v.get()) + offset, v.data(), bytes, cudaMemcpyDeviceToDevice,
                                   ctx_->stream()));
    L.length += n;
}

void CudaKvCache::gatherData(int layer, const std::vector<int64_t>& indices) {
    Layer& L = at(layer);
    const int64_t count = int64_t(indices.size());
    // Rows move in parallel, so they go into fresh buffers of the same capacity (an in-place
    // compaction would let one thread overwrite a row another still reads). Both are taken
    // before either replaces the layer, so running out of memory leaves the layer as it was.
    DeviceBuffer k = buffer(L.capacity), v = buffer(L.capacity);
    if (count > 0) {
        DeviceBuffer index(ctx_, count * int64_t(sizeof(int64_t)), "KV gather indices");
        ctx_->upload(index.get(), indices.data(), count * int64_t(sizeof(int64_t)));
        gatherRows(L.k.as<float>(), L.length, index.as<int64_t>(), count, width_, k.as<float>(), ctx_->stream());
        gatherRows(L.v.as<float>(), L.length, index.as<int64_t>(), count, width_, v.as<float>(), ctx_->stream());
    }
    L.k = std::move(k);
    L.v = std::move(v);
    L.length = count;
}

void CudaKvCache::eraseData(int layer, int64_t index) {
    Layer& L = at(layer);
    const int64_t tail = L.length - index - 1;
    if (tail > 0) {
        // cudaMemcpy may not overlap source and destination: move the tail through scratch.
        const size_t bytes = size_t(tail * rowBytes());
        DeviceBuffer scratch(ctx_, int64_t(bytes), "a KV erase");
        for (DeviceBuffer* data : {&L.k, &L.v}) {
            char* base = static_cast<char*>(data->get());
            PKV_CUDA_CHECK(cudaMemcpyAsync(scratch.get(), base + (index + 1) * rowBytes(), bytes,
                                           cudaMemcpyDeviceToDevice, ctx_->stream()));
            PKV_CUDA_CHECK(cudaMemcpyAsync(base + index * rowBytes(), scratch.get(), bytes, cudaMemcpyDeviceToDevice,
                                           ctx_->stream()));
        }
    }
    --L.length;
}

void CudaKvCache::overwrite(int layer, int64_t index, const std::vector<float>& k, const std::vector<float>& v) {
    Layer& L = at(layer);
    if (index < 0 || index >= L.length) throw std::out_of_range("KV overwrite index outside the cache");
    if (int64_t(k.size()) < width_ || int64_t(v.size()) < width_)
        throw std::invalid_argument("KV overwrite needs " + std::to_string(width_) + " values for keys and values");
    const int64_t offset = index * rowBytes();
    ctx_->upload(static_cast<char*>(L.k.get()) + offset, k.data(), rowBytes());
    ctx_->upload(static_cast<char*>(L.v.get()) + offset, v.data(), rowBytes());
}

void CudaKvCache::read(int layer, int64_t index, std::vector<float>& k, std::vector<float>& v) const {
    const Layer& L = at(layer);
    if (index < 0 || index >= L.length) throw std::out_of_range("KV read index outside the cache");
    k.resize(size_t(width_));
    v.resize(size_t(width_));
    const size_t offset = size_t(index * rowBytes());
    PKV_CUDA_CHECK(cudaMemcpyAsync(k.data(), static_cast<const char*>(L.k.get()) + offset, size_t(rowBytes()),
                                   cudaMemcpyDeviceToHost, ctx_->stream()));
    PKV_CUDA_CHECK(cudaMemcpyAsync(v.data(), static_cast<const char*>(L.v.get()) + offset, size_t(rowBytes()),
                                   cudaMemcpyDeviceToHost, ctx_->stream()));
    ctx_->synchronize();
}

std::unique_ptr<KvCache> CudaKvCache::clone() const { return std::make_unique<CudaKvCache>(*this); }

}  // namespace pkv::cuda
