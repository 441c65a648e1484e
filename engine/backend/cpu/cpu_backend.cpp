// The reference backend. Element-wise ops are plain loops over rows (threaded where a row is
// independent); the linear layer and attention live in their own files.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <deque>

#include "engine/backend/cpu/cpu_aligned.h"
#include "engine/backend/cpu/cpu_exp.h"
#include "engine/backend/cpu/cpu_kernels.h"
#include "engine/backend/cpu/cpu_kv_cache.h"
#include "engine/common/error.h"
#include "engine/io/safetensors.h"

namespace pkv {
namespace {

// f(begin, end) over [0, n) in one contiguous chunk per thread (one chunk when n is small).
template <typename F>
void parallelChunks(int64_t n, F&& f) {
#pragma omp parallel if (n >= cpu::kMinParallelWork)
    {
        const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t per = (n + threads - 1) / threads;
        const int64_t begin = std::min(n, t * per), end = std::min(n, begin + per);
        if (end > begin) f(begin, end);
    }
}

std::vector<float> toFloat(const Weight& w) {
    std::vector<float> out(size_t(w.rows * w.cols));
    cpu::convertToFloat(w.data, w.dtype, w.rows * w.cols, out.data());
    return out;
}

// Activation buffers are recycled. A prefill allocates the same few sizes in every layer, and
// every fresh buffer of more than 32 MiB is mapped by malloc and faulted in page by page, then
// unmapped when freed (1.5 s of a 25 s prefill at 1800 tokens went to that). Freed buffers wait
// here for the next request of their size. At most kMaxRetainedBytes wait; beyond that the ones
// returned longest ago are freed, so sizes no longer asked for (a previous prompt's length) age
// out instead of holding memory. Tensors keep the pool alive (their deleters share it), so a
// tensor may outlive the backend.
//
// Buffers start on a 64-byte cache line, so a kernel's speed does not depend on where malloc
// happened to put its operands: malloc aligns to 16 bytes, and a vector load's cost depends on
// whether it straddles two lines (in L2, the decode GEMV multiplies 33% slower with x 16 bytes
// into a line; at memory speed it streams faster that way, so it places its own copy of x:
// cpu_linear.cpp). Measurements need the layout to be the same from run to run.
class BufferPool {
public:
    static constexpr size_t kMaxRetainedBytes = size_t(512) << 20;

    ~BufferPool() {
        for (const Entry& e : free_) release(e.data);
    }

    // n floats, zeroed when asked (model code relies on fresh tensors being zero, e.g. adding into
    // a new row) or left as they are for an op's output.
    static std::shared_ptr<float> get(const std::shared_ptr<BufferPool>& pool, size_t n, bool zeroed) {
        float* p = pool->take(n);
        if (!p) p = static_cast<float*>(::operator new[](n * sizeof(float), cpu::kCacheLine));
        if (zeroed) std::memset(p, 0, n * sizeof(float));
        return std::shared_ptr<float>(p, [pool, n](float* q) { pool->give(q, n); });
    }

private:
    struct Entry {
        size_t size;
        float* data;
    };

    static void release(float* p) { ::operator delete[](p, cpu::kCacheLine); }

    float* take(size_t n) {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto it = free_.rbegin(); it != free_.rend(); ++it)  // the most recently returned first
            if (it->size == n) {
                float* p = it->data;
                free_.erase(std::next(it).base());
                retained_ -= n * sizeof(float);
                return p;
            }
        return nullptr;
    }
    void give(float* p, size_t n) {
        std::vector<float*> evicted;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            free_.push_back({n, p});
            retained_ += n * sizeof(float);
            while (retained_ > kMaxRetainedBytes) {
                evicted.push_back(free_.front().data);
                retained_ -= free_.front().size * sizeof(float);
                free_.pop_front();
            }
        }
        for (float* e : evicted) release(e);
    }

    std::mutex mutex_;
    std::deque<Entry> free_;  // oldest first
    size_t retained_ = 0;
};

class CpuBackend final : public Backend {
public:
    std::string name() const override { return "cpu"; }

    Tensor alloc(int64_t rows, int64_t cols) override { return pooled(rows, cols, true); }
    Tensor allocOutput(int64_t rows, int64_t cols) override { return pooled(rows, cols, false); }
    Tensor upload(const float* host, int64_t rows, int64_t cols) override {
        Tensor t = allocOutput(rows, cols);
        std::memcpy(t.data(), host, size_t(rows * cols) * 4);
        return t;
    }
    void download(const Tensor& t, float* host) const override {
        std::memcpy(host, t.data(), size_t(t.numel()) * 4);
    }
    Weight weight(const TensorView& view, int64_t rows, int64_t cols) override {
        return Weight{view.data, view.dtype, rows, cols};  // zero-copy: the mapping outlives the model
    }
    std::unique_ptr<KvCache> createKvCache(int numLayers, int entryWidth, DType dtype) override {
        return std::make_unique<cpu::CpuKvCache>(numLayers, entryWidth, dtype);
    }
    bool supportsKvDtype(DType dtype) const override { return dtype == DType::F32 || dtype == DType::F16; }

