// Backend parity: every op of the CUDA backend against the cpu backend (the oracle) on random
// inputs of awkward shapes, then whole tiny models end to end, with and without a compression
// policy. Comparisons use the normalised MSE  sum (cuda - cpu)^2 / sum cpu^2  <= 1e-6: both
// backends compute in f32 from the same stored numbers, so summation order and the device's
// expf/erff/sincosf (within 2 ulp) leave ~1e-12, and the 16-bit GEMM's split activations
// (cuda/gemm.cuh) ~1e-10 on the tiny models; any real mistake (a wrong index, mask or
// transposition) gives > 1e-2. Data movement (embedding gather, row copies, every KV cache
// operation) and the tokens a policy keeps must be exact.
// Without a usable device every test skips with "no CUDA device: <reason>".
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>

#include "common/paths.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_probe.h"
#include "cuda/register.h"
#include "engine/io/safetensors.h"
#include "engine/kv/policy_factory.h"
#include "engine/model/llava.h"
#include "engine/session.h"

using namespace pkv;

namespace {

constexpr double kTolerance = 1e-6;

double nmse(const std::vector<float>& got, const std::vector<float>& ref) {
    if (got.size() != ref.size()) return INFINITY;
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        num += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
        den += double(ref[i]) * ref[i];
    }
    return den > 0 ? num / den : num;
}

#define COMPARE_NMSE(got, ref, tol)                                                                   \
    do {                                                                                              \
        const double e_ = nmse(got, ref);                                                             \
        QVERIFY2(e_ <= (tol), qPrintable(QString("normalised MSE %1 > %2").arg(e_).arg(tol)));       \
    } while (0)

std::vector<float> randomFloats(int64_t n, std::mt19937& rng, float sd = 1.f) {
    std::normal_distribution<float> normal(0.f, sd);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = normal(rng);
    return v;
}

// A weight in host memory (as a memory-mapped file would hold it) and its view.
struct HostWeight {
    std::vector<unsigned char> bytes;
    TensorView view;
};

// Random values of magnitude ~2^-7 .. 1 in the given storage type, written as bit patterns so
// both backends widen exactly the same stored numbers.
std::unique_ptr<HostWeight> randomWeight(int64_t rows, int64_t cols, DType type, std::mt19937& rng) {
    auto w = std::make_unique<HostWeight>();
    const int64_t n = rows * cols;
    w->bytes.resize(size_t(n) * dtypeSize(type));
    std::uniform_int_distribution<uint32_t> bits;
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t r = bits(rng), sign = r & 1;
        if (type == DType::F32) {
            const float f = (sign ? -1.f : 1.f) * float((r >> 1) % 100000) / 100000.f;
            std::memcpy(&w->bytes[size_t(i) * 4], &f, 4);
        } else if (type == DType::F16) {
            const uint16_t h = uint16_t(sign << 15 | (8 + (r >> 1) % 7) << 10 | (r >> 4) % 1024);
            std::memcpy(&w->bytes[size_t(i) * 2], &h, 2);
        } else {
            const uint16_t b = uint16_t(sign << 15 | (120 + (r >> 1) % 7) << 7 | (r >> 4) % 128);
            std::memcpy(&w->bytes[size_t(i) * 2], &b, 2);
        }
    }
    w->view.name = "test.weight";
    w->view.dtypeText = dtypeName(type);
    w->view.dtypeSupported = true;
    w->view.dtype = type;
    w->view.shape = {rows, cols};
    w->view.data = reinterpret_cast<const std::byte*>(w->bytes.data());
    w->view.nbytes = w->bytes.size();
    w->view.file = "test";
    return w;
}

std::vector<float> download(const Backend& be, const Tensor& t) {
    std::vector<float> v(size_t(t.numel()));
    be.download(t, v.data());
    return v;
}

QString dtypeLabel(DType t) { return dtypeName(t); }

