#pragma once
// The CUDA backend: every op of engine/backend/backend.h on one device stream, GEMMs through
// cuBLAS, the rest in this folder's kernels (one .cu per op family). Tensors live in device
// memory (Tensor::data() is a device pointer); weights are uploaded once by weight() and owned
// by the backend until it is destroyed. Host copies (download, probes, KV reads) synchronise
// the stream; everything else is asynchronous.
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cuda/device_context.h"
#include "engine/backend/backend.h"

namespace pkv::cuda {

class CudaBackend final : public Backend {
public:
    CudaBackend();  // device 0; throws pkv::Error when it cannot be used
    ~CudaBackend() override;

    std::string name() const override { return "cuda"; }
    bool readsHostWeights() const override { return false; }  // weight() uploads them
    const std::string& deviceName() const { return ctx_->deviceName(); }
    cudaStream_t stream() const { return ctx_->stream(); }
    // Bytes of device memory held by uploaded weights.
    int64_t weightBytes() const { return weightBytes_; }

    Tensor alloc(int64_t rows, int64_t cols) override;
    Tensor upload(const float* host, int64_t rows, int64_t cols) override;
    void download(const Tensor& t, float* host) const override;
    Weight weight(const TensorView& view, int64_t rows, int64_t cols) override;
    std::unique_ptr<KvCache> createKvCache(int numLayers, int entryWidth, DType dtype) override;

    void embedRows(const Weight& table, const std::vector<int>& ids, Tensor& y) override;
    void linear(const Tensor& x, const Weight& w, const Weight* bias, Tensor& y) override;
    void rmsNorm(const Tensor& x, const Weight& gamma, float eps, Tensor& y) override;
    void layerNorm(const Tensor& x, const Weight& gamma, const Weight& beta, float eps, Tensor& y) override;
    void rope(Tensor& x, int numHeads, int headDim, const std::vector<int64_t>& positions, float theta) override;
    void siluMul(const Tensor& gate, const Tensor& up, Tensor& y) override;
    void gelu(Tensor& x) override;
    void quickGelu(Tensor& x) override;
    void add(Tensor& x, const Tensor& y) override;
    void addWeightRows(Tensor& x, const Weight& w, int64_t rowOffset) override;
    void copyRows(const Tensor& x, int64_t first, int64_t count, Tensor& y) override;
    void writeRows(const Tensor& x, Tensor& y, int64_t rowOffset) override;
    void selfAttention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionShape& s,
                       Tensor& out) override;
    void cachedAttention(const Tensor& q, const KvCache& cache, int layer, const AttentionShape& s, Tensor& out,
                         const AttentionProbe* probe) override;

    // Index of the first maximum of every row of x (greedy sampling without downloading logits).
    std::vector<int> argmaxRows(const Tensor& x);

private:
    // Copies `bytes` at device address `src` into host memory through pinned staging.
    void downloadBytes(const void* src, int64_t bytes, void* host) const;
    const float* invFrequencies(float theta, int headDim);

    std::shared_ptr<DeviceContext> ctx_;
    mutable PinnedBuffer staging_;
    // Scratch reused across calls (stream order makes reuse safe).
    DeviceBuffer gemmScratch_, idsScratch_, positionsScratch_, splitScratch_, lseScratch_, probeScratch_,
        importanceScratch_, windowScratch_, argmaxScratch_;
    // Every upload is its own block: model code asks once per tensor (tied embeddings reuse the
    // Weight), and keying by host address would go stale if a caller's host memory were reused.
    std::vector<void*> weightBlocks_;
    int64_t weightBytes_ = 0;
    std::map<std::pair<float, int>, DeviceBuffer> invFreq_;  // by (theta, headDim)
};

}  // namespace pkv::cuda