    void embedRows(const Weight& table, const std::vector<int>& ids, Tensor& y) override {
        const size_t elem = dtypeSize(table.dtype);
        for (size_t i = 0; i < ids.size(); ++i) {
            if (ids[i] < 0 || ids[i] >= table.rows)
                throw Error("Token id " + std::to_string(ids[i]) + " is outside the embedding table of " +
                            std::to_string(table.rows) + " rows.");
            const char* src = static_cast<const char*>(table.data) + size_t(ids[i]) * size_t(table.cols) * elem;
            cpu::convertToFloat(src, table.dtype, table.cols, y.row(int64_t(i)));
        }
    }

    void linear(const Tensor& x, const Weight& w, const Weight* bias, Tensor& y) override {
        cpu::linear(x.data(), x.rows(), w, bias, y.data());
    }
    void linearMany(const Tensor& x, const std::vector<LinearOut>& outs) override {
        std::vector<cpu::LinearTarget> targets;
        for (const LinearOut& o : outs) targets.push_back({o.w, o.bias, o.y->data()});
        cpu::linears(x.data(), x.rows(), targets);
    }

    void rmsNorm(const Tensor& x, const Weight& gamma, float eps, Tensor& y) override {
        const std::vector<float> g = toFloat(gamma);
        const int64_t n = x.cols();
#pragma omp parallel for schedule(static) if (x.numel() >= cpu::kMinParallelWork)
        for (int64_t r = 0; r < x.rows(); ++r) {
            const float* xr = x.row(r);
            float* yr = y.row(r);
            // Vector partial sums (a plain float loop is one dependent add per element, and was
            // 0.9 ms of every 600-row prefill layer); the order differs from torch's too, by ~1e-7.
            float ss = 0.f;
#pragma omp simd reduction(+ : ss)
            for (int64_t i = 0; i < n; ++i) ss += xr[i] * xr[i];
            const float inv = 1.f / std::sqrt(ss / float(n) + eps);
            for (int64_t i = 0; i < n; ++i) yr[i] = g[size_t(i)] * (xr[i] * inv);
        }
    }

    void layerNorm(const Tensor& x, const Weight& gamma, const Weight& beta, float eps, Tensor& y) override {
        const std::vector<float> g = toFloat(gamma), b = toFloat(beta);
        const int64_t n = x.cols();
#pragma omp parallel for schedule(static) if (x.numel() >= cpu::kMinParallelWork)
        for (int64_t r = 0; r < x.rows(); ++r) {
            const float* xr = x.row(r);
            float* yr = y.row(r);
            float mean = 0.f;
#pragma omp simd reduction(+ : mean)
            for (int64_t i = 0; i < n; ++i) mean += xr[i];
            mean /= float(n);
            float var = 0.f;
#pragma omp simd reduction(+ : var)
            for (int64_t i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
            const float inv = 1.f / std::sqrt(var / float(n) + eps);
            for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - mean) * inv * g[size_t(i)] + b[size_t(i)];
        }
    }

    void rope(Tensor& x, int numHeads, int headDim, const std::vector<int64_t>& positions, float theta) override {
        // Frequencies in float32 as transformers computes them, so angles agree to the last bit
        // at moderate positions.
        const int half = headDim / 2;
        std::vector<float> invFreq(static_cast<size_t>(half));
        for (int i = 0; i < half; ++i) invFreq[size_t(i)] = 1.f / std::pow(theta, float(2 * i) / float(headDim));
#pragma omp parallel if (x.numel() >= cpu::kMinParallelWork)
        {
            // A row's cosines and sines once, then every head rotated by contiguous (vector) loops.
            std::vector<float> cosines(static_cast<size_t>(half)), sines(static_cast<size_t>(half));
#pragma omp for schedule(static)
            for (int64_t r = 0; r < x.rows(); ++r) {
                for (int i = 0; i < half; ++i) {
                    const float angle = float(positions[size_t(r)]) * invFreq[size_t(i)];
                    cosines[size_t(i)] = std::cos(angle), sines[size_t(i)] = std::sin(angle);
                }
                for (int h = 0; h < numHeads; ++h) {
                    float* lo = x.row(r) + int64_t(h) * headDim;
                    float* hi = lo + half;
#pragma omp simd
                    for (int i = 0; i < half; ++i) {
                        const float a = lo[i], b = hi[i];
                        lo[i] = a * cosines[size_t(i)] - b * sines[size_t(i)];
                        hi[i] = b * cosines[size_t(i)] + a * sines[size_t(i)];
                    }
                }
            }
        }
    }

    void siluMul(const Tensor& gate, const Tensor& up, Tensor& y) override {
        const float* g = gate.data();
        const float* u = up.data();
        float* o = y.data();
        parallelChunks(gate.numel(), [&](int64_t begin, int64_t end) {
            cpu::sigmoidGate(g + begin, u + begin, o + begin, end - begin, 1.f);
        });
    }