QJsonObject readJson(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) qFatal("cannot read %s", qPrintable(path));
    return QJsonDocument::fromJson(f.readAll()).object();
}

}  // namespace

Q_DECLARE_METATYPE(pkv::DType)

class TestBackendParity : public QObject {
    Q_OBJECT
    std::unique_ptr<Backend> cpu_;
    std::unique_ptr<cuda::CudaBackend> gpu_;
    std::mt19937 rng_{1234};

    // The same host values on both backends.
    std::pair<Tensor, Tensor> tensors(const std::vector<float>& host, int64_t rows, int64_t cols) {
        return {cpu_->upload(host.data(), rows, cols), gpu_->upload(host.data(), rows, cols)};
    }

private slots:
    void initTestCase() {
        const cuda::DeviceProbe p = cuda::probeDevice();
        if (!p.usable) QSKIP(qPrintable(QString("no CUDA device: ") + QString::fromStdString(p.reason)));
        cpu_ = createCpuBackend();
        gpu_ = std::make_unique<cuda::CudaBackend>();
        QCOMPARE(QString::fromStdString(gpu_->name()), QString("cuda"));
    }

    void embedRows_data() {
        QTest::addColumn<DType>("type");
        QTest::addColumn<int>("cols");
        for (DType t : {DType::F32, DType::F16, DType::BF16})
            for (int cols : {1, 37, 4099})
                QTest::addRow("%s x %d", dtypeName(t), cols) << t << cols;
    }
    void embedRows() {
        QFETCH(DType, type);
        QFETCH(int, cols);
        const int64_t vocab = 301;
        auto table = randomWeight(vocab, cols, type, rng_);
        const std::vector<int> ids{0, 300, 17, 17, 5, 299, 1};
        Tensor a = cpu_->alloc(int64_t(ids.size()), cols), b = gpu_->alloc(int64_t(ids.size()), cols);
        const Weight onGpu = gpu_->weight(table->view, vocab, cols);
        cpu_->embedRows(cpu_->weight(table->view, vocab, cols), ids, a);
        gpu_->embedRows(onGpu, ids, b);
        QCOMPARE(download(*gpu_, b), download(*cpu_, a));
        // Ids outside the table are the user's error, as on the cpu.
        Tensor one = gpu_->alloc(1, cols);
        QVERIFY_THROWS_EXCEPTION(Error, gpu_->embedRows(onGpu, {int(vocab)}, one));
        QVERIFY_THROWS_EXCEPTION(Error, gpu_->embedRows(onGpu, {-1}, one));
    }

    void linear_data() {
        QTest::addColumn<DType>("type");
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("in");
        QTest::addColumn<int>("out");
        QTest::addColumn<bool>("bias");
        for (DType t : {DType::F32, DType::F16, DType::BF16})
            for (int n : {1, 3, 4, 5, 17, 130})
                for (auto [in, out] : {std::pair{64, 96}, std::pair{7, 5}, std::pair{1000, 333}}) {
                    QTest::addRow("%s n%d %dx%d", dtypeName(t), n, in, out) << t << n << in << out << false;
                    if (n == 5) QTest::addRow("%s n%d %dx%d bias", dtypeName(t), n, in, out) << t << n << in << out << true;
                }
    }
    // n <= 4 runs the GEMV kernel (f32 arithmetic on exact weights); larger n goes to cuBLAS,
    // with activations split into two halves of the weights' type when those are 16-bit.
    void linear() {
        QFETCH(DType, type);
        QFETCH(int, n);
        QFETCH(int, in);
        QFETCH(int, out);
        QFETCH(bool, bias);
        auto w = randomWeight(out, in, type, rng_);
        auto b = randomWeight(1, out, type, rng_);
        auto [xa, xb] = tensors(randomFloats(int64_t(n) * in, rng_), n, in);
        Tensor ya = cpu_->alloc(n, out), yb = gpu_->alloc(n, out);
        const Weight wa = cpu_->weight(w->view, out, in), wb = gpu_->weight(w->view, out, in);
        const Weight ba = cpu_->weight(b->view, 1, out), bb = gpu_->weight(b->view, 1, out);
        cpu_->linear(xa, wa, bias ? &ba : nullptr, ya);
        gpu_->linear(xb, wb, bias ? &bb : nullptr, yb);
        COMPARE_NMSE(download(*gpu_, yb), download(*cpu_, ya), kTolerance);
    }

