#include "engine/backend/profiling_backend.h"

namespace pkv {

// Memory management and weight mapping are not ops of a forward pass: passed through untimed.
Tensor ProfilingBackend::alloc(int64_t rows, int64_t cols) { return inner_->alloc(rows, cols); }
Tensor ProfilingBackend::allocOutput(int64_t rows, int64_t cols) { return inner_->allocOutput(rows, cols); }
Tensor ProfilingBackend::upload(const float* host, int64_t rows, int64_t cols) {
    return inner_->upload(host, rows, cols);
}
void ProfilingBackend::download(const Tensor& t, float* host) const {
    timed("download", [&] { inner_->download(t, host); });
}
Weight ProfilingBackend::weight(const TensorView& view, int64_t rows, int64_t cols) {
    return inner_->weight(view, rows, cols);
}
std::unique_ptr<KvCache> ProfilingBackend::createKvCache(int numLayers, int entryWidth, DType dtype) {
    return inner_->createKvCache(numLayers, entryWidth, dtype);
}

void ProfilingBackend::embedRows(const Weight& table, const std::vector<int>& ids, Tensor& y) {
    timed("embedRows", [&] { inner_->embedRows(table, ids, y); });
}
// Linears are told apart by weight shape (out x in), which separates the vision tower, the
// projector and each decoder projection.
void ProfilingBackend::linear(const Tensor& x, const Weight& w, const Weight* bias, Tensor& y) {
    timed("linear " + std::to_string(w.rows) + "x" + std::to_string(w.cols), [&] { inner_->linear(x, w, bias, y); });
}
void ProfilingBackend::linearMany(const Tensor& x, const std::vector<LinearOut>& outs) {
    std::string op = "linear";
    for (size_t i = 0; i < outs.size(); ++i)
        op += (i ? " + " : " ") + std::to_string(outs[i].w->rows) + "x" + std::to_string(outs[i].w->cols);
    timed(op, [&] { inner_->linearMany(x, outs); });
}
void ProfilingBackend::rmsNorm(const Tensor& x, const Weight& gamma, float eps, Tensor& y) {
    timed("rmsNorm", [&] { inner_->rmsNorm(x, gamma, eps, y); });
}
void ProfilingBackend::layerNorm(const Tensor& x, const Weight& gamma, const Weight& beta, float eps, Tensor& y) {
    timed("layerNorm", [&] { inner_->layerNorm(x, gamma, beta, eps, y); });
}
void ProfilingBackend::rope(Tensor& x, int numHeads, int headDim, const std::vector<int64_t>& positions,
                            float theta) {
    timed("rope", [&] { inner_->rope(x, numHeads, headDim, positions, theta); });
}
void ProfilingBackend::siluMul(const Tensor& gate, const Tensor& up, Tensor& y) {
    timed("siluMul", [&] { inner_->siluMul(gate, up, y); });
}
void ProfilingBackend::gelu(Tensor& x) { timed("gelu", [&] { inner_->gelu(x); }); }
void ProfilingBackend::quickGelu(Tensor& x) { timed("quickGelu", [&] { inner_->quickGelu(x); }); }
void ProfilingBackend::add(Tensor& x, const Tensor& y) { timed("add", [&] { inner_->add(x, y); }); }
void ProfilingBackend::addWeightRows(Tensor& x, const Weight& w, int64_t rowOffset) {
    timed("addWeightRows", [&] { inner_->addWeightRows(x, w, rowOffset); });
}
void ProfilingBackend::copyRows(const Tensor& x, int64_t first, int64_t count, Tensor& y) {
    timed("copyRows", [&] { inner_->copyRows(x, first, count, y); });
}
void ProfilingBackend::writeRows(const Tensor& x, Tensor& y, int64_t rowOffset) {
    timed("writeRows", [&] { inner_->writeRows(x, y, rowOffset); });
}
void ProfilingBackend::selfAttention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionShape& s,
                                     Tensor& out) {
    timed("selfAttention", [&] { inner_->selfAttention(q, k, v, s, out); });
}
void ProfilingBackend::cachedAttention(const Tensor& q, const KvCache& cache, int layer, const AttentionShape& s,
                                       Tensor& out, const AttentionProbe* probe) {
    timed("cachedAttention", [&] { inner_->cachedAttention(q, cache, layer, s, out, probe); });
}

}  // namespace pkv
