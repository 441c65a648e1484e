#include "cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "cuda/argmax.cuh"
#include "cuda/attention.cuh"
#include "cuda/cuda_kv_cache.h"
#include "cuda/elementwise.cuh"
#include "cuda/embedding.cuh"
#include "cuda/gemm.cuh"
#include "cuda/norm.cuh"
#include "cuda/rope.cuh"
#include "engine/io/safetensors.h"

namespace pkv::cuda {
namespace {

// Downloads larger than this go through the pinned buffer in pieces (prompt logits of a long
// prompt are hundreds of MiB; pinning that much host memory would hurt the rest of the system).
constexpr int64_t kStagingBytes = 64LL * 1024 * 1024;

std::string shape(const Tensor& t) {
    std::string s = "[";  // appended piecewise: GCC 12 misreports "literal" + std::string (bug 105651)
    s += std::to_string(t.rows());
    s += ", ";
    s += std::to_string(t.cols());
    s += "]";
    return s;
}

// Shape mismatches are programming errors of the caller (the model code), not user errors.
void require(bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("cuda backend: " + what);
}

int64_t weightElements(const Weight& w) { return w.rows * w.cols; }

}  // namespace

CudaBackend::CudaBackend()
    : ctx_(std::make_shared<DeviceContext>()),
      gemmScratch_(ctx_, 0, "activations rounded for a matrix product"),
      idsScratch_(ctx_, 0, "token ids"),
      positionsScratch_(ctx_, 0, "token positions"),
      splitScratch_(ctx_, 0, "partial attention results"),
      lseScratch_(ctx_, 0, "attention normalisers"),
      probeScratch_(ctx_, 0, "partial token importance"),
      importanceScratch_(ctx_, 0, "token importance"),
      windowScratch_(ctx_, 0, "attention window rows"),
      argmaxScratch_(ctx_, 0, "argmax results") {}

CudaBackend::~CudaBackend() {
    if (cudaStreamSynchronize(ctx_->stream()) != cudaSuccess) forgetError();
    for (void* p : weightBlocks_) ctx_->releasePersistent(p);
}

Tensor CudaBackend::alloc(int64_t rows, int64_t cols) {
    require(rows >= 0 && cols >= 0, "negative tensor shape");
    // At least one element, so that an empty tensor still has storage (as on the cpu).
    const int64_t bytes = std::max<int64_t>(rows * cols, 1) * 4;
    float* p = static_cast<float*>(ctx_->allocate(bytes, "a [" + std::to_string(rows) + ", " +
                                                             std::to_string(cols) + "] activation"));
    std::shared_ptr<DeviceContext> ctx = ctx_;
    Tensor t(std::shared_ptr<float>(p, [ctx](float* q) { ctx->release(q); }), rows, cols);
    // Zeroed like the cpu backend's tensors; model code relies on it (e.g. adding into a fresh row).
    PKV_CUDA_CHECK(cudaMemsetAsync(p, 0, size_t(bytes), ctx_->stream()));
    return t;
}

Tensor CudaBackend::upload(const float* host, int64_t rows, int64_t cols) {
    Tensor t = alloc(rows, cols);
    ctx_->upload(t.data(), host, t.numel() * 4);
    return t;
}

void CudaBackend::downloadBytes(const void* src, int64_t total, void* host) const {
    for (int64_t done = 0; done < total; done += kStagingBytes) {
        const int64_t bytes = std::min(kStagingBytes, total - done);
        void* stage = staging_.ensure(bytes);
        PKV_CUDA_CHECK(cudaMemcpyAsync(stage, static_cast<const char*>(src) + done, size_t(bytes),
                                       cudaMemcpyDeviceToHost, ctx_->stream()));
        ctx_->synchronize();
        std::memcpy(static_cast<char*>(host) + done, stage, size_t(bytes));
    }
}

void CudaBackend::download(const Tensor& t, float* host) const { downloadBytes(t.data(), t.numel() * 4, host); }

Weight CudaBackend::weight(const TensorView& view, int64_t rows, int64_t cols) {
    if (!view.dtypeSupported)
        throw Error("Weight " + view.name + " in " + view.file + " has element type " + view.dtypeText +
                    ", which the CUDA backend cannot compute with.");
    const int64_t bytes = rows * cols * int64_t(dtypeSize(view.dtype));
    if (rows < 0 || cols < 0 || bytes > int64_t(view.nbytes))
        throw Error("Weight " + view.name + " in " + view.file + " holds " + std::to_string(view.nbytes) +
                    " bytes, fewer than its " + std::to_string(rows) + " x " + std::to_string(cols) + " shape needs.");
    void* p = ctx_->allocatePersistent(bytes, "weight " + view.name);
    weightBlocks_.push_back(p);
    weightBytes_ += bytes;
    ctx_->upload(p, view.data, bytes);
    return Weight{p, view.dtype, rows, cols};
}

std::unique_ptr<KvCache> CudaBackend::createKvCache(int numLayers, int entryWidth, DType dtype) {
    // The device kernels read a float32 cache; supportsKvDtype() says so, and the model never asks
    // for another here (an f16 cache on the device is future work).
    if (dtype != DType::F32)
        throw Error(std::string("The cuda backend keeps its key/value cache in F32, not ") + dtypeName(dtype) + ".");
    return std::make_unique<CudaKvCache>(ctx_, numLayers, entryWidth);
}

void CudaBackend::embedRows(const Weight& table, const std::vector<int>& ids, Tensor& y) {
    // The id check comes first: a bad id is the user's error (pkv::Error, as on the cpu), a
    // shape mismatch the caller's.
    for (int id : ids)
        if (id < 0 || id >= table.rows)
            throw Error("Token id " + std::to_string(id) + " is outside the embedding table of " +
                        std::to_string(table.rows) + " rows.");
    require(y.rows() == int64_t(ids.size()) && y.cols() == table.cols, "embedRows into " + shape(y));
    if (ids.empty()) return;
    int* dIds = static_cast<int*>(idsScratch_.ensure(int64_t(ids.size() * sizeof(int))));
    ctx_->upload(dIds, ids.data(), int64_t(ids.size() * sizeof(int)));
    cuda::embedRows(table.data, table.dtype, table.rows, table.cols, dIds, int64_t(ids.size()), y.data(),
                    ctx_->stream());
}

void CudaBackend::linear(const Tensor& x, const Weight& w, const Weight* bias, Tensor& y) {
    require(x.cols() == w.cols && y.rows() == x.rows() && y.cols() == w.rows,
            "linear " + shape(x) + " x [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "]^T -> " +
                shape(y));
    LinearArgs a;
    a.x = x.data();
    a.n = x.rows();
    a.in = w.cols;
    a.out = w.rows;
    a.w = w.data;
    a.wType = w.dtype;
    if (bias && bias->valid()) {
        require(weightElements(*bias) >= w.rows, "linear bias shorter than the output");
        a.bias = bias->data;
        a.biasType = bias->dtype;
    }
    a.y = y.data();
    void* scratch = gemmScratch_.ensure(linearScratchBytes(a.n, a.in, a.wType));
    cuda::linear(a, scratch, ctx_->blas(), ctx_->stream());
}