    void norms_data() {
        QTest::addColumn<DType>("type");
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("cols");
        for (DType t : {DType::F32, DType::F16, DType::BF16})
            for (auto [rows, cols] : {std::pair{1, 1}, std::pair{3, 37}, std::pair{65, 4096 + 3}})
                QTest::addRow("%s %dx%d", dtypeName(t), rows, cols) << t << rows << cols;
    }
    void norms() {
        QFETCH(DType, type);
        QFETCH(int, rows);
        QFETCH(int, cols);
        auto g = randomWeight(1, cols, type, rng_), b = randomWeight(1, cols, type, rng_);
        // An offset mean checks LayerNorm's two-pass variance.
        std::vector<float> host = randomFloats(int64_t(rows) * cols, rng_, 3.f);
        for (float& x : host) x += 5.f;
        auto [xa, xb] = tensors(host, rows, cols);
        Tensor ya = cpu_->alloc(rows, cols), yb = gpu_->alloc(rows, cols);
        cpu_->rmsNorm(xa, cpu_->weight(g->view, 1, cols), 1e-6f, ya);
        gpu_->rmsNorm(xb, gpu_->weight(g->view, 1, cols), 1e-6f, yb);
        COMPARE_NMSE(download(*gpu_, yb), download(*cpu_, ya), kTolerance);
        cpu_->layerNorm(xa, cpu_->weight(g->view, 1, cols), cpu_->weight(b->view, 1, cols), 1e-5f, ya);
        gpu_->layerNorm(xb, gpu_->weight(g->view, 1, cols), gpu_->weight(b->view, 1, cols), 1e-5f, yb);
        COMPARE_NMSE(download(*gpu_, yb), download(*cpu_, ya), kTolerance);
    }

    void rope_data() {
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("headDim");
        QTest::addColumn<float>("theta");
        QTest::addColumn<QVector<qint64>>("positions");
        QTest::newRow("prefill 16x4") << 4 << 16 << 10000.f << QVector<qint64>{0, 1, 2, 3, 4, 5, 6};
        QTest::newRow("decode at 4095, 32x128") << 32 << 128 << 10000.f << QVector<qint64>{4095};
        QTest::newRow("scattered, theta 1e6") << 8 << 64 << 1e6f << QVector<qint64>{9, 2, 2, 4000, 0};
        QTest::newRow("chunk from 3000, d 80") << 3 << 80 << 10000.f << QVector<qint64>{3000, 3001, 3002};
    }
    void rope() {
        QFETCH(int, heads);
        QFETCH(int, headDim);
        QFETCH(float, theta);
        QFETCH(QVector<qint64>, positions);
        const std::vector<int64_t> pos(positions.begin(), positions.end());
        const int64_t rows = int64_t(pos.size()), cols = int64_t(heads) * headDim + 5;  // extra columns untouched
        auto [a, b] = tensors(randomFloats(rows * cols, rng_), rows, cols);
        cpu_->rope(a, heads, headDim, pos, theta);
        gpu_->rope(b, heads, headDim, pos, theta);
        COMPARE_NMSE(download(*gpu_, b), download(*cpu_, a), kTolerance);
    }

