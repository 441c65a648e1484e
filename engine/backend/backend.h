#pragma once
// The op set every forward pass is written against. Model code (engine/model) calls only these;
// a backend owns where tensors live (host memory for cpu, device memory for cuda) and how each op
// runs. The cpu backend is the reference: every other backend is tested against it.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/common/dtype.h"

namespace pkv {

struct TensorView;

// A row-major float32 activation matrix [rows, cols] in backend memory.
class Tensor {
public:
    Tensor() = default;
    Tensor(std::shared_ptr<float> storage, int64_t rows, int64_t cols)
        : storage_(std::move(storage)), rows_(rows), cols_(cols) {}
    int64_t rows() const { return rows_; }
    int64_t cols() const { return cols_; }
    int64_t numel() const { return rows_ * cols_; }
    float* data() { return storage_.get(); }
    const float* data() const { return storage_.get(); }
    float* row(int64_t r) { return data() + r * cols_; }
    const float* row(int64_t r) const { return data() + r * cols_; }
    bool empty() const { return !storage_; }

private:
    std::shared_ptr<float> storage_;
    int64_t rows_ = 0;
    int64_t cols_ = 0;
};

// A weight in its stored dtype: a matrix [rows, cols] (a Linear weight is [out, in]) or a vector
// (rows = 1). The cpu backend points into the memory-mapped file; others upload it once.
struct Weight {
    const void* data = nullptr;
    DType dtype = DType::F32;
    int64_t rows = 0;
    int64_t cols = 0;
    bool valid() const { return data != nullptr; }
};

// Per-layer ragged key/value storage: each layer has its own length, because compression keeps
// a different number of entries per layer. An entry is one token's keys (or values) for all KV
// heads, already rotated by RoPE at the token's position. Beside the data, every entry remembers
// which token of the sequence it came from (its index: 0..N-1 for the prompt, N, N+1, ... for
// generated tokens), so policies, heatmaps and tests can tell which tokens a layer still holds.
// Entries are stored as dtype() (F32, or F16 where the backend supports it: half the memory and
// half the bytes each decode step reads); they go in and come out as float32.
class KvCache {
public:
    virtual ~KvCache() = default;
    virtual int numLayers() const = 0;
    virtual int entryWidth() const = 0;  // numKvHeads * headDim
    virtual DType dtype() const = 0;
    int64_t length(int layer) const { return int64_t(tokens_.at(size_t(layer)).size()); }
    // Sequence index of every entry of a layer, in cache order.
    const std::vector<int64_t>& tokenIndices(int layer) const { return tokens_.at(size_t(layer)); }
    virtual int64_t capacity(int layer) const = 0;

    // Appends k/v rows [n, entryWidth] for tokens firstToken .. firstToken+n-1.
    void append(int layer, const Tensor& k, const Tensor& v, int64_t firstToken);
    // Keeps only the entries at `indices` (strictly increasing cache indices), in that order.
    void gather(int layer, const std::vector<int64_t>& indices);
    // Removes the entry at cache index `index`, shifting later entries down by one.
    void erase(int layer, int64_t index);
    // Replaces the entry at `index` with given k/v rows (1 x entryWidth); used by merging policies.
    virtual void overwrite(int layer, int64_t index, const std::vector<float>& k, const std::vector<float>& v) = 0;
    // Reads one entry back to the host (for merging policies and tests).
    virtual void read(int layer, int64_t index, std::vector<float>& k, std::vector<float>& v) const = 0;
    virtual std::unique_ptr<KvCache> clone() const = 0;
    // Bytes held by the entries (not capacity): sum of lengths x bytesPerEntry().
    int64_t bytesUsed() const;
    virtual int64_t bytesPerEntry() const = 0;

protected:
    explicit KvCache(int numLayers) : tokens_(size_t(numLayers)) {}
    KvCache(const KvCache&) = default;
    virtual void appendData(int layer, const Tensor& k, const Tensor& v) = 0;
    virtual void gatherData(int layer, const std::vector<int64_t>& indices) = 0;
    virtual void eraseData(int layer, int64_t index) = 0;

private:
    std::vector<std::vector<int64_t>> tokens_;
};

// What a caller wants to see of the attention probabilities besides the output. Probabilities are
// averaged over heads; each vector is overwritten (not accumulated into).
struct AttentionProbe {
    // Per cache entry j: sum over the queries of the head-averaged probability (spec 2.1).
    std::vector<float>* importance = nullptr;
    // The head-averaged probability rows of the last `windowRows` queries, [windowRows, length]
    // row-major (entries a query cannot see are 0): observation windows and post-vision attention.
    std::vector<float>* window = nullptr;
    int64_t windowRows = 0;
};

struct AttentionShape {
    int numHeads = 0;
    int numKvHeads = 0;  // grouped-query attention when < numHeads
    int headDim = 0;
    float scale = 0.f;   // usually 1/sqrt(headDim)
};

// One output of Backend::linearMany: y = x W^T (+ bias).
struct LinearOut {
    const Weight* w = nullptr;
    const Weight* bias = nullptr;  // may be null or invalid
    Tensor* y = nullptr;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;