void CudaBackend::rmsNorm(const Tensor& x, const Weight& gamma, float eps, Tensor& y) {
    require(weightElements(gamma) >= x.cols() && y.rows() == x.rows() && y.cols() == x.cols(), "rmsNorm " + shape(x));
    cuda::rmsNorm(x.data(), x.rows(), x.cols(), gamma.data, gamma.dtype, eps, y.data(), ctx_->stream());
}

void CudaBackend::layerNorm(const Tensor& x, const Weight& gamma, const Weight& beta, float eps, Tensor& y) {
    require(weightElements(gamma) >= x.cols() && weightElements(beta) >= x.cols() && y.rows() == x.rows() &&
                y.cols() == x.cols(),
            "layerNorm " + shape(x));
    cuda::layerNorm(x.data(), x.rows(), x.cols(), gamma.data, gamma.dtype, beta.data, beta.dtype, eps, y.data(),
                    ctx_->stream());
}

const float* CudaBackend::invFrequencies(float theta, int headDim) {
    auto it = invFreq_.find({theta, headDim});
    if (it != invFreq_.end()) return it->second.as<float>();
    // On the host with the cpu backend's expression, so both backends rotate by the same angles.
    const int half = headDim / 2;
    std::vector<float> inv(size_t(std::max(half, 1)));
    for (int i = 0; i < half; ++i) inv[size_t(i)] = 1.f / std::pow(theta, float(2 * i) / float(headDim));
    DeviceBuffer buf(ctx_, int64_t(inv.size() * sizeof(float)), "rotary frequencies");
    ctx_->upload(buf.get(), inv.data(), int64_t(inv.size() * sizeof(float)));
    return invFreq_.emplace(std::make_pair(theta, headDim), std::move(buf)).first->second.as<float>();
}