    void elementwise() {
        const int64_t rows = 7, cols = 1031;
        const std::vector<float> g = randomFloats(rows * cols, rng_, 4.f), u = randomFloats(rows * cols, rng_);
        auto [ga, gb] = tensors(g, rows, cols);
        auto [ua, ub] = tensors(u, rows, cols);
        Tensor ya = cpu_->alloc(rows, cols), yb = gpu_->alloc(rows, cols);
        cpu_->siluMul(ga, ua, ya);
        gpu_->siluMul(gb, ub, yb);
        COMPARE_NMSE(download(*gpu_, yb), download(*cpu_, ya), kTolerance);
        cpu_->add(ya, ua);
        gpu_->add(yb, ub);
        COMPARE_NMSE(download(*gpu_, yb), download(*cpu_, ya), kTolerance);
        cpu_->gelu(ga);
        gpu_->gelu(gb);
        COMPARE_NMSE(download(*gpu_, gb), download(*cpu_, ga), kTolerance);
        cpu_->quickGelu(ua);
        gpu_->quickGelu(ub);
        COMPARE_NMSE(download(*gpu_, ub), download(*cpu_, ua), kTolerance);
    }

    void rowOps_data() {
        QTest::addColumn<DType>("type");
        for (DType t : {DType::F32, DType::F16, DType::BF16}) QTest::newRow(dtypeName(t)) << t;
    }
    void rowOps() {
        QFETCH(DType, type);
        const int64_t rows = 17, cols = 45;
        auto pos = randomWeight(rows + 3, cols, type, rng_);
        auto [xa, xb] = tensors(randomFloats(rows * cols, rng_), rows, cols);
        cpu_->addWeightRows(xa, cpu_->weight(pos->view, rows + 3, cols), 2);
        gpu_->addWeightRows(xb, gpu_->weight(pos->view, rows + 3, cols), 2);
        QCOMPARE(download(*gpu_, xb), download(*cpu_, xa));  // one exact add per element

        Tensor ca = cpu_->alloc(5, cols), cb = gpu_->alloc(5, cols);
        cpu_->copyRows(xa, 11, 5, ca);
        gpu_->copyRows(xb, 11, 5, cb);
        QCOMPARE(download(*gpu_, cb), download(*cpu_, ca));
        Tensor wa = cpu_->alloc(9, cols), wb = gpu_->alloc(9, cols);  // fresh tensors are zero on both
        cpu_->writeRows(ca, wa, 3);
        gpu_->writeRows(cb, wb, 3);
        QCOMPARE(download(*gpu_, wb), download(*cpu_, wa));
    }

    void selfAttention_data() {
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("headDim");
        QTest::newRow("one token") << 1 << 2 << 16;
        QTest::newRow("tiny vision 17 tokens") << 17 << 4 << 16;
        QTest::newRow("CLIP-L 577 tokens") << 577 << 16 << 64;
        QTest::newRow("head 80") << 50 << 3 << 80;
        QTest::newRow("head 256") << 40 << 2 << 256;
    }
    void selfAttention() {
        QFETCH(int, n);
        QFETCH(int, heads);
        QFETCH(int, headDim);
        const int64_t width = int64_t(heads) * headDim;
        auto [qa, qb] = tensors(randomFloats(n * width, rng_), n, width);
        auto [ka, kb] = tensors(randomFloats(n * width, rng_), n, width);
        auto [va, vb] = tensors(randomFloats(n * width, rng_), n, width);
        const AttentionShape s{heads, heads, headDim, 1.f / std::sqrt(float(headDim))};
        Tensor oa = cpu_->alloc(n, width), ob = gpu_->alloc(n, width);
        cpu_->selfAttention(qa, ka, va, s, oa);
        gpu_->selfAttention(qb, kb, vb, s, ob);
        COMPARE_NMSE(download(*gpu_, ob), download(*cpu_, oa), kTolerance);
    }

