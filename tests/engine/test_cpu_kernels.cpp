// The cpu backend's hand-written kernels against plain double-precision references: the
// vectorised exp (softmax, SiLU, quick-GELU), the linear layer on each path (the decode
// streaming kernel with its prefetching, n > 1 streaming, the sgemm panels) for f32/f16/bf16
// weights, and attention on each schedule (one query, a few, many) with importance and window
// rows. Sizes are chosen to leave remainders for every unrolled loop (rows not a multiple of 4,
// columns not a multiple of 32 or 8). The whole models are held to transformers elsewhere
// (test_model_golden); these catch a kernel error at its source and at sizes the tiny models
// do not reach. The f16 key/value cache: the float -> half rounding, the cache's storage ops, and
// attention reading it, against the same references on the rounded entries.
#include <QtTest>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "engine/backend/cpu/cpu_exp.h"
#include "engine/backend/cpu/cpu_kernels.h"
#include "engine/backend/cpu/cpu_kv_cache.h"
#include "engine/backend/cpu/cpu_widen.h"
#include "engine/common/dtype.h"

using namespace pkv;

namespace {

// Random 16-bit weights as stored bits (magnitudes 1/8 .. 4, both signs), plus the exact f32
// value of each.
struct Weights16 {
    std::vector<uint16_t> bits;
    std::vector<float> values;
};

Weights16 randomWeights(DType t, int64_t n, std::mt19937& rng) {
    std::uniform_int_distribution<int> sign(0, 1), exponent(-3, 1), mantissa(0, 1023);
    Weights16 w;
    for (int64_t i = 0; i < n; ++i) {
        uint16_t b = 0;
        if (t == DType::F16)
            b = uint16_t(sign(rng) << 15 | (exponent(rng) + 15) << 10 | mantissa(rng));
        else
            b = uint16_t(sign(rng) << 15 | (exponent(rng) + 127) << 7 | (mantissa(rng) & 127));
        w.bits.push_back(b);
        w.values.push_back(t == DType::F16 ? halfToFloat(b) : bf16ToFloat(b));
    }
    return w;
}

std::vector<float> randomFloats(int64_t n, std::mt19937& rng, float scale = 1.f) {
    std::normal_distribution<float> d(0.f, scale);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = d(rng);
    return v;
}

// y = x W^T in double; `bound` gets Σ|x w| per output, the scale of f32 rounding error.
void referenceLinear(const std::vector<float>& x, int64_t n, const std::vector<float>& w, int64_t out, int64_t in,
                     std::vector<double>& y, std::vector<double>& bound) {
    y.assign(size_t(n * out), 0.0);
    bound.assign(size_t(n * out), 0.0);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t r = 0; r < out; ++r)
            for (int64_t c = 0; c < in; ++c) {
                const double p = double(x[size_t(i * in + c)]) * double(w[size_t(r * in + c)]);
                y[size_t(i * out + r)] += p;
                bound[size_t(i * out + r)] += std::fabs(p);
            }
}

// Plain softmax attention in double, causal or not, with head-averaged importance and window.
void referenceAttention(const std::vector<float>& q, int64_t nq, const std::vector<float>& k,
                        const std::vector<float>& v, int64_t nk, const AttentionShape& s, bool causal,
                        int64_t windowRows, std::vector<double>& out, std::vector<double>& importance,
                        std::vector<double>& window) {
    const int H = s.numHeads, d = s.headDim, group = s.numHeads / s.numKvHeads;
    const int64_t kvStride = int64_t(s.numKvHeads) * d, keyOffset = nk - nq;
    out.assign(size_t(nq * H * d), 0.0);
    importance.assign(size_t(nk), 0.0);
    window.assign(size_t(windowRows * nk), 0.0);
    for (int64_t i = 0; i < nq; ++i)
        for (int h = 0; h < H; ++h) {
            const int64_t visible = causal ? keyOffset + i + 1 : nk;
            const int64_t kvOff = int64_t(h / group) * d;
            std::vector<double> p(static_cast<size_t>(visible));
            double mx = -1e300, sum = 0;
            for (int64_t j = 0; j < visible; ++j) {
                double dot = 0;
                for (int t = 0; t < d; ++t) dot += double(q[size_t(i * H * d + h * d + t)]) * k[size_t(j * kvStride + kvOff + t)];
                p[size_t(j)] = dot * s.scale;
                mx = std::max(mx, p[size_t(j)]);
            }
            for (double& e : p) sum += (e = std::exp(e - mx));
            for (int64_t j = 0; j < visible; ++j) {
                const double pj = p[size_t(j)] / sum;
                for (int t = 0; t < d; ++t) out[size_t(i * H * d + h * d + t)] += pj * v[size_t(j * kvStride + kvOff + t)];
                importance[size_t(j)] += pj / H;
                if (i >= nq - windowRows) window[size_t((i - (nq - windowRows)) * nk + j)] += pj / H;
            }
        }
}

}  // namespace