void CudaBackend::rope(Tensor& x, int numHeads, int headDim, const std::vector<int64_t>& positions, float theta) {
    require(int64_t(positions.size()) == x.rows() && int64_t(numHeads) * headDim <= x.cols() && headDim % 2 == 0,
            "rope on " + shape(x));
    if (x.rows() == 0) return;
    const float* inv = invFrequencies(theta, headDim);
    // Prefill and decode positions are consecutive: pass the first one instead of uploading all.
    bool consecutive = true;
    for (size_t i = 1; i < positions.size() && consecutive; ++i) consecutive = positions[i] == positions[0] + int64_t(i);
    const int64_t* dPositions = nullptr;
    if (!consecutive) {
        auto* p = static_cast<int64_t*>(positionsScratch_.ensure(int64_t(positions.size() * sizeof(int64_t))));
        ctx_->upload(p, positions.data(), int64_t(positions.size() * sizeof(int64_t)));
        dPositions = p;
    }
    cuda::rope(x.data(), x.rows(), x.cols(), numHeads, headDim, inv, dPositions, positions[0], ctx_->stream());
}

void CudaBackend::siluMul(const Tensor& gate, const Tensor& up, Tensor& y) {
    require(gate.numel() == up.numel() && y.numel() == gate.numel(), "siluMul " + shape(gate));
    cuda::siluMul(gate.data(), up.data(), y.data(), gate.numel(), ctx_->stream());
}

void CudaBackend::gelu(Tensor& x) { cuda::gelu(x.data(), x.numel(), ctx_->stream()); }

void CudaBackend::quickGelu(Tensor& x) { cuda::quickGelu(x.data(), x.numel(), ctx_->stream()); }

void CudaBackend::add(Tensor& x, const Tensor& y) {
    require(x.numel() == y.numel(), "add " + shape(x) + " + " + shape(y));
    cuda::add(x.data(), y.data(), x.numel(), ctx_->stream());
}

void CudaBackend::addWeightRows(Tensor& x, const Weight& w, int64_t rowOffset) {
    require(rowOffset >= 0 && rowOffset + x.rows() <= w.rows && x.cols() <= w.cols,
            "addWeightRows of rows " + std::to_string(rowOffset) + ".. into " + shape(x));
    cuda::addWeightRows(x.data(), x.rows(), x.cols(), w.data, w.dtype, w.cols, rowOffset, ctx_->stream());
}

void CudaBackend::copyRows(const Tensor& x, int64_t first, int64_t count, Tensor& y) {
    require(first >= 0 && count >= 0 && first + count <= x.rows() && y.numel() >= count * x.cols(),
            "copyRows " + std::to_string(first) + "+" + std::to_string(count) + " of " + shape(x));
    if (count == 0) return;
    PKV_CUDA_CHECK(cudaMemcpyAsync(y.data(), x.row(first), size_t(count * x.cols()) * 4, cudaMemcpyDeviceToDevice,
                                   ctx_->stream()));
}

void CudaBackend::writeRows(const Tensor& x, Tensor& y, int64_t rowOffset) {
    require(rowOffset >= 0 && x.cols() == y.cols() && rowOffset + x.rows() <= y.rows(),
            "writeRows " + shape(x) + " into " + shape(y) + " at " + std::to_string(rowOffset));
    if (x.numel() == 0) return;
    PKV_CUDA_CHECK(cudaMemcpyAsync(y.row(rowOffset), x.data(), size_t(x.numel()) * 4, cudaMemcpyDeviceToDevice,
                                   ctx_->stream()));
}