    void cachedAttention_data() {
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("headDim");
        QTest::addColumn<int>("past");  // entries already in the cache
        QTest::addColumn<int>("nq");
        QTest::addColumn<int>("windowRows");
        QTest::newRow("tiny prefill 107") << 4 << 2 << 16 << 0 << 107 << 8;
        QTest::newRow("prefill 4096, GQA 8/2, d128") << 8 << 2 << 128 << 0 << 4096 << 40;
        QTest::newRow("chunk 77 after 300") << 6 << 3 << 64 << 300 << 77 << 77;
        QTest::newRow("decode after 4095, 32/8") << 32 << 8 << 128 << 4095 << 1 << 1;
        QTest::newRow("decode after 10, MHA") << 4 << 4 << 16 << 10 << 1 << 0;
        QTest::newRow("two queries after 999") << 4 << 1 << 64 << 999 << 2 << 2;
        QTest::newRow("window longer than queries") << 2 << 2 << 80 << 33 << 9 << 20;
        QTest::newRow("head 256") << 2 << 1 << 256 << 64 << 70 << 5;
    }
    // Output, importance and window rows; the cache is filled in two appends (past, then the
    // queries' own keys) as a prefill followed by a chunk or a decode step would.
    void cachedAttention() {
        QFETCH(int, heads);
        QFETCH(int, kvHeads);
        QFETCH(int, headDim);
        QFETCH(int, past);
        QFETCH(int, nq);
        QFETCH(int, windowRows);
        const int64_t qWidth = int64_t(heads) * headDim, kvWidth = int64_t(kvHeads) * headDim;
        auto ca = cpu_->createKvCache(1, int(kvWidth), DType::F32);
        auto cb = gpu_->createKvCache(1, int(kvWidth), DType::F32);
        for (auto [first, count] : {std::pair<int64_t, int64_t>{0, past}, {past, nq}}) {
            if (count == 0) continue;
            auto [ka, kb] = tensors(randomFloats(count * kvWidth, rng_), count, kvWidth);
            auto [va, vb] = tensors(randomFloats(count * kvWidth, rng_), count, kvWidth);
            ca->append(0, ka, va, first);
            cb->append(0, kb, vb, first);
        }
        auto [qa, qb] = tensors(randomFloats(nq * qWidth, rng_), nq, qWidth);
        const AttentionShape s{heads, kvHeads, headDim, 1.f / std::sqrt(float(headDim))};
        std::vector<float> impA, impB, winA, winB;
        const AttentionProbe pa{&impA, windowRows > 0 ? &winA : nullptr, windowRows};
        const AttentionProbe pb{&impB, windowRows > 0 ? &winB : nullptr, windowRows};
        Tensor oa = cpu_->alloc(nq, qWidth), ob = gpu_->alloc(nq, qWidth);
        cpu_->cachedAttention(qa, *ca, 0, s, oa, &pa);
        gpu_->cachedAttention(qb, *cb, 0, s, ob, &pb);
        COMPARE_NMSE(download(*gpu_, ob), download(*cpu_, oa), kTolerance);
        QCOMPARE(impB.size(), size_t(past + nq));
        COMPARE_NMSE(impB, impA, kTolerance);
        // Each query's probabilities sum to one, so importance sums to the number of queries.
        QVERIFY(std::abs(std::accumulate(impB.begin(), impB.end(), 0.0) - nq) <= 1e-3 * nq);
        QCOMPARE(winB.size(), winA.size());
        COMPARE_NMSE(winB, winA, kTolerance);
        for (size_t i = 0; i < winA.size(); ++i)
            if (winA[i] == 0.f) QCOMPARE(winB[i], 0.f);  // keys a query cannot see

        // Without a probe the output is the same and nothing is written to probe vectors.
        Tensor ob2 = gpu_->alloc(nq, qWidth);
        gpu_->cachedAttention(qb, *cb, 0, s, ob2, nullptr);
        COMPARE_NMSE(download(*gpu_, ob2), download(*gpu_, ob), 1e-12);
    }