    void gelu(Tensor& x) override {
        float* p = x.data();
#pragma omp parallel for schedule(static) if (x.numel() >= cpu::kMinParallelWork)
        for (int64_t i = 0; i < x.numel(); ++i) p[i] = 0.5f * p[i] * (1.f + std::erf(p[i] * float(M_SQRT1_2)));
    }

    void quickGelu(Tensor& x) override {
        float* p = x.data();
        parallelChunks(x.numel(), [&](int64_t begin, int64_t end) {
            cpu::sigmoidGate(p + begin, nullptr, p + begin, end - begin, 1.702f);
        });
    }

    void add(Tensor& x, const Tensor& y) override {
        float* a = x.data();
        const float* b = y.data();
#pragma omp parallel for schedule(static) if (x.numel() >= cpu::kMinParallelWork)
        for (int64_t i = 0; i < x.numel(); ++i) a[i] += b[i];
    }

    void addWeightRows(Tensor& x, const Weight& w, int64_t rowOffset) override {
        std::vector<float> row(size_t(w.cols));
        const size_t elem = dtypeSize(w.dtype);
        for (int64_t r = 0; r < x.rows(); ++r) {
            cpu::convertToFloat(static_cast<const char*>(w.data) + size_t(rowOffset + r) * size_t(w.cols) * elem,
                                w.dtype, w.cols, row.data());
            float* xr = x.row(r);
            for (int64_t i = 0; i < x.cols(); ++i) xr[i] += row[size_t(i)];
        }
    }

    void copyRows(const Tensor& x, int64_t first, int64_t count, Tensor& y) override {
        std::memcpy(y.data(), x.row(first), size_t(count * x.cols()) * 4);
    }
    void writeRows(const Tensor& x, Tensor& y, int64_t rowOffset) override {
        std::memcpy(y.row(rowOffset), x.data(), size_t(x.numel()) * 4);
    }

    void selfAttention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionShape& s,
                       Tensor& out) override {
        cpu::attention(q.data(), q.rows(), k.data(), v.data(), k.rows(), k.cols(), s, false, 0, out.data(), nullptr);
    }

    void cachedAttention(const Tensor& q, const KvCache& cache, int layer, const AttentionShape& s, Tensor& out,
                         const AttentionProbe* probe) override {
        const auto& c = static_cast<const cpu::CpuKvCache&>(cache);
        const int64_t nk = c.length(layer);
        float* importance = nullptr;
        float* window = nullptr;
        int64_t windowRows = 0;
        if (probe && probe->importance) {
            probe->importance->assign(size_t(nk), 0.f);
            importance = probe->importance->data();
        }
        if (probe && probe->window && probe->windowRows > 0) {
            windowRows = std::min(probe->windowRows, q.rows());
            probe->window->assign(size_t(windowRows * nk), 0.f);
            window = probe->window->data();
        }
        const int64_t width = c.entryWidth();
        if (q.rows() == 1) {  // a decode step: reads the cache as stored
            cpu::attentionOneQuery(q.data(), c.keys(layer), c.values(layer), c.dtype(), nk, width, s, out.data(),
                                   importance, window);
            return;
        }
        // Several queries run as GEMMs on f32 rows: a 16-bit layer is widened once into pooled
        // buffers (a pass over the layer, small next to the attention's nq x nk x d work).
        if (c.dtype() == DType::F32) {
            cpu::attention(q.data(), q.rows(), static_cast<const float*>(c.keys(layer)),
                           static_cast<const float*>(c.values(layer)), nk, width, s, true, nk - q.rows(), out.data(),
                           importance, window, windowRows);
            return;
        }
        Tensor k = allocOutput(nk, width), v = allocOutput(nk, width);
        parallelChunks(nk * width, [&](int64_t begin, int64_t end) {
            cpu::convertToFloat(static_cast<const uint16_t*>(c.keys(layer)) + begin, c.dtype(), end - begin, k.data() + begin);
            cpu::convertToFloat(static_cast<const uint16_t*>(c.values(layer)) + begin, c.dtype(), end - begin,
                                v.data() + begin);
        });
        cpu::attention(q.data(), q.rows(), k.data(), v.data(), nk, width, s, true, nk - q.rows(), out.data(), importance,
                       window, windowRows);
    }

private:
    // At least one element, so that an empty tensor still has storage.
    Tensor pooled(int64_t rows, int64_t cols, bool zeroed) {
        return Tensor(BufferPool::get(pool_, size_t(std::max<int64_t>(rows * cols, 1)), zeroed), rows, cols);
    }

    std::shared_ptr<BufferPool> pool_ = std::make_shared<BufferPool>();
};

}  // namespace

std::unique_ptr<Backend> createCpuBackend() {
    // OpenMP is the only thread pool: GEMMs run single-threaded inside its blocks (cpu_linear.cpp).
    openblas_set_num_threads(1);
    return std::make_unique<CpuBackend>();
}

}  // namespace pkv
