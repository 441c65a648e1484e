#include "engine/backend/cpu/cpu_kv_cache.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "engine/backend/cpu/cpu_kernels.h"
#include "engine/backend/cpu/cpu_widen.h"

namespace pkv::cpu {

CpuKvCache::CpuKvCache(int numLayers, int entryWidth, DType dtype)
    : KvCache(numLayers), layers_(size_t(numLayers)), width_(entryWidth), dtype_(dtype), elem_(dtypeSize(dtype)) {
    if (dtype != DType::F32 && dtype != DType::F16)
        throw std::invalid_argument(std::string("cpu KV cache entries are F32 or F16, not ") + dtypeName(dtype));
}

CpuKvCache::Layer& CpuKvCache::at(int layer) {
    if (layer < 0 || layer >= numLayers()) throw std::out_of_range("KV cache layer " + std::to_string(layer));
    return layers_[size_t(layer)];
}

int64_t CpuKvCache::capacity(int layer) const {
    return int64_t(layers_[size_t(layer)].k.capacity() / rowBytes());
}

void CpuKvCache::store(const float* src, int64_t n, unsigned char* dst) const {
    if (dtype_ == DType::F32)
        std::memcpy(dst, src, size_t(n) * rowBytes());
    else
        narrowToHalf(src, n * width_, reinterpret_cast<uint16_t*>(dst));
}

void CpuKvCache::load(const unsigned char* src, int64_t n, float* dst) const {
    convertToFloat(src, dtype_, n * width_, dst);
}

void CpuKvCache::appendData(int layer, const Tensor& k, const Tensor& v) {
    Layer& L = at(layer);
    const size_t add = size_t(k.rows()) * rowBytes();
    // Grow by a quarter (at least 64 entries) rather than vector's doubling: a 7B cache holds ~1 MiB
    // per token in f32, and doubling would leave up to half of it allocated and unused.
    if (L.k.size() + add > L.k.capacity()) {
        const size_t entries = size_t(L.length + k.rows());
        const size_t target = (entries + std::max<size_t>(entries / 4, 64)) * rowBytes();
        L.k.reserve(target);
        L.v.reserve(target);
    }
    const size_t old = L.k.size();
    // resize() value-initialises the new bytes before store() overwrites them; appends are one
    // prompt or one token, so that pass is small next to the attention over the whole layer.
    L.k.resize(old + add);
    L.v.resize(old + add);
    store(k.data(), k.rows(), L.k.data() + old);
    store(v.data(), v.rows(), L.v.data() + old);
    L.length += k.rows();
}

void CpuKvCache::gatherData(int layer, const std::vector<int64_t>& indices) {
    Layer& L = at(layer);
    const size_t row = rowBytes();
    // Indices are increasing, so moving entries forward in place never overwrites a source
    // that is still needed.
    int64_t dst = 0;
    for (int64_t src : indices) {
        if (src != dst) {
            std::memcpy(L.k.data() + size_t(dst) * row, L.k.data() + size_t(src) * row, row);
            std::memcpy(L.v.data() + size_t(dst) * row, L.v.data() + size_t(src) * row, row);
        }
        ++dst;
    }
    L.length = dst;
    L.k.resize(size_t(dst) * row);
    L.v.resize(size_t(dst) * row);
}

void CpuKvCache::eraseData(int layer, int64_t index) {
    Layer& L = at(layer);
    const auto row = std::ptrdiff_t(rowBytes());
    L.k.erase(L.k.begin() + index * row, L.k.begin() + (index + 1) * row);
    L.v.erase(L.v.begin() + index * row, L.v.begin() + (index + 1) * row);
    --L.length;
}

void CpuKvCache::overwrite(int layer, int64_t index, const std::vector<float>& k, const std::vector<float>& v) {
    Layer& L = at(layer);
    if (index < 0 || index >= L.length) throw std::out_of_range("KV overwrite index outside the cache");
    if (k.size() < size_t(width_) || v.size() < size_t(width_))
        throw std::invalid_argument("KV overwrite with fewer values than the entry width");
    store(k.data(), 1, L.k.data() + size_t(index) * rowBytes());
    store(v.data(), 1, L.v.data() + size_t(index) * rowBytes());
}

void CpuKvCache::read(int layer, int64_t index, std::vector<float>& k, std::vector<float>& v) const {
    const Layer& L = layers_[size_t(layer)];
    k.resize(size_t(width_));
    v.resize(size_t(width_));
    load(L.k.data() + size_t(index) * rowBytes(), 1, k.data());
    load(L.v.data() + size_t(index) * rowBytes(), 1, v.data());
}

std::unique_ptr<KvCache> CpuKvCache::clone() const { return std::make_unique<CpuKvCache>(*this); }

}  // namespace pkv::cpu