    // Ragged layers through append, gather, erase, overwrite, clone: entries and token indices
    // must match the cpu cache exactly after every step.
    void kvCacheOps() {
        const int width = 24;
        auto a = cpu_->createKvCache(3, width, DType::F32);
        auto b = gpu_->createKvCache(3, width, DType::F32);
        auto same = [&](const KvCache& x, const KvCache& y) {
            for (int l = 0; l < 3; ++l) {
                if (x.tokenIndices(l) != y.tokenIndices(l)) return false;
                if (y.capacity(l) < y.length(l)) return false;
                std::vector<float> kx, vx, ky, vy;
                for (int64_t i = 0; i < x.length(l); ++i) {
                    x.read(l, i, kx, vx);
                    y.read(l, i, ky, vy);
                    if (kx != ky || vx != vy) return false;
                }
            }
            return true;
        };
        for (int l = 0; l < 3; ++l)
            for (int64_t n : {int64_t(100), int64_t(1), int64_t(70)}) {  // crosses the initial capacity
                const int64_t first = a->length(l);
                auto [ka, kb] = tensors(randomFloats(n * width, rng_), n, width);
                auto [va, vb] = tensors(randomFloats(n * width, rng_), n, width);
                a->append(l, ka, va, first);
                b->append(l, kb, vb, first);
            }
        QVERIFY(same(*a, *b));
        for (int l = 0; l < 3; ++l) QCOMPARE(b->capacity(l), a->capacity(l));  // the same growth rule
        auto snapshot = b->clone();
        const std::vector<int64_t> keep{0, 3, 4, 99, 100, 169, 170};
        a->gather(0, keep);
        b->gather(0, keep);
        a->gather(2, {});
        b->gather(2, {});
        a->erase(1, 0);
        b->erase(1, 0);
        a->erase(1, 57);
        b->erase(1, 57);
        a->erase(1, a->length(1) - 1);
        b->erase(1, b->length(1) - 1);
        const std::vector<float> k(width, 0.25f), v(width, -4.f);
        a->overwrite(0, 2, k, v);
        b->overwrite(0, 2, k, v);
        QVERIFY(same(*a, *b));
        QCOMPARE(b->length(0), int64_t(keep.size()));
        QCOMPARE(b->length(2), int64_t(0));
        QCOMPARE(b->bytesUsed(), a->bytesUsed());
        QVERIFY_THROWS_EXCEPTION(std::out_of_range, b->gather(0, {1, 1}));
        QVERIFY_THROWS_EXCEPTION(std::out_of_range, b->erase(2, 0));
        // The clone taken before the edits is untouched by them.
        QCOMPARE(snapshot->length(0), int64_t(171));
        QCOMPARE(snapshot->length(2), int64_t(171));
        QCOMPARE(snapshot->tokenIndices(1).front(), int64_t(0));
        QCOMPARE(b->tokenIndices(1).front(), int64_t(1));
        std::vector<float> ks, vs, kb1, vb1;
        snapshot->read(1, 1, ks, vs);  // old entry 1 is entry 0 of b now
        b->read(1, 0, kb1, vb1);
        QCOMPARE(ks, kb1);
        QCOMPARE(vs, vb1);
    }

    // Host memory handed to the backend may be reused as soon as the call returns, also when
    // the copy is still queued behind other work on the stream (cuda/device_context.h, upload()).
    void hostSourcesAreCopiedAtOnce() {
        const int64_t rows = 64, cols = 4096;  // 1 MiB, queued behind a large matrix product
        auto w = randomWeight(cols, cols, DType::F16, rng_);
        const Weight wb = gpu_->weight(w->view, cols, cols);
        auto [xa, xb] = tensors(randomFloats(512 * cols, rng_), 512, cols);
        Tensor busy = gpu_->alloc(512, cols);
        gpu_->linear(xb, wb, nullptr, busy);
        std::vector<float> host = randomFloats(rows * cols, rng_);
        const std::vector<float> expected = host;
        Tensor t = gpu_->upload(host.data(), rows, cols);
        std::fill(host.begin(), host.end(), -1.f);
        QCOMPARE(download(*gpu_, t), expected);

        auto cache = gpu_->createKvCache(1, 8, DType::F32);
        auto [ka, kb] = tensors(randomFloats(3 * 8, rng_), 3, 8);
        cache->append(0, kb, kb, 0);
        std::vector<float> k(8, 1.5f), v(8, -2.5f), backK, backV;
        cache->overwrite(0, 1, k, v);
        std::fill(k.begin(), k.end(), 0.f);
        cache->read(0, 1, backK, backV);
        QCOMPARE(backK, std::vector<float>(8, 1.5f));
        QCOMPARE(backV, std::vector<float>(8, -2.5f));
    }

