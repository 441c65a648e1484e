#include <stdexcept>
#include <string>

#include "engine/backend/backend.h"

namespace pkv {

void KvCache::append(int layer, const Tensor& k, const Tensor& v, int64_t firstToken) {
    std::vector<int64_t>& t = tokens_.at(size_t(layer));
    appendData(layer, k, v);
    for (int64_t i = 0; i < k.rows(); ++i) t.push_back(firstToken + i);
}

void KvCache::gather(int layer, const std::vector<int64_t>& indices) {
    std::vector<int64_t>& t = tokens_.at(size_t(layer));
    std::vector<int64_t> kept;
    kept.reserve(indices.size());
    int64_t prev = -1;
    for (int64_t i : indices) {
        if (i <= prev || i >= int64_t(t.size()))
            throw std::out_of_range("KV gather indices must increase and lie inside layer " + std::to_string(layer));
        kept.push_back(t[size_t(i)]);
        prev = i;
    }
    gatherData(layer, indices);
    t = std::move(kept);
}

void KvCache::erase(int layer, int64_t index) {
    std::vector<int64_t>& t = tokens_.at(size_t(layer));
    if (index < 0 || index >= int64_t(t.size()))
        throw std::out_of_range("KV erase index outside layer " + std::to_string(layer));
    eraseData(layer, index);
    t.erase(t.begin() + index);
}

int64_t KvCache::bytesUsed() const {
    int64_t n = 0;
    for (const auto& t : tokens_) n += int64_t(t.size());
    return n * bytesPerEntry();
}

}  // namespace pkv
