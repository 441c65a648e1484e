#pragma once
// A backend that runs every op on another backend and adds up the wall time each op takes, by
// op and shape ("linear 2048x5632", "cachedAttention"), so `prefixkv bench --profile` can say
// where a prefill or a decode step spends its time. Each op is timed on the host from call to
// return: exact for the cpu backend, whose ops finish before they return; for an asynchronous
// backend the time lands on whichever op next waits for the device.
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "engine/backend/backend.h"

namespace pkv {

struct OpTime {
    int64_t calls = 0;
    double ms = 0;
};
using OpProfile = std::map<std::string, OpTime>;

class ProfilingBackend : public Backend {
public:
    explicit ProfilingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

    // Times so far, and a fresh start.
    const OpProfile& profile() const { return profile_; }
    void reset() { profile_.clear(); }

    std::string name() const override { return inner_->name(); }
    Tensor alloc(int64_t rows, int64_t cols) override;
    Tensor allocOutput(int64_t rows, int64_t cols) override;
    Tensor upload(const float* host, int64_t rows, int64_t cols) override;
    void download(const Tensor& t, float* host) const override;
    Weight weight(const TensorView& view, int64_t rows, int64_t cols) override;
    std::unique_ptr<KvCache> createKvCache(int numLayers, int entryWidth, DType dtype) override;
    bool supportsKvDtype(DType dtype) const override { return inner_->supportsKvDtype(dtype); }
    bool readsHostWeights() const override { return inner_->readsHostWeights(); }
    void embedRows(const Weight& table, const std::vector<int>& ids, Tensor& y) override;
    void linear(const Tensor& x, const Weight& w, const Weight* bias, Tensor& y) override;
    void linearMany(const Tensor& x, const std::vector<LinearOut>& outs) override;
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

private:
    // Runs f and adds its wall time to the entry `op`.
    template <typename F>
    void timed(const std::string& op, F&& f) const {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        OpTime& e = profile_[op];
        e.calls += 1;
        e.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }

    std::unique_ptr<Backend> inner_;
    mutable OpProfile profile_;
};

}  // namespace pkv