    // A cache lives on its backend's stream; another CUDA backend must refuse to read it.
    void foreignCacheIsRefused() {
        cuda::CudaBackend other;
        auto cache = other.createKvCache(1, 16, DType::F32);
        Tensor kv = other.alloc(2, 16);
        cache->append(0, kv, kv, 0);
        Tensor q = gpu_->alloc(2, 16), out = gpu_->alloc(2, 16);
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument,
                                 gpu_->cachedAttention(q, *cache, 0, AttentionShape{1, 1, 16, 0.25f}, out, nullptr));
    }

    void argmax() {
        const int64_t rows = 4, cols = 32064;
        std::vector<float> host = randomFloats(rows * cols, rng_);
        host[size_t(1 * cols + 5)] = 50.f;  // a tie: the first maximum wins
        host[size_t(1 * cols + 9)] = 50.f;
        host[size_t(2 * cols + cols - 1)] = 60.f;
        host[size_t(3 * cols + 0)] = std::nanf("");
        Tensor t = gpu_->upload(host.data(), rows, cols);
        const std::vector<int> got = gpu_->argmaxRows(t);
        QCOMPARE(got[1], 5);
        QCOMPARE(got[2], int(cols - 1));
        for (int64_t r : {0, 3}) {
            const float* row = host.data() + r * cols;
            int best = r == 3 ? 1 : 0;
            for (int c = best + 1; c < cols; ++c)
                if (row[c] > row[best]) best = c;
            QCOMPARE(got[size_t(r)], best);
        }
    }

    void wholeModel_data() {
        QTest::addColumn<QString>("name");
        for (const char* name : {"tiny-gqa-f32", "tiny-gqa-f16", "tiny-mha-bf16"}) QTest::newRow(name) << name;
    }
    // Vision tower, prompt logits and importance, then 16 greedy steps: same ids, close logits.
    void wholeModel() {
        QFETCH(QString, name);
        Pair m = loadPair(name);
        const std::vector<float> pixels = goldenPixels(name);
        COMPARE_NMSE(download(m.gpu->backend(), m.gpu->visionFeatures(pixels)),
                     download(m.cpu->backend(), m.cpu->visionFeatures(pixels)), kTolerance);

        const std::string prompt = goldenPrompt(name);
        Session a(m.cpu), b(m.gpu);
        a.keepAllPromptLogits(true);
        b.keepAllPromptLogits(true);
        a.prefillPixels(prompt, &pixels);
        b.prefillPixels(prompt, &pixels);
        COMPARE_NMSE(b.promptLogits(), a.promptLogits(), kTolerance);
        QCOMPARE(b.importance().size(), a.importance().size());
        for (size_t l = 0; l < a.importance().size(); ++l) COMPARE_NMSE(b.importance()[l], a.importance()[l], kTolerance);
        QCOMPARE(b.attentionWindowRows(), a.attentionWindowRows());
        for (size_t l = 0; l < a.attentionWindow().size(); ++l)
            COMPARE_NMSE(b.attentionWindow()[l], a.attentionWindow()[l], kTolerance);
        for (int step = 0; step < 16; ++step) {
            COMPARE_NMSE(b.logits(), a.logits(), kTolerance);
            const int ta = greedy(a), tb = greedy(b);
            QCOMPARE(tb, ta);
            a.feed(ta);
            b.feed(tb);
        }
    }

    // PrefixKV at 50% on both backends: the importance decides which tokens every layer keeps,
    // so the kept token indices must be identical after the prefill and after every one of 10
    // greedy steps (each may evict one entry per layer), and so must the greedy ids.
    void prefixKvPolicy() {
        const QString name = "tiny-gqa-f32";
        Pair m = loadPair(name);
        const std::vector<float> pixels = goldenPixels(name);
        const int layers = m.cpu->config().text.numLayers;
        PolicySpec spec;
        spec.method = "prefixkv";
        spec.budget = Budget::keptPercent(50);
        Session a(m.cpu), b(m.gpu);
        a.setPolicy(makePolicy(spec, layers));
        b.setPolicy(makePolicy(spec, layers));
        const std::string prompt = goldenPrompt(name);
        a.prefillPixels(prompt, &pixels);
        b.prefillPixels(prompt, &pixels);
        const int64_t n = a.stats().promptTokens;
        // The first layer whose kept tokens differ, or -1.
        auto differingLayer = [&] {
            for (int l = 0; l < layers; ++l)
                if (b.cache()->tokenIndices(l) != a.cache()->tokenIndices(l)) return l;
            return -1;
        };
        QCOMPARE(differingLayer(), -1);
        QCOMPARE(b.cache()->bytesUsed(), a.cache()->bytesUsed());
        int64_t kept = 0;
        for (int l = 0; l < layers; ++l) kept += a.cache()->length(l);
        QVERIFY2(kept < int64_t(layers) * n, "the policy evicted nothing, so the check above proves little");
        for (int step = 0; step < 10; ++step) {
            const int ta = greedy(a), tb = greedy(b);
            QCOMPARE(tb, ta);
            a.feed(ta);
            b.feed(tb);
            QVERIFY2(differingLayer() == -1, qPrintable(QString("after step %1, layer %2 keeps other tokens")
                                                            .arg(step + 1)
                                                            .arg(differingLayer())));
        }
        QCOMPARE(b.cache()->bytesUsed(), a.cache()->bytesUsed());
    }

