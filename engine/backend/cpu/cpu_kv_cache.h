#pragma once
#include <vector>

#include "engine/backend/backend.h"

namespace pkv::cpu {

// Host KV cache: per layer, keys and values as growing f32 arrays [length, entryWidth].
class CpuKvCache final : public KvCache {
public:
    CpuKvCache(int numLayers, int entryWidth);
    int numLayers() const override { return int(layers_.size()); }
    int entryWidth() const override { return width_; }
    int64_t capacity(int layer) const override;
    void overwrite(int layer, int64_t index, const std::vector<float>& k, const std::vector<float>& v) override;
    void read(int layer, int64_t index, std::vector<float>& k, std::vector<float>& v) const override;
    std::unique_ptr<KvCache> clone() const override;
    int64_t bytesPerEntry() const override { return int64_t(width_) * 2 * 4; }

    const float* keys(int layer) const { return layers_[size_t(layer)].k.data(); }
    const float* values(int layer) const { return layers_[size_t(layer)].v.data(); }

protected:
    void appendData(int layer, const Tensor& k, const Tensor& v) override;
    void gatherData(int layer, const std::vector<int64_t>& indices) override;
    void eraseData(int layer, int64_t index) override;

private:
    struct Layer {
        std::vector<float> k, v;
        int64_t length = 0;
    };
    Layer& at(int layer);
    std::vector<Layer> layers_;
    int width_;
};

}  // namespace pkv::cpu