class TestCpuKernels : public QObject {
    Q_OBJECT
private slots:
    // Relative error about 1 ulp where exp is a normal float; 0 where expf underflows to 0.
    void expMatchesStdExp() {
        std::vector<float> x;
        for (float t = -110.f; t <= 88.3f; t += 0.0137f) x.push_back(t);
        for (float t : {0.f, -0.f, 1e-8f, -1e-8f, 88.37f, -87.3f, -103.8f, -104.f}) x.push_back(t);
        std::vector<float> y(x.size());
        const float sum = cpu::expShiftedSum(x.data(), y.data(), int64_t(x.size()), 0.f);
        double refSum = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            const double ref = std::exp(double(x[i]));
            refSum += ref;
            if (x[i] >= -87.f) {
                if (std::fabs(y[i] - ref) > 2.5e-7 * ref)
                    QFAIL(qPrintable(QString("exp(%1) = %2, expected %3").arg(x[i]).arg(y[i]).arg(ref)));
            } else if (x[i] < -104.f) {
                QCOMPARE(y[i], 0.f);
            } else {
                QVERIFY(y[i] >= 0.f && y[i] <= 1.7e-38f);  // at most exp(-87)
            }
        }
        QVERIFY(std::isinf(sum) && std::isinf(float(refSum)));  // the sum of such values overflows f32
        // The returned sum, on a softmax-like range (about 1500 values).
        std::vector<float> mid;
        for (float t = -20.f; t <= 0.f; t += 0.0137f) mid.push_back(t);
        double midRef = 0;
        for (float t : mid) midRef += std::exp(double(t));
        std::vector<float> midOut(mid.size());
        QVERIFY(std::fabs(cpu::expShiftedSum(mid.data(), midOut.data(), int64_t(mid.size()), 0.f) - midRef) <= 1e-6 * midRef);
        // The shift is subtracted before the exponential (softmax's max), in place.
        std::vector<float> row = {1.f, 2.f, 3.f, -1.f, 0.5f, 2.5f, 3.f, 0.f, -2.f, 1.5f};
        const std::vector<float> before = row;
        cpu::expShiftedSum(row.data(), row.data(), int64_t(row.size()), 3.f);
        for (size_t i = 0; i < row.size(); ++i) QVERIFY(std::fabs(row[i] - std::exp(before[i] - 3.0)) < 3e-7);
        // NaN is not hidden, and -inf gives 0: in the vector part of a row and in its tail.
        std::vector<float> odd(25, 0.f);
        for (int i : {2, 18}) odd[size_t(i)] = std::numeric_limits<float>::quiet_NaN();
        for (int i : {5, 20, 24}) odd[size_t(i)] = -std::numeric_limits<float>::infinity();
        cpu::expShiftedSum(odd.data(), odd.data(), 25, 0.f);
        for (int i : {2, 18}) QVERIFY(std::isnan(odd[size_t(i)]));
        for (int i : {5, 20, 24}) QCOMPARE(odd[size_t(i)], 0.f);
        for (int i : {0, 17, 23}) QCOMPARE(odd[size_t(i)], 1.f);
    }

    // The softmax shift: every length through the vector loops and the tail, the largest value
    // at every position, NaNs skipped as std::max skips them, -inf for an empty row.
    void maxOfEveryLengthAndPosition() {
        std::mt19937 rng(5);
        for (int64_t n = 1; n <= 70; ++n) {
            std::vector<float> x = randomFloats(n, rng);
            for (float& v : x) v = -std::fabs(v) - 1.f;  // all below the planted maximum
            for (int64_t at = 0; at < n; ++at) {
                std::vector<float> row = x;
                row[size_t(at)] = 0.5f;
                QCOMPARE(cpu::maxOf(row.data(), n), 0.5f);
                if (n > 1) {
                    row[size_t((at + 1) % n)] = std::numeric_limits<float>::quiet_NaN();
                    QCOMPARE(cpu::maxOf(row.data(), n), 0.5f);
                }
            }
        }
        QCOMPARE(cpu::maxOf(nullptr, 0), -std::numeric_limits<float>::infinity());
    }

    void sigmoidGateMatchesFormula() {
        std::mt19937 rng(3);
        const std::vector<float> x = randomFloats(1003, rng, 8.f), m = randomFloats(1003, rng);
        std::vector<float> silu(x.size()), qgelu(x.size());
        cpu::sigmoidGate(x.data(), m.data(), silu.data(), int64_t(x.size()), 1.f);
        cpu::sigmoidGate(x.data(), nullptr, qgelu.data(), int64_t(x.size()), 1.702f);
        for (size_t i = 0; i < x.size(); ++i) {
            const double s = double(x[i]) / (1 + std::exp(-double(x[i]))) * m[i];
            // The argument is the float product, as the kernel forms it: exp(38) magnifies a rounding
            // of its argument 38 times.
            const double g = double(x[i]) / (1 + std::exp(double(-1.702f * x[i])));
            QVERIFY2(std::fabs(silu[i] - s) <= 1e-6 * (std::fabs(s) + 1e-30), qPrintable(QString::number(x[i])));
            QVERIFY2(std::fabs(qgelu[i] - g) <= 1e-6 * (std::fabs(g) + 1e-30), qPrintable(QString::number(x[i])));
        }
        // Saturation: large negative inputs give (signed) zero, large positive give x.
        const float big[2] = {-200.f, 200.f};
        float out[2];
        cpu::sigmoidGate(big, nullptr, out, 2, 1.f);
        QCOMPARE(out[0], -0.f);
        QCOMPARE(out[1], 200.f);
    }

    void linearEveryPathEveryDtype_data() {
        QTest::addColumn<int>("dtype");
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("out");
        QTest::addColumn<int>("in");
        for (DType t : {DType::F32, DType::F16, DType::BF16})
            for (int n : {1, 3, 8, 37})  // decode kernel, streaming with n > 1, sgemm panels
                // 1003 x 100: enough work for both threads, so the rows go out in several chunks,
                // each read as four streams plus 0-3 rows left over, with a 4-weight scalar tail.
                for (auto [out, in] : {std::pair{37, 70}, std::pair{64, 517}, std::pair{9, 2048}, std::pair{1003, 100}}) {
                    const QString name = QString("%1 n=%2 %3x%4").arg(dtypeName(t)).arg(n).arg(out).arg(in);
                    QTest::newRow(qPrintable(name)) << int(t) << n << out << in;
                }
        // An x too large for the prefill GEMM to keep W's panels outermost on any machine (2600 x
        // 5200 floats, 52 MiB; the limit is 12-48 MiB by the L3's size): its other loop order, K
        // blocks outermost. And 700 x 5000 (13 MiB), which takes either order by the machine.
        for (DType t : {DType::F16, DType::BF16}) {
            QTest::newRow(qPrintable(QString("%1 n=700 37x5000").arg(dtypeName(t)))) << int(t) << 700 << 37 << 5000;
            QTest::newRow(qPrintable(QString("%1 n=2600 37x5200").arg(dtypeName(t)))) << int(t) << 2600 << 37 << 5200;
        }
    }
    // Every output within 2e-6 of Σ|x w| of the double result: f32 accumulation of `in` products
    // in any order rounds by at most about in x 2^-24 relative to that sum in the worst case, and
    // about sqrt(in) x 2^-24 typically; 2e-6 allows in = 2048 with margin and in = 5000 typically.
    void linearEveryPathEveryDtype() {
        QFETCH(int, dtype);
        QFETCH(int, n);
        QFETCH(int, out);
        QFETCH(int, in);
        const DType t = DType(dtype);
        std::mt19937 rng(uint32_t(n * 1000 + out + in));
        const std::vector<float> x = randomFloats(int64_t(n) * in, rng);
        Weights16 w16;
        std::vector<float> wf;
        Weight w{nullptr, t, out, in};
        if (t == DType::F32) {
            wf = randomFloats(int64_t(out) * in, rng);
            w.data = wf.data();
        } else {
            w16 = randomWeights(t, int64_t(out) * in, rng);
            wf = w16.values;
            w.data = w16.bits.data();
        }
        const std::vector<float> bias = randomFloats(out, rng);
        const Weight b{bias.data(), DType::F32, 1, out};
        std::vector<float> y(size_t(n * out), std::nanf(""));
        cpu::linear(x.data(), n, w, &b, y.data());
        std::vector<double> ref, bound;
        referenceLinear(x, n, wf, out, in, ref, bound);
        for (int64_t i = 0; i < int64_t(n) * out; ++i) {
            const double expected = ref[size_t(i)] + bias[size_t(i % out)];
            if (!(std::fabs(y[size_t(i)] - expected) <= 2e-6 * (bound[size_t(i)] + std::fabs(bias[size_t(i % out)]))))
                QFAIL(qPrintable(QString("y[%1] = %2, expected %3").arg(i).arg(y[size_t(i)]).arg(expected)));
        }
    }

    // Linears fused over one x (q/k/v, gate/up) give exactly what separate calls give, on every
    // path: the same kernels run on the same panels and row groups, only scheduled together.
    void linearsEqualSeparateCalls_data() {
        QTest::addColumn<int>("dtype");
        QTest::addColumn<int>("n");
        for (DType t : {DType::F32, DType::F16, DType::BF16})
            for (int n : {1, 3, 37}) QTest::newRow(qPrintable(QString("%1 n=%2").arg(dtypeName(t)).arg(n))) << int(t) << n;
    }
    void linearsEqualSeparateCalls() {
        QFETCH(int, dtype);
        QFETCH(int, n);
        const DType t = DType(dtype);
        const int in = 517;
        std::mt19937 rng(uint32_t(11 + n + dtype));
        const std::vector<float> x = randomFloats(int64_t(n) * in, rng);
        const std::vector<int> outs = {64, 37, 9};
        std::vector<Weights16> w16(outs.size());
        std::vector<std::vector<float>> wf(outs.size()), bias(outs.size());
        std::vector<Weight> w(outs.size()), b(outs.size());
        for (size_t i = 0; i < outs.size(); ++i) {
            w[i] = Weight{nullptr, t, outs[i], in};
            if (t == DType::F32) {
                wf[i] = randomFloats(int64_t(outs[i]) * in, rng);
                w[i].data = wf[i].data();
            } else {
                w16[i] = randomWeights(t, int64_t(outs[i]) * in, rng);
                w[i].data = w16[i].bits.data();
            }
            bias[i] = randomFloats(outs[i], rng);
            b[i] = Weight{bias[i].data(), DType::F32, 1, outs[i]};
        }
        std::vector<std::vector<float>> fused(outs.size()), separate(outs.size());
        std::vector<cpu::LinearTarget> targets;
        for (size_t i = 0; i < outs.size(); ++i) {
            fused[i].assign(size_t(n * outs[i]), std::nanf(""));
            separate[i].assign(size_t(n * outs[i]), std::nanf(""));
            // The middle target has no bias: a fused call mixes both kinds.
            targets.push_back({&w[i], i == 1 ? nullptr : &b[i], fused[i].data()});
            cpu::linear(x.data(), n, w[i], i == 1 ? nullptr : &b[i], separate[i].data());
        }
        cpu::linears(x.data(), n, targets);
        for (size_t i = 0; i < outs.size(); ++i)
            for (size_t j = 0; j < fused[i].size(); ++j)
                if (!(fused[i][j] == separate[i][j]))
                    QFAIL(qPrintable(QString("target %1, y[%2] = %3 fused, %4 alone").arg(i).arg(j).arg(fused[i][j]).arg(separate[i][j])));
    }

    // The cpu backend recycles activation buffers: a recycled buffer handed out by alloc() is zero
    // again (model code adds into fresh tensors), allocOutput() reuses without clearing, and a
    // tensor may outlive its backend.
    void recycledBuffersAreZeroedByAlloc() {
        auto backend = createCpuBackend();
        Tensor t = backend->alloc(100, 7);
        std::fill(t.data(), t.data() + t.numel(), 1.f);
        const float* first = t.data();
        t = Tensor();
        Tensor again = backend->alloc(100, 7);
        QCOMPARE(again.data(), first);  // the same memory, recycled
        for (int64_t i = 0; i < again.numel(); ++i) QCOMPARE(again.data()[i], 0.f);
        std::fill(again.data(), again.data() + again.numel(), 2.f);
        again = Tensor();
        Tensor output = backend->allocOutput(100, 7);
        QCOMPARE(output.data(), first);
        QCOMPARE(output.data()[699], 2.f);  // not cleared: an op will overwrite it
        QCOMPARE(output.rows(), int64_t(100));
        Tensor survivor = backend->alloc(3, 3);
        backend.reset();
        survivor.data()[8] = 5.f;  // still valid memory
        QCOMPARE(survivor.data()[8], 5.f);
    }

    void attentionEverySchedule_data() {
        QTest::addColumn<int>("nq");
        QTest::addColumn<int>("nk");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<bool>("causal");
        QTest::addColumn<int>("windowRows");
        QTest::addColumn<int>("headDim");
        QTest::newRow("decode, GQA") << 1 << 613 << 2 << true << 1 << 24;
        QTest::newRow("decode, MHA, short") << 1 << 5 << 8 << true << 0 << 24;
        // Head dimensions with their own unrolled decode kernels, over several key blocks.
        QTest::newRow("decode, GQA, d=64") << 1 << 1237 << 2 << true << 1 << 64;
        QTest::newRow("decode, MHA, d=128") << 1 << 613 << 8 << true << 1 << 128;
        QTest::newRow("decode, GQA, d=128, one entry") << 1 << 1 << 2 << true << 1 << 128;
        // Ranges of whole four-entry blocks (two threads: 8 each), and blocks plus a tail above.
        QTest::newRow("decode, GQA, d=128, whole blocks") << 1 << 16 << 2 << true << 1 << 128;
        QTest::newRow("few queries over a cache") << 5 << 301 << 2 << true << 3 << 24;
        QTest::newRow("prefill tiles, causal") << 150 << 150 << 2 << true << 7 << 24;
        QTest::newRow("prefill tiles after a cache") << 70 << 333 << 4 << true << 70 << 64;
        QTest::newRow("prefill tiles, 8 heads per KV head") << 150 << 150 << 1 << true << 7 << 24;  // 32-query tiles
        QTest::newRow("vision, bidirectional") << 65 << 65 << 8 << false << 0 << 24;
        // Head dimensions that are whole 32-column tiles, with 4 or more query heads per KV head,
        // run on the tile kernel (AVX-512 builds): row blocks padded to 12, keys to 32, several
        // panels of keys and of values.
        QTest::newRow("prefill tiles, causal, d=64, 8 heads per KV head") << 150 << 150 << 1 << true << 7 << 64;
        QTest::newRow("prefill tiles, d=128, 4 heads per KV head") << 100 << 137 << 2 << true << 5 << 128;
        QTest::newRow("prefill tiles, bidirectional, d=64") << 65 << 65 << 2 << false << 0 << 64;
    }
    // Outputs within 1e-5 (values are O(1): probability-weighted N(0,1) values, rounded in f32).
    // Importance and window rows within 1e-5 relative to max(1, the value): a column's importance
    // sums up to nq probabilities (up to ~5 here), each rounded in f32, in an order the
    // schedule picks; 150 terms may drift by ~150 * 2^-24 of the sum, and 1.2e-5 absolute (2.3e-6
    // relative) was seen at 5.12 once the tasks went to threads in another order.
    void attentionEverySchedule() {
        QFETCH(int, nq);
        QFETCH(int, nk);
        QFETCH(int, kvHeads);
        QFETCH(bool, causal);
        QFETCH(int, windowRows);
        QFETCH(int, headDim);
        const AttentionShape s{8, kvHeads, headDim, 1.f / std::sqrt(float(headDim))};
        std::mt19937 rng(uint32_t(nq * 7 + nk));
        const int64_t kvWidth = int64_t(kvHeads) * s.headDim;
        const std::vector<float> q = randomFloats(int64_t(nq) * s.numHeads * s.headDim, rng, 2.f);
        const std::vector<float> k = randomFloats(nk * kvWidth, rng, 2.f), v = randomFloats(nk * kvWidth, rng);
        std::vector<float> out(q.size(), std::nanf("")), importance(size_t(nk), 0.f),
            window(size_t(windowRows * nk), 0.f);
        cpu::attention(q.data(), nq, k.data(), v.data(), nk, kvWidth, s, causal, nk - nq, out.data(),
                       importance.data(), windowRows ? window.data() : nullptr, windowRows);
        std::vector<double> refOut, refImp, refWin;
        referenceAttention(q, nq, k, v, nk, s, causal, windowRows, refOut, refImp, refWin);
        for (size_t i = 0; i < out.size(); ++i)
            if (!(std::fabs(out[i] - refOut[i]) <= 1e-5)) QFAIL(qPrintable(QString("out[%1] = %2, expected %3").arg(i).arg(out[i]).arg(refOut[i])));
        auto near = [](double got, double want) { return std::fabs(got - want) <= 1e-5 * std::max(1.0, std::fabs(want)); };
        for (size_t j = 0; j < importance.size(); ++j)
            if (!near(importance[j], refImp[j])) QFAIL(qPrintable(QString("importance[%1] = %2, expected %3").arg(j).arg(importance[j]).arg(refImp[j])));
        for (size_t j = 0; j < window.size(); ++j)
            if (!near(window[j], refWin[j])) QFAIL(qPrintable(QString("window[%1] = %2, expected %3").arg(j).arg(window[j]).arg(refWin[j])));
    }

    // The same prompt gives the same importance to the last bit, run after run: the prefill
    // schedule deals its tasks to threads in a fixed order (a counter handed them to whichever
    // thread came first, and the per-thread partials then summed in a timing-dependent order).
    void attentionImportanceIsReproducible() {
        const AttentionShape s{8, 1, 24, 1.f / std::sqrt(24.f)};
        const int64_t n = 300;
        std::mt19937 rng(7);
        const std::vector<float> q = randomFloats(n * 8 * 24, rng, 2.f);
        const std::vector<float> k = randomFloats(n * 24, rng, 2.f), v = randomFloats(n * 24, rng);
        std::vector<float> out(q.size()), first;
        for (int run = 0; run < 40; ++run) {
            std::vector<float> importance(size_t(n), 0.f);
            cpu::attention(q.data(), n, k.data(), v.data(), n, 24, s, true, 0, out.data(), importance.data(), nullptr, 0);
            if (run == 0)
                first = importance;
            else if (std::memcmp(first.data(), importance.data(), first.size() * sizeof(float)) != 0)
                QFAIL(qPrintable(QString("run %1 gave other importance bits than run 0").arg(run)));
        }
    }

    // float -> half: exact IEEE results at the edges (ties to even, subnormals, overflow, nan),
    // the vector narrowing equal to the scalar one everywhere but where it saturates, and every
    // rounding within half a unit in the last place.
    void halfRounding() {
        struct Case { float in; uint16_t out; };
        const Case cases[] = {
            {1.f, 0x3c00}, {-2.f, 0xc000}, {65504.f, 0x7bff}, {65519.f, 0x7bff}, {65520.f, 0x7c00},
            {1.f + 1.f / 2048, 0x3c00},       // a tie, to the even neighbour below
            {1.f + 3.f / 2048, 0x3c02},       // a tie, to the even neighbour above
            {std::ldexp(1.f, -24), 0x0001},   // the smallest subnormal
            {std::ldexp(1.f, -25), 0x0000},   // half of it: a tie, to even (zero)
            {std::ldexp(3.f, -25), 0x0002},   // 1.5 of it: a tie, to even (two)
            {std::ldexp(1.f, -14), 0x0400},   // the smallest normal
            {std::ldexp(1023.f, -24), 0x03ff}, {-0.f, 0x8000}, {1e-30f, 0x0000},
            {std::numeric_limits<float>::infinity(), 0x7c00},
        };
        for (const Case& c : cases)
            QVERIFY2(floatToHalf(c.in) == c.out,
                     qPrintable(QString("half(%1) = %2, expected %3").arg(double(c.in)).arg(floatToHalf(c.in), 0, 16).arg(c.out, 0, 16)));
        QVERIFY(std::isnan(halfToFloat(floatToHalf(std::nanf("")))));

        std::mt19937 rng(5);
        std::vector<float> x = randomFloats(4099, rng, 30.f);
        for (int e = -26; e <= 17; ++e) x.push_back(std::ldexp(1.37f, e));
        for (const Case& c : cases) x.push_back(c.in);
        x.insert(x.end(), {1e6f, -1e6f, 70000.f, std::nanf("")});
        std::vector<uint16_t> h(x.size());
        cpu::narrowToHalf(x.data(), int64_t(x.size()), h.data());
        for (size_t i = 0; i < x.size(); ++i) {
            if (std::isnan(x[i])) {
                QVERIFY(std::isnan(halfToFloat(h[i])));
                continue;
            }
            if (std::fabs(x[i]) > 65504.f) {  // saturated, not inf
                QCOMPARE(halfToFloat(h[i]), std::copysign(65504.f, x[i]));
                continue;
            }
            QCOMPARE(h[i], floatToHalf(x[i]));
            const double back = halfToFloat(h[i]);
            const double ulp = std::ldexp(1.0, std::max(std::ilogb(back == 0 ? 1e-30 : back), -14) - 10);
            QVERIFY2(std::fabs(back - double(x[i])) <= ulp / 2,
                     qPrintable(QString("%1 -> %2").arg(double(x[i])).arg(back)));
        }
    }

    // An f16 cache: entries come back rounded; gather, erase, overwrite and clone move whole
    // entries; a value beyond the half range is stored as ±65504.
    void f16CacheStorage() {
        auto be = createCpuBackend();
        QVERIFY(be->supportsKvDtype(DType::F16));
        const int width = 12;
        auto cache = be->createKvCache(2, width, DType::F16);
        QCOMPARE(cache->dtype(), DType::F16);
        QCOMPARE(cache->bytesPerEntry(), int64_t(width * 2 * 2));
        std::mt19937 rng(9);
        std::vector<float> k = randomFloats(5 * width, rng, 3.f), v = randomFloats(5 * width, rng);
        k[7] = 1e6f;
        cache->append(1, be->upload(k.data(), 5, width), be->upload(v.data(), 5, width), 0);
        auto rounded = [](float x) { return halfToFloat(floatToHalf(std::clamp(x, -65504.f, 65504.f))); };
        std::vector<float> rk, rv;
        auto expectEntry = [&](int64_t index, int64_t row) {
            cache->read(1, index, rk, rv);
            for (int c = 0; c < width; ++c) {
                QCOMPARE(rk[size_t(c)], rounded(k[size_t(row * width + c)]));
                QCOMPARE(rv[size_t(c)], rounded(v[size_t(row * width + c)]));
            }
        };
        for (int64_t r = 0; r < 5; ++r) expectEntry(r, r);
        cache->read(1, 0, rk, rv);
        QCOMPARE(rk[7], 65504.f);

        auto copy = cache->clone();
        cache->gather(1, {0, 2, 4});
        QCOMPARE(cache->length(1), int64_t(3));
        QCOMPARE(cache->tokenIndices(1), (std::vector<int64_t>{0, 2, 4}));
        expectEntry(1, 2);
        expectEntry(2, 4);
        cache->erase(1, 0);
        expectEntry(0, 2);
        std::vector<float> nk(size_t(width), 0.5f), nv(size_t(width), -0.25f);
        cache->overwrite(1, 1, nk, nv);
        cache->read(1, 1, rk, rv);
        QCOMPARE(rk, nk);
        QCOMPARE(rv, nv);
        QCOMPARE(cache->bytesUsed(), int64_t(2 * width * 2 * 2));
        QCOMPARE(copy->length(1), int64_t(5));  // the clone kept its own entries
        copy->read(1, 3, rk, rv);
        QCOMPARE(rk[0], rounded(k[size_t(3 * width)]));
        QCOMPARE(copy->length(0), int64_t(0));
    }

    void attentionOverF16Cache_data() {
        QTest::addColumn<int>("nq");
        QTest::addColumn<int>("nk");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("headDim");
        QTest::newRow("decode, GQA, d=64, several blocks") << 1 << 1237 << 2 << 64;
        QTest::newRow("decode, MHA, d=128") << 1 << 613 << 8 << 128;
        QTest::newRow("decode, GQA, d=128, whole blocks") << 1 << 16 << 2 << 128;
        QTest::newRow("decode, generic d") << 1 << 301 << 2 << 24;
        QTest::newRow("few queries") << 5 << 301 << 2 << 24;
        QTest::newRow("prefill tiles") << 70 << 333 << 4 << 64;
        QTest::newRow("prefill tiles, 4 heads per KV head") << 70 << 333 << 2 << 64;
    }
    // Through the backend (cachedAttention over an f16 cache, with importance and window rows),
    // against the double reference on the rounded entries: 1e-5 as attentionEverySchedule.
    void attentionOverF16Cache() {
        QFETCH(int, nq);
        QFETCH(int, nk);
        QFETCH(int, kvHeads);
        QFETCH(int, headDim);
        const AttentionShape s{8, kvHeads, headDim, 1.f / std::sqrt(float(headDim))};
        const int64_t kvWidth = int64_t(kvHeads) * headDim, qWidth = int64_t(s.numHeads) * headDim;
        std::mt19937 rng(uint32_t(nq * 13 + nk));
        const std::vector<float> q = randomFloats(nq * qWidth, rng, 2.f);
        std::vector<float> k = randomFloats(nk * kvWidth, rng, 2.f), v = randomFloats(nk * kvWidth, rng);
        auto be = createCpuBackend();
        auto cache = be->createKvCache(1, int(kvWidth), DType::F16);
        cache->append(0, be->upload(k.data(), nk, kvWidth), be->upload(v.data(), nk, kvWidth), 0);
        for (float& x : k) x = halfToFloat(floatToHalf(x));
        for (float& x : v) x = halfToFloat(floatToHalf(x));

        const int windowRows = std::min(nq, 3);
        std::vector<float> importance, window;
        AttentionProbe probe{&importance, &window, windowRows};
        Tensor out = be->alloc(nq, qWidth);
        be->cachedAttention(be->upload(q.data(), nq, qWidth), *cache, 0, s, out, &probe);
        std::vector<double> refOut, refImp, refWin;
        referenceAttention(q, nq, k, v, nk, s, true, windowRows, refOut, refImp, refWin);
        for (int64_t i = 0; i < out.numel(); ++i)
            if (!(std::fabs(out.data()[i] - refOut[size_t(i)]) <= 1e-5))
                QFAIL(qPrintable(QString("out[%1] = %2, expected %3").arg(i).arg(out.data()[i]).arg(refOut[size_t(i)])));
        QCOMPARE(importance.size(), refImp.size());
        // Importance and window: relative to max(1, value), as in attentionEverySchedule.
        auto near = [](double got, double want) { return std::fabs(got - want) <= 1e-5 * std::max(1.0, std::fabs(want)); };
        for (size_t j = 0; j < importance.size(); ++j)
            if (!near(importance[j], refImp[j])) QFAIL(qPrintable(QString("importance[%1]").arg(j)));
        QCOMPARE(window.size(), refWin.size());
        for (size_t j = 0; j < window.size(); ++j)
            if (!near(window[j], refWin[j])) QFAIL(qPrintable(QString("window[%1]").arg(j)));
    }
    // Tensors and cache storage start on a 64-byte line (malloc gives 16): the decode kernels load
    // 64 bytes of x at a time, and a load that straddles two lines made the GEMV 33% slower.
    // Fresh buffers, recycled ones, odd sizes, and both cache dtypes after growth.
    void buffersStartOnCacheLines() {
        auto be = createCpuBackend();
        auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; };
        for (int round = 0; round < 2; ++round)  // the second round takes buffers back from the pool
            for (int64_t cols : {1, 3, 17, 4096, 11008}) {
                Tensor a = be->alloc(1, cols), b = be->allocOutput(3, cols);
                QVERIFY2(aligned(a.data()) && aligned(b.data()), qPrintable(QString("cols %1").arg(cols)));
                QCOMPARE(a.data()[cols - 1], 0.f);  // alloc still zeroes a recycled buffer
                a.data()[cols - 1] = 5.f;
            }
        for (DType dtype : {DType::F32, DType::F16}) {
            auto cache = be->createKvCache(1, 24, dtype);
            std::vector<float> rows(24 * 7, 0.5f);
            for (int i = 0; i < 5; ++i) {  // growth reallocates
                cache->append(0, be->upload(rows.data(), 7, 24), be->upload(rows.data(), 7, 24), 0);
                const auto& cpu = dynamic_cast<const cpu::CpuKvCache&>(*cache);
                QVERIFY(aligned(cpu.keys(0)) && aligned(cpu.values(0)));
            }
        }
    }
};

QTEST_APPLESS_MAIN(TestCpuKernels)
#include "test_cpu_kernels.moc"
