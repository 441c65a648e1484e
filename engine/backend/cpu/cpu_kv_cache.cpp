#include "engine/backend/cpu/cpu_kv_cache.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace pkv::cpu {

CpuKvCache::CpuKvCache(int numLayers, int entryWidth)
    : KvCache(numLayers), layers_(size_t(numLayers)), width_(entryWidth) {}

CpuKvCache::Layer& CpuKvCache::at(int layer) {
    if (layer < 0 || layer >= numLayers()) throw std::out_of_range("KV cache layer " + std::to_string(layer));
    return layers_[size_t(layer)];
}

int64_t CpuKvCache::capacity(int layer) const { return int64_t(layers_[size_t(layer)].k.capacity()) / width_; }

void CpuKvCache::appendData(int layer, const Tensor& k, const Tensor& v) {
    Layer& L = at(layer);
    const size_t add = size_t(k.rows()) * size_t(width_);
    // Grow by a quarter (at least 64 entries) rather than vector's doubling: a 7B cache holds ~1 MiB
    // per token, and doubling would leave up to half of it allocated and unused.
    if (L.k.size() + add > L.k.capacity()) {
        const size_t entries = size_t(L.length + k.rows());
        const size_t target = (entries + std::max<size_t>(entries / 4, 64)) * size_t(width_);
        L.k.reserve(target);
        L.v.reserve(target);
    }
    L.k.insert(L.k.end(), k.data(), k.data() + add);
    L.v.insert(L.v.end(), v.data(), v.data() + add);
    L.length += k.rows();
}

void CpuKvCache::gatherData(int layer, const std::vector<int64_t>& indices) {
    Layer& L = at(layer);
    // Indices are increasing, so moving entries forward in place never overwrites a source
    // that is still needed.
    int64_t dst = 0;
    for (int64_t src : indices) {
        if (src != dst) {
            std::memcpy(L.k.data() + dst * width_, L.k.data() + src * width_, size_t(width_) * 4);
            std::memcpy(L.v.data() + dst * width_, L.v.data() + src * width_, size_t(width_) * 4);
        }
        ++dst;
    }
    L.length = dst;
    L.k.resize(size_t(dst) * size_t(width_));
    L.v.resize(size_t(dst) * size_t(width_));
}

void CpuKvCache::eraseData(int layer, int64_t index) {
    Layer& L = at(layer);
    L.k.erase(L.k.begin() + index * width_, L.k.begin() + (index + 1) * width_);
    L.v.erase(L.v.begin() + index * width_, L.v.begin() + (index + 1) * width_);
    --L.length;
}

void CpuKvCache::overwrite(int layer, int64_t index, const std::vector<float>& k, const std::vector<float>& v) {
    Layer& L = at(layer);
    if (index < 0 || index >= L.length) throw std::out_of_range("KV overwrite index outside the cache");
    std::copy(k.begin(), k.begin() + width_, L.k.begin() + index * width_);
    std::copy(v.begin(), v.begin() + width_, L.v.begin() + index * width_);
}

void CpuKvCache::read(int layer, int64_t index, std::vector<float>& k, std::vector<float>& v) const {
    const Layer& L = layers_[size_t(layer)];
    k.assign(L.k.begin() + index * width_, L.k.begin() + (index + 1) * width_);
    v.assign(L.v.begin() + index * width_, L.v.begin() + (index + 1) * width_);
}

std::unique_ptr<KvCache> CpuKvCache::clone() const { return std::make_unique<CpuKvCache>(*this); }


}  // namespace pkv::cpu