private:
    struct Pair {
        std::shared_ptr<LlavaModel> cpu, gpu;
    };
    static Pair loadPair(const QString& name) {
        cuda::registerBackend();
        const std::string dir = pkvtest::str(pkvtest::fixturesDir() + "/models/" + name);
        LoadOptions cpu, gpu;
        cpu.device = DeviceChoice::Cpu;
        gpu.device = DeviceChoice::Cuda;
        cpu.kvDtype = KvDtypeChoice::F32;  // the device cache is f32; compare like with like
        gpu.kvDtype = KvDtypeChoice::F32;
        Pair p{LlavaModel::load(dir, cpu), LlavaModel::load(dir, gpu)};
        if (p.gpu->backend().name() != "cuda" || !QString::fromStdString(p.gpu->deviceReason()).startsWith("cuda: "))
            qFatal("%s was not loaded on the CUDA backend: %s", qPrintable(name), p.gpu->deviceReason().c_str());
        return p;
    }
    static std::vector<float> goldenPixels(const QString& name) {
        auto gold = SafetensorsFile::open(pkvtest::str(pkvtest::fixturesDir() + "/golden/" + name + ".safetensors"));
        const TensorView* px = gold->find("pixels");
        if (!px) qFatal("no pixels in the golden of %s", qPrintable(name));
        std::vector<float> pixels(size_t(px->numel()));
        std::memcpy(pixels.data(), px->data, px->nbytes);
        return pixels;
    }
    static std::string goldenPrompt(const QString& name) {
        return readJson(pkvtest::fixturesDir() + "/golden/" + name + ".json")["prompt"].toString().toStdString();
    }
    // The first maximum, as Session's greedy sampling picks.
    static int greedy(const Session& s) {
        return int(std::max_element(s.logits().begin(), s.logits().end()) - s.logits().begin());
    }
};

QTEST_APPLESS_MAIN(TestBackendParity)
#include "test_backend_parity.moc"
