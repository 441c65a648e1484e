#pragma once
#include <cstdint>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/backend/cpu/cpu_aligned.h"

namespace pkv::cpu {

// Host KV cache: per layer, keys and values as growing arrays [length, entryWidth] of F32 or F16
// (entries narrowed on append, rounded to nearest even and saturated to the half range).
class CpuKvCache final : public KvCache {
public:
    CpuKvCache(int numLayers, int entryWidth, DType dtype);
    int numLayers() const override { return int(layers_.size()); }
    int entryWidth() const override { return width_; }
    DType dtype() const override { return dtype_; }
    int64_t capacity(int layer) const override;
    void overwrite(int layer, int64_t index, const std::vector<float>& k, const std::vector<float>& v) override;
    void read(int layer, int64_t index, std::vector<float>& k, std::vector<float>& v) const override;
    std::unique_ptr<KvCache> clone() const override;
    int64_t bytesPerEntry() const override { return int64_t(width_) * 2 * int64_t(elem_); }

    // Keys and values of a layer, [length, entryWidth] of dtype().
    const void* keys(int layer) const { return layers_[size_t(layer)].k.data(); }
    const void* values(int layer) const { return layers_[size_t(layer)].v.data(); }

protected:
    void appendData(int layer, const Tensor& k, const Tensor& v) override;
    void gatherData(int layer, const std::vector<int64_t>& indices) override;
    void eraseData(int layer, int64_t index) override;

private:
    struct Layer {
        std::vector<unsigned char, CacheLineAllocator<unsigned char>> k, v;  // length * rowBytes() bytes each
        int64_t length = 0;
    };
    Layer& at(int layer);
    size_t rowBytes() const { return size_t(width_) * elem_; }
    // n rows of floats into / out of the storage dtype.
    void store(const float* src, int64_t n, unsigned char* dst) const;
    void load(const unsigned char* src, int64_t n, float* dst) const;

    std::vector<Layer> layers_;
    int width_;
    DType dtype_;
    size_t elem_;
};

}  // namespace pkv::cpu