void CudaBackend::selfAttention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionShape& s,
                                Tensor& out) {
    require(k.rows() == v.rows() && k.cols() == v.cols() && out.rows() == q.rows() && out.cols() == q.cols(),
            "selfAttention " + shape(q) + " over " + shape(k));
    AttentionArgs a;
    a.q = q.data();
    a.nq = q.rows();
    a.qStride = q.cols();
    a.k = k.data();
    a.v = v.data();
    a.nk = k.rows();
    a.kvStride = k.cols();
    a.numHeads = s.numHeads;
    a.numKvHeads = s.numKvHeads;
    a.headDim = s.headDim;
    a.scale = s.scale;
    a.out = out.data();
    a.outStride = out.cols();
    checkAttention(a);
    const AttentionPlan plan = planAttention(a, ctx_->multiprocessors());
    float* scratch = static_cast<float*>(splitScratch_.ensure(plan.scratchFloats * 4));
    attention(a, plan, scratch, nullptr, ctx_->stream());
}

void CudaBackend::cachedAttention(const Tensor& q, const KvCache& cache, int layer, const AttentionShape& s,
                                  Tensor& out, const AttentionProbe* probe) {
    const auto* c = dynamic_cast<const CudaKvCache*>(&cache);
    // Another CUDA backend's cache is written on another stream: reading it here would race.
    if (!c || c->context() != ctx_.get())
        throw std::invalid_argument("cuda backend: cachedAttention over a KV cache of another backend");
    require(out.rows() == q.rows() && out.cols() == q.cols(), "cachedAttention " + shape(q) + " -> " + shape(out));
    AttentionArgs a;
    a.q = q.data();
    a.nq = q.rows();
    a.qStride = q.cols();
    a.k = c->keys(layer);
    a.v = c->values(layer);
    a.nk = c->length(layer);
    a.kvStride = c->entryWidth();
    a.numHeads = s.numHeads;
    a.numKvHeads = s.numKvHeads;
    a.headDim = s.headDim;
    a.scale = s.scale;
    a.causal = true;
    a.keyOffset = a.nk - a.nq;
    a.out = out.data();
    a.outStride = out.cols();
    checkAttention(a);

    const bool wantImportance = probe && probe->importance;
    const bool wantWindow = probe && probe->window && probe->windowRows > 0;
    const int64_t windowRows = wantWindow ? std::min(probe->windowRows, a.nq) : 0;
    const bool probing = wantImportance || windowRows > 0;
    // Like the cpu: a requested window is always overwritten, even when no query gives it a row.
    if (wantWindow && windowRows == 0) probe->window->clear();
    float* lse = probing ? static_cast<float*>(lseScratch_.ensure(int64_t(a.numHeads) * a.nq * 4)) : nullptr;

    const AttentionPlan plan = planAttention(a, ctx_->multiprocessors());
    attention(a, plan, static_cast<float*>(splitScratch_.ensure(plan.scratchFloats * 4)), lse, ctx_->stream());
    if (!probing) return;

    const ProbePlan probePlan = planProbe(a, ctx_->multiprocessors());
    auto* importance = static_cast<float*>(importanceScratch_.ensure(std::max<int64_t>(a.nk, 1) * 4));
    auto* window = windowRows > 0 ? static_cast<float*>(windowScratch_.ensure(windowRows * a.nk * 4)) : nullptr;
    attentionProbe(a, lse, probePlan, static_cast<float*>(probeScratch_.ensure(probePlan.scratchFloats * 4)),
                   importance, window, windowRows, ctx_->stream());
    if (wantImportance) {
        probe->importance->resize(size_t(a.nk));
        downloadBytes(importance, a.nk * 4, probe->importance->data());
    }
    if (windowRows > 0) {
        probe->window->resize(size_t(windowRows * a.nk));
        downloadBytes(window, windowRows * a.nk * 4, probe->window->data());
    }
}

std::vector<int> CudaBackend::argmaxRows(const Tensor& x) {
    std::vector<int> out(size_t(x.rows()));
    if (out.empty()) return out;
    int* d = static_cast<int*>(argmaxScratch_.ensure(x.rows() * int64_t(sizeof(int))));
    cuda::argmaxRows(x.data(), x.rows(), x.cols(), d, ctx_->stream());
    downloadBytes(d, x.rows() * int64_t(sizeof(int)), out.data());
    return out;
}

}  // namespace pkv::cuda
