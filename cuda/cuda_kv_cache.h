#pragma once
// Device KV cache: per layer, keys and values as f32 arrays [capacity, entryWidth] in device
// memory — f32 like the cpu cache, so both backends hold bit-identical entries and the parity
// tests can compare them exactly (the cpu backend also offers f16 entries, which halve the memory
// and the decode attention traffic; here they are still to come). Capacity grows geometrically by a quarter
// (at least 64 entries), like the cpu cache, so appending one token per step costs amortised
// O(1) copies without holding up to twice the entries.
#include <memory>
#include <vector>

#include "cuda/device_context.h"
#include "engine/backend/backend.h"

namespace pkv::cuda {

class CudaKvCache final : public KvCache {
public:
    CudaKvCache(std::shared_ptr<DeviceContext> ctx, int numLayers, int entryWidth);
    CudaKvCache(const CudaKvCache& other);  // deep copy of the entries, same capacities
    CudaKvCache& operator=(const CudaKvCache&) = delete;

    int numLayers() const override { return int(layers_.size()); }
    int entryWidth() const override { return width_; }
    DType dtype() const override { return DType::F32; }
    int64_t capacity(int layer) const override;
    void overwrite(int layer, int64_t index, const std::vector<float>& k, const std::vector<float>& v) override;
    void read(int layer, int64_t index, std::vector<float>& k, std::vector<float>& v) const override;
    std::unique_ptr<KvCache> clone() const override;
    int64_t bytesPerEntry() const override { return int64_t(width_) * 2 * 4; }

    // The context (stream) the entries are written on; attention must read them on the same one.
    const DeviceContext* context() const { return ctx_.get(); }
    const float* keys(int layer) const { return layers_.at(size_t(layer)).k.as<float>(); }
    const float* values(int layer) const { return layers_.at(size_t(layer)).v.as<float>(); }

protected:
    void appendData(int layer, const Tensor& k, const Tensor& v) override;
    void gatherData(int layer, const std::vector<int64_t>& indices) override;
    void eraseData(int layer, int64_t index) override;

private:
    struct Layer {
        DeviceBuffer k, v;
        int64_t length = 0;
        int64_t capacity = 0;
    };
    Layer& at(int layer);
    const Layer& at(int layer) const;
    // Reallocates a layer to hold `entries`, keeping its current entries.
    void reallocate(Layer& L, int64_t entries);
    DeviceBuffer buffer(int64_t entries) const;
    int64_t rowBytes() const { return int64_t(width_) * 4; }

    std::shared_ptr<DeviceContext> ctx_;
    std::vector<Layer> layers_;
    int width_;
};

}  // namespace pkv::cuda