    // Memory. alloc gives a zeroed tensor; allocOutput one whose contents are unspecified, for an
    // op's output that the op overwrites entirely (skipping the zeroing saves a pass over every
    // activation of a prefill). Backends that cannot skip it inherit the zeroed alloc.
    virtual Tensor alloc(int64_t rows, int64_t cols) = 0;
    virtual Tensor allocOutput(int64_t rows, int64_t cols) { return alloc(rows, cols); }
    virtual Tensor upload(const float* host, int64_t rows, int64_t cols) = 0;
    virtual void download(const Tensor& t, float* host) const = 0;
    virtual Weight weight(const TensorView& view, int64_t rows, int64_t cols) = 0;
    // A cache whose entries are stored as `dtype`; only dtypes supportsKvDtype() accepts.
    virtual std::unique_ptr<KvCache> createKvCache(int numLayers, int entryWidth, DType dtype) = 0;
    virtual bool supportsKvDtype(DType dtype) const { return dtype == DType::F32; }
    // Whether the ops read the host bytes weight() was given (the cpu backend), rather than a copy
    // the backend made of them (CUDA: in device memory), after which the host bytes are not read.
    virtual bool readsHostWeights() const { return true; }

    // y[i,:] = table[ids[i],:]
    virtual void embedRows(const Weight& table, const std::vector<int>& ids, Tensor& y) = 0;
    // y = x W^T (+ b): x [n, in], W [out, in], y [n, out].
    virtual void linear(const Tensor& x, const Weight& w, const Weight* bias, Tensor& y) = 0;
    // Several linears of the same x (q/k/v, gate/up), all W with x's width. A backend may run them
    // as one (x read or packed once, no wait between them); the default runs them one by one.
    virtual void linearMany(const Tensor& x, const std::vector<LinearOut>& outs) {
        for (const LinearOut& o : outs) linear(x, *o.w, o.bias, *o.y);
    }
    virtual void rmsNorm(const Tensor& x, const Weight& gamma, float eps, Tensor& y) = 0;
    virtual void layerNorm(const Tensor& x, const Weight& gamma, const Weight& beta, float eps, Tensor& y) = 0;
    // Rotary embedding in the rotate-half layout (LLaMA as transformers implements it), in place,
    // on x [n, numHeads*headDim]; row i is at position positions[i].
    virtual void rope(Tensor& x, int numHeads, int headDim, const std::vector<int64_t>& positions, float theta) = 0;
    virtual void siluMul(const Tensor& gate, const Tensor& up, Tensor& y) = 0;  // y = silu(gate) * up
    virtual void gelu(Tensor& x) = 0;       // exact (erf) GELU, in place
    virtual void quickGelu(Tensor& x) = 0;  // x * sigmoid(1.702 x), in place
    virtual void add(Tensor& x, const Tensor& y) = 0;  // x += y
    // x[i,:] += w[rowOffset + i, :] (position embeddings)
    virtual void addWeightRows(Tensor& x, const Weight& w, int64_t rowOffset) = 0;
    // y = rows [first, first+count) of x
    virtual void copyRows(const Tensor& x, int64_t first, int64_t count, Tensor& y) = 0;
    // y[rowOffset + i,:] = x[i,:]
    virtual void writeRows(const Tensor& x, Tensor& y, int64_t rowOffset) = 0;

    // Bidirectional self-attention among n tokens (vision tower): q,k,v [n, heads*headDim].
    virtual void selfAttention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionShape& s,
                               Tensor& out) = 0;
    // Causal attention of q [n, heads*headDim] over a layer of the cache whose last n entries are
    // these queries' own keys: query i sees cache entries [0, length - n + i]. `probe`, when
    // given, receives the importance and/or window probabilities it asks for.
    virtual void cachedAttention(const Tensor& q, const KvCache& cache, int layer, const AttentionShape& s,
                                 Tensor& out, const AttentionProbe* probe) = 0;
};

// The reference backend: host memory, OpenBLAS GEMMs, OpenMP threads.
std::unique_ptr<Backend> createCpuBackend();

}  // namespace pkv
