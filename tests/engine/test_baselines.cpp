// The baseline policies (engine/kv/baselines) against goldens from an independent transcription
// (tests/fixtures/baselines_reference.py): which tokens every layer keeps after the prefill and
// through 30 decode steps, and Elastic's merged rows. Then what the variants change, a real
// prefill and decode on the tiny model, bad inputs and prompts of 2 or 3 tokens.
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <set>

#include "common/errors.h"
#include "common/paths.h"
#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/kv/baselines/elastic_policy.h"
#include "engine/kv/baselines/h2o_policy.h"
#include "engine/kv/baselines/pyramidkv_policy.h"
#include "engine/kv/baselines/selection.h"
#include "engine/kv/baselines/snapkv_policy.h"
#include "engine/kv/baselines/streaming_policy.h"
#include "engine/kv/baselines/vlcache_policy.h"
#include "engine/kv/prefixkv_policy.h"
#include "engine/session.h"

using namespace pkv;
using pkvtest::errorOf;

namespace {

constexpr int kWidth = 4;

QJsonObject readJson(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) qFatal("cannot read %s", qPrintable(path));
    return QJsonDocument::fromJson(f.readAll()).object();
}

std::vector<int64_t> ints(const QJsonValue& a) {
    std::vector<int64_t> v;
    for (const auto& x : a.toArray()) v.push_back(x.toInteger());
    return v;
}

// The reference script's dummy rows: they encode the token, so merged rows show their parts.
std::vector<float> keyRow(int64_t j) {
    std::vector<float> r;
    for (int c = 0; c < kWidth; ++c) r.push_back(float(0.01 * double(j) + 0.001 * c));
    return r;
}
std::vector<float> valueRow(int64_t j) {
    std::vector<float> r;
    for (int c = 0; c < kWidth; ++c) r.push_back(float(0.5 - 0.01 * double(j) - 0.001 * c));
    return r;
}

void appendToken(Backend& be, KvCache& cache, int64_t j) {
    const std::vector<float> k = keyRow(j), v = valueRow(j);
    for (int l = 0; l < cache.numLayers(); ++l) cache.append(l, be.upload(k.data(), 1, kWidth), be.upload(v.data(), 1, kWidth), j);
}

std::unique_ptr<KvCache> dummyCache(Backend& be, int layers, int64_t n) {
    auto cache = be.createKvCache(layers, kWidth, DType::F32);
    for (int64_t j = 0; j < n; ++j) appendToken(be, *cache, j);
    return cache;
}

std::unique_ptr<KvPolicy> makeBaseline(const std::string& method, bool faithful, const Budget& b) {
    if (method == "streaming") return std::make_unique<StreamingPolicy>(b);
    if (method == "h2o") return std::make_unique<H2oPolicy>(b, faithful);
    if (method == "elastic") return std::make_unique<ElasticPolicy>(b, faithful);
    if (method == "snapkv") return std::make_unique<SnapKvPolicy>(b);
    if (method == "pyramidkv") return std::make_unique<PyramidKvPolicy>(b);
    if (method == "vlcache") return std::make_unique<VlCachePolicy>(b);
    qFatal("unknown method %s", method.c_str());
    return nullptr;
}

QString layerText(const std::vector<int64_t>& v) {
    QStringList s;
    for (int64_t x : v) s << QString::number(x);
    return s.join(',');
}

// Runs the golden's decode steps: append token N + t to every layer, feed step attention (for
// the policies that take it), compare lengths and the tokens each step evicted.
void checkSteps(Backend& be, KvPolicy& policy, KvCache& cache, int64_t n, const QJsonArray& steps,
                const QJsonArray* stepAttention, double scale) {
    for (int t = 0; t < steps.size(); ++t) {
        appendToken(be, cache, n + t);
        std::vector<std::vector<int64_t>> before;
        std::vector<std::vector<float>> attention;
        for (int l = 0; l < cache.numLayers(); ++l) {
            before.push_back(cache.tokenIndices(l));
            if (stepAttention) {
                const QJsonArray row = (*stepAttention)[t].toArray()[l].toArray();
                std::vector<float> a;
                for (int64_t i = 0; i < cache.length(l); ++i) a.push_back(float(row[int(i)].toDouble() / scale));
                attention.push_back(std::move(a));
            }
        }
        StepContext ctx;
        ctx.tokensSeen = n + t + 1;
        ctx.attention = stepAttention ? &attention : nullptr;
        policy.afterStep(cache, ctx);
        const QJsonObject want = steps[t].toObject();
        QCOMPARE(want["tokens_seen"].toInteger(), ctx.tokensSeen);
        const std::vector<int64_t> lengths = ints(want["lengths"]);
        for (int l = 0; l < cache.numLayers(); ++l) {
            QVERIFY2(cache.length(l) == lengths[size_t(l)],
                     qPrintable(QString("step %1 layer %2: length %3, golden %4").arg(t).arg(l).arg(cache.length(l)).arg(lengths[size_t(l)])));
            const auto& after = cache.tokenIndices(l);
            std::vector<int64_t> evicted;
            std::set_difference(before[size_t(l)].begin(), before[size_t(l)].end(), after.begin(), after.end(),
                                std::back_inserter(evicted));
            const std::vector<int64_t> wantEvicted = ints(want["evicted"].toArray()[l]);
            QVERIFY2(evicted == wantEvicted, qPrintable(QString("step %1 layer %2 evicted [%3], golden [%4]")
                                                            .arg(t).arg(l).arg(layerText(evicted), layerText(wantEvicted))));
        }
    }
}

void checkKept(const KvCache& cache, const QJsonValue& golden) {
    const QJsonArray layers = golden.toArray();
    QCOMPARE(cache.numLayers(), int(layers.size()));
    for (int l = 0; l < cache.numLayers(); ++l) {
        const std::vector<int64_t> want = ints(layers[l]);
        QVERIFY2(cache.tokenIndices(l) == want, qPrintable(QString("layer %1 keeps [%2], golden [%3]")
                                                               .arg(l).arg(layerText(cache.tokenIndices(l)), layerText(want))));
    }
}


std::vector<float> randomScores(std::mt19937& rng, int64_t n) {
    std::uniform_real_distribution<float> u(0.f, 1.f);
    std::vector<float> s(static_cast<size_t>(n));
    for (float& x : s) x = u(rng);
    return s;
}

// Prefill context for a prompt of n tokens whose window is every row, uniform causal attention.
struct SyntheticPrefill {
    std::vector<std::vector<float>> importance, window;
    PrefillContext ctx;
    SyntheticPrefill(int layers, int64_t n, std::mt19937& rng) {
        for (int l = 0; l < layers; ++l) {
            importance.push_back(randomScores(rng, n));
            std::vector<float> w(size_t(n * n), 0.f);
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j <= i; ++j) w[size_t(i * n + j)] = 1.f / float(i + 1);
            window.push_back(std::move(w));
        }
        ctx.promptLength = n;
        ctx.importance = &importance;
        ctx.window = &window;
        ctx.windowRows = n;
    }
};

}  // namespace

class TestBaselines : public QObject {
    Q_OBJECT
    std::unique_ptr<Backend> be_ = createCpuBackend();
    QJsonObject ec_, win_;
    std::vector<std::vector<float>> importance_;  // the tiny model's, [3][107]

private slots:
    void initTestCase() {
        ec_ = readJson(pkvtest::fixturesDir() + "/golden/baselines_ec.json");
        win_ = readJson(pkvtest::fixturesDir() + "/golden/baselines_window.json");
        auto file = SafetensorsFile::open(pkvtest::str(pkvtest::fixturesDir() + "/golden/tiny-gqa-f32.safetensors"));
        const TensorView* t = file->find("importance");
        QVERIFY(t && t->shape.size() == 2);
        std::vector<float> flat(size_t(t->numel()));
        std::memcpy(flat.data(), t->data, t->nbytes);
        for (int64_t l = 0; l < t->shape[0]; ++l)
            importance_.emplace_back(flat.begin() + l * t->shape[1], flat.begin() + (l + 1) * t->shape[1]);
    }

    // Local, H2O and Elastic on the tiny model's importance: kept tokens, merged rows, decode.
    void ecGoldens_data() {
        QTest::addColumn<int>("index");
        const QJsonArray cases = ec_["cases"].toArray();
        for (int i = 0; i < cases.size(); ++i) {
            const QJsonObject c = cases[i].toObject();
            const QString tag = QString("%1 %2 r=%3").arg(c["method"].toString(), c["faithful"].toBool() ? "faithful" : "fixed")
                                    .arg(c["r"].toDouble());
            QTest::newRow(qPrintable(tag)) << i;
        }
    }
    void ecGoldens() {
        QFETCH(int, index);
        const QJsonObject c = ec_["cases"].toArray()[index].toObject();
        const int64_t n = ec_["prompt_length"].toInteger();
        QCOMPARE(int64_t(importance_[0].size()), n);
        auto policy = makeBaseline(c["method"].toString().toStdString(), c["faithful"].toBool(),
                                   Budget::fromEvictedFraction(c["r"].toDouble()));
        auto cache = dummyCache(*be_, int(importance_.size()), n);
        PrefillContext ctx;
        ctx.promptLength = n;
        ctx.importance = &importance_;
        policy->afterPrefill(*cache, ctx);
        checkKept(*cache, c["prefill_kept"]);

        if (c.contains("prefill_keys")) {
            // The golden merges in float64; float32 rows of size ~1 agree to a few ulps.
            std::vector<float> k, v;
            for (int l = 0; l < cache->numLayers(); ++l) {
                const QJsonArray keys = c["prefill_keys"].toArray()[l].toArray();
                const QJsonArray values = c["prefill_values"].toArray()[l].toArray();
                for (int64_t i = 0; i < cache->length(l); ++i) {
                    cache->read(l, i, k, v);
                    for (int ch = 0; ch < kWidth; ++ch) {
                        const int at = int(i * kWidth + ch);
                        QVERIFY2(std::abs(k[size_t(ch)] - keys[at].toDouble()) <= 1e-6 &&
                                     std::abs(v[size_t(ch)] - values[at].toDouble()) <= 1e-6,
                                 qPrintable(QString("layer %1 entry %2 channel %3").arg(l).arg(i).arg(ch)));
                    }
                }
            }
        }
        const QJsonArray stepAttention = ec_["step_attention"].toArray();
        checkSteps(*be_, *policy, *cache, n, c["steps"].toArray(), policy->wantsStepAttention() ? &stepAttention : nullptr,
                   ec_["attention_scale"].toDouble());
    }

    // SnapKV, PyramidKV and VL-Cache on synthetic window rows, with and without an image.
    void windowGoldens_data() {
        QTest::addColumn<int>("index");
        const QJsonArray cases = win_["cases"].toArray();
        for (int i = 0; i < cases.size(); ++i) {
            const QJsonObject c = cases[i].toObject();
            const QString tag = QString("%1 %2 r=%3").arg(c["method"].toString(), c["image"].toBool() ? "image" : "text")
                                    .arg(c["r"].toDouble());
            QTest::newRow(qPrintable(tag)) << i;
        }
    }
    void windowGoldens() {
        QFETCH(int, index);
        const QJsonObject c = win_["cases"].toArray()[index].toObject();
        const int64_t n = win_["prompt_length"].toInteger(), recorded = win_["recorded_rows"].toInteger();
        const int64_t rows = c["window_rows"].toInteger();
        const double scale = win_["attention_scale"].toDouble();
        std::vector<std::vector<float>> window;
        for (const auto& layer : win_["window"].toArray()) {
            const QJsonArray q = layer.toArray();
            std::vector<float> w;
            for (int64_t i = (recorded - rows) * n; i < recorded * n; ++i) w.push_back(float(q[int(i)].toDouble() / scale));
            window.push_back(std::move(w));
        }
        const int layers = int(window.size());
        auto policy = makeBaseline(c["method"].toString().toStdString(), false, Budget::fromEvictedFraction(c["r"].toDouble()));
        auto cache = dummyCache(*be_, layers, n);
        PrefillContext ctx;
        ctx.promptLength = n;
        ctx.window = &window;
        ctx.windowRows = rows;
        ctx.imageBegin = c["image_begin"].toInteger();
        ctx.imageEnd = c["image_end"].toInteger();
        policy->afterPrefill(*cache, ctx);
        QCOMPARE(dynamic_cast<WindowedPromptPolicy&>(*policy).keptCounts(), ints(c["kept_counts"]));
        checkKept(*cache, c["prefill_kept"]);
        checkSteps(*be_, *policy, *cache, n, c["steps"].toArray(), nullptr, scale);
    }

    // The reference's argsort rule changes which tokens survive on unordered scores; the fixed
    // rule keeps exactly the top-ranked candidates. Same sizes either way.
    void faithfulDiffersFromFixed_data() {
        QTest::addColumn<QString>("method");
        QTest::addColumn<double>("r");
        for (const char* m : {"h2o", "elastic"})
            for (double r : {0.5, 0.8}) QTest::newRow(qPrintable(QString("%1 r=%2").arg(m).arg(r))) << QString(m) << r;
    }
    void faithfulDiffersFromFixed() {
        QFETCH(QString, method);
        QFETCH(double, r);
        const int64_t n = 64;
        std::mt19937 rng(7);
        // One layer, so H2O's layer mean is these scores themselves.
        std::vector<std::vector<float>> importance{randomScores(rng, n)};
        const std::vector<float>& s = importance[0];
        PrefillContext ctx;
        ctx.promptLength = n;
        ctx.importance = &importance;
        std::vector<std::vector<int64_t>> kept;
        for (bool faithful : {true, false}) {
            auto cache = dummyCache(*be_, 1, n);
            makeBaseline(method.toStdString(), faithful, Budget::fromEvictedFraction(r))->afterPrefill(*cache, ctx);
            kept.push_back(cache->tokenIndices(0));
        }
        const int64_t forget = forgetCount(n, n, r);
        const bool elastic = method == "elastic";
        const int64_t first = elastic ? 1 : 0, candidates = n - 1 - first;
        std::vector<int64_t> ranked;
        for (int64_t j = first; j < n - 1; ++j) ranked.push_back(j);
        std::sort(ranked.begin(), ranked.end(), [&](int64_t a, int64_t b) { return s[size_t(a)] > s[size_t(b)]; });
        ranked.resize(size_t(candidates - forget - 1));
        if (elastic) ranked.push_back(0);
        ranked.push_back(n - 1);
        std::sort(ranked.begin(), ranked.end());
        QCOMPARE(kept[1], ranked);
        QCOMPARE(kept[0].size(), kept[1].size());
        QVERIFY(kept[0] != kept[1]);
    }

    // Fixed H2O keeps its score buffer aligned with the cache; the faithful one keeps the
    // prompt-position buffer, so after the prefill the two disagree on every shifted entry.
    void h2oBufferAlignment() {
        std::mt19937 rng(3);
        const int64_t n = 40;
        std::vector<std::vector<float>> importance{randomScores(rng, n), randomScores(rng, n)};
        PrefillContext ctx;
        ctx.promptLength = n;
        ctx.importance = &importance;
        for (bool faithful : {true, false}) {
            H2oPolicy p(Budget::fromEvictedFraction(0.5), faithful);
            auto cache = dummyCache(*be_, 2, n);
            p.afterPrefill(*cache, ctx);
            QCOMPARE(int64_t(p.scores().size()), faithful ? n : cache->length(0));
            const auto& kept = cache->tokenIndices(0);
            for (size_t i = 0; i < kept.size(); ++i) {
                const float mean = (importance[0][size_t(kept[i])] + importance[1][size_t(kept[i])]) / 2.f;
                const float slot = p.scores()[faithful ? size_t(kept[i]) : i];
                QCOMPARE(slot, mean);
            }
        }
    }

    // A real prefill of the golden prompt and 20 greedy tokens at 50% kept.
    void tinyModel_data() {
        QTest::addColumn<QString>("method");
        QTest::addColumn<bool>("faithful");
        for (const char* m : {"streaming", "snapkv", "pyramidkv", "vlcache"}) QTest::newRow(m) << QString(m) << true;
        for (const char* m : {"h2o", "elastic"}) {
            QTest::newRow(qPrintable(QString(m) + " faithful")) << QString(m) << true;
            QTest::newRow(qPrintable(QString(m) + " fixed")) << QString(m) << false;
        }
    }
    void tinyModel() {
        QFETCH(QString, method);
        QFETCH(bool, faithful);
        static std::shared_ptr<LlavaModel> model =
            LlavaModel::load(pkvtest::str(pkvtest::fixturesDir() + "/models/tiny-gqa-f32"), {DeviceChoice::Cpu});
        const QJsonObject golden = readJson(pkvtest::fixturesDir() + "/golden/tiny-gqa-f32.json");
        auto file = SafetensorsFile::open(pkvtest::str(pkvtest::fixturesDir() + "/golden/tiny-gqa-f32.safetensors"));
        const TensorView* t = file->find("pixels");
        std::vector<float> pixels(size_t(t->numel()));
        std::memcpy(pixels.data(), t->data, t->nbytes);

        const Budget budget = Budget::keptPercent(50);
        Session s(model);
        s.setPolicy(makeBaseline(method.toStdString(), faithful, budget));
        s.prefillPixels(golden["prompt"].toString().toStdString(), &pixels);
        const KvCache& cache = *s.cache();
        const int layers = cache.numLayers();
        const int64_t n = s.tokensSeen();
        QCOMPARE(n, int64_t(107));
        const int64_t forget = forgetCount(n, n, 0.5);
        QCOMPARE(forget, int64_t(53));
        std::vector<int64_t> lengths;
        for (int l = 0; l < layers; ++l) lengths.push_back(cache.length(l));
        const int64_t total = std::accumulate(lengths.begin(), lengths.end(), int64_t(0));
        if (method == "streaming") {
            QCOMPARE(lengths, std::vector<int64_t>(size_t(layers), n - forget));
            QCOMPARE(cache.tokenIndices(0).back() - cache.tokenIndices(0)[1], n - forget - 2);  // one window
        } else if (method == "h2o" || method == "elastic") {
            QCOMPARE(lengths, std::vector<int64_t>(size_t(layers), n - forget - 1));
        } else if (method == "snapkv") {
            QCOMPARE(lengths, std::vector<int64_t>(size_t(layers), n - forget));
        } else {
            QCOMPARE(total, layers * (n - forget));
            if (method == "pyramidkv") QVERIFY(std::is_sorted(lengths.rbegin(), lengths.rend()) && lengths.front() > lengths.back());
        }
        if (method == "snapkv" || method == "pyramidkv")  // the observation window stays
            for (int l = 0; l < layers; ++l) QCOMPARE(cache.tokenIndices(l).back(), n - 1);
        QCOMPARE(cache.bytesUsed(), total * cache.bytesPerEntry());

        GenerateOptions o;
        o.maxNewTokens = 20;
        o.stopAtEos = false;
        s.generate(o, [](int, const std::string&) {});
        QCOMPARE(int64_t(s.generated().size()), int64_t(20));
        const int64_t seen = s.tokensSeen();
        int64_t after = 0;
        for (int l = 0; l < layers; ++l) {
            const auto& idx = cache.tokenIndices(l);
            after += cache.length(l);
            QVERIFY(std::is_sorted(idx.begin(), idx.end()) && std::adjacent_find(idx.begin(), idx.end()) == idx.end());
            QCOMPARE(idx.back(), seen - 1);  // the newest token is never the one evicted
            if (method == "streaming" || method == "h2o" || method == "elastic") {
                // One length for all layers, back within the share (1 - r) * T.
                QCOMPARE(cache.length(l), cache.length(0));
                QVERIFY(forgetCount(cache.length(l), seen, 0.5) <= 0);
            } else {
                const double f = double(n - lengths[size_t(l)]) / double(n);
                QVERIFY(!exceedsDecodeBudget(cache.length(l), seen, f));
            }
            if (method == "streaming" || method == "elastic") QCOMPARE(idx.front(), int64_t(0));
        }
        QCOMPARE(cache.bytesUsed(), after * cache.bytesPerEntry());
    }

    // The policies say what is missing instead of reading past vectors.
    void badInputs() {
        QVERIFY(errorOf([] { Budget::keptPercent(0); }).contains("(0, 100]"));
        QVERIFY(errorOf([] { Budget::fromEvictedFraction(1.0); }).contains("[0, 1)"));
        QVERIFY(errorOf([] { Budget::keptTokens(0); }).contains("at least 1"));

        const Budget half = Budget::fromEvictedFraction(0.5);
        auto cache = dummyCache(*be_, 2, 10);
        PrefillContext none;
        none.promptLength = 10;
        for (const char* m : {"h2o", "elastic"})
            QVERIFY(errorOf([&] { makeBaseline(m, true, half)->afterPrefill(*cache, none); }).contains("importance"));
        for (const char* m : {"snapkv", "pyramidkv", "vlcache"})
            QVERIFY(errorOf([&] { makeBaseline(m, true, half)->afterPrefill(*cache, none); }).contains("attention rows"));
        PrefillContext wrongLength;
        wrongLength.promptLength = 12;
        QVERIFY(errorOf([&] { StreamingPolicy(half).afterPrefill(*cache, wrongLength); }).contains("10 entries in layer 0"));
        StepContext step;
        step.tokensSeen = 11;
        QVERIFY(errorOf([&] { StreamingPolicy(half).afterStep(*cache, step); }).contains("never saw prefilled"));

        std::mt19937 rng(1);
        SyntheticPrefill pre(2, 10, rng);
        H2oPolicy h2o(half, true);
        h2o.afterPrefill(*cache, pre.ctx);
        QVERIFY(errorOf([&] { h2o.afterStep(*cache, step); }).contains("attention"));
    }

    // An absolute budget at least as long as the prompt evicts nothing.
    void tokenBudgetKeepsShortPrompts() {
        std::mt19937 rng(2);
        SyntheticPrefill pre(2, 20, rng);
        for (const char* m : {"streaming", "h2o", "elastic", "snapkv", "pyramidkv", "vlcache"}) {
            auto cache = dummyCache(*be_, 2, 20);
            makeBaseline(m, true, Budget::keptTokens(20))->afterPrefill(*cache, pre.ctx);
            QCOMPARE(cache->length(0) + cache->length(1), int64_t(40));
        }
    }

    // Prompts of 2 and 3 tokens: every rule still leaves what it says, never an empty layer.
    void tinyPrompts_data() {
        QTest::addColumn<QString>("method");
        QTest::addColumn<int>("n");
        QTest::addColumn<double>("r");
        QTest::addColumn<QList<qint64>>("kept");
        const auto row = [](const char* m, int n, double r, QList<qint64> kept) {
            QTest::newRow(qPrintable(QString("%1 N=%2 r=%3").arg(m).arg(n).arg(r))) << QString(m) << n << r << kept;
        };
        // forget = int(N - N(1 - r)): 1 for N = 2; for N = 3, 1 at r = 0.5 and 2 at r = 0.9.
        row("streaming", 2, 0.5, {0});
        row("streaming", 3, 0.5, {0, 2});
        row("streaming", 3, 0.9, {0});
        row("h2o", 2, 0.9, {0, 1});     // forget 1: the argmin range [1, 1) is empty
        row("h2o", 3, 0.5, {0, 2});     // forget 1: evict the argmin of [1, 2)
        row("h2o", 3, 0.9, {2});        // forget 2: no candidate passes, the last token stays
        row("elastic", 2, 0.5, {0});    // P = 2 / 2 = 1
        row("elastic", 3, 0.5, {0, 2});
        row("elastic", 3, 0.9, {0, 2}); // the only candidate is merged away
        for (const char* m : {"snapkv", "pyramidkv", "vlcache"}) {  // the last K = N - forget
            row(m, 2, 0.5, {1});
            row(m, 3, 0.5, {1, 2});
            row(m, 3, 0.9, {2});
        }
    }
    void tinyPrompts() {
        QFETCH(QString, method);
        QFETCH(int, n);
        QFETCH(double, r);
        QFETCH(QList<qint64>, kept);
        std::mt19937 rng{uint32_t(n)};
        SyntheticPrefill pre(2, n, rng);
        auto cache = dummyCache(*be_, 2, n);
        auto policy = makeBaseline(method.toStdString(), true, Budget::fromEvictedFraction(r));
        policy->afterPrefill(*cache, pre.ctx);
        for (int l = 0; l < 2; ++l) QCOMPARE(cache->tokenIndices(l), std::vector<int64_t>(kept.begin(), kept.end()));
        for (int64_t t = 0; t < 10; ++t) {
            appendToken(*be_, *cache, n + t);
            std::vector<std::vector<float>> attention;
            for (int l = 0; l < 2; ++l) attention.emplace_back(size_t(cache->length(l)), 1.f / float(cache->length(l)));
            StepContext step;
            step.tokensSeen = n + t + 1;
            step.attention = &attention;
            policy->afterStep(*cache, step);
            for (int l = 0; l < 2; ++l) {
                const auto& idx = cache->tokenIndices(l);
                QVERIFY(!idx.empty() && std::is_sorted(idx.begin(), idx.end()));
            }
        }
    }

    // A clone carries the state: both continue identically from the same cache.
    void cloneCarriesState() {
        std::mt19937 rng(5);
        SyntheticPrefill pre(2, 50, rng);
        for (const char* m : {"streaming", "h2o", "elastic", "snapkv", "pyramidkv", "vlcache"}) {
            auto cache = dummyCache(*be_, 2, 50);
            auto policy = makeBaseline(m, false, Budget::fromEvictedFraction(0.6));
            policy->afterPrefill(*cache, pre.ctx);
            auto twin = policy->clone();
            QCOMPARE(twin->name(), policy->name());
            auto twinCache = cache->clone();
            for (int64_t t = 0; t < 8; ++t) {
                for (KvCache* c : {cache.get(), twinCache.get()}) appendToken(*be_, *c, 50 + t);
                std::vector<std::vector<float>> attention;
                for (int l = 0; l < 2; ++l) attention.push_back(randomScores(rng, cache->length(l)));
                StepContext step;
                step.tokensSeen = 51 + t;
                step.attention = &attention;
                policy->afterStep(*cache, step);
                twin->afterStep(*twinCache, step);
            }
            for (int l = 0; l < 2; ++l) QCOMPARE(twinCache->tokenIndices(l), cache->tokenIndices(l));
        }
    }

    void names() {
        const Budget b = Budget::fromEvictedFraction(0.5);
        QCOMPARE(StreamingPolicy(b).name(), std::string("streaming"));
        QCOMPARE(H2oPolicy(b, true).name(), std::string("h2o (faithful)"));
        QCOMPARE(H2oPolicy(b, false).name(), std::string("h2o (fixed)"));
        QCOMPARE(ElasticPolicy(b, true).name(), std::string("elastic (faithful)"));
        QCOMPARE(ElasticPolicy(b, false).name(), std::string("elastic (fixed)"));
        QCOMPARE(SnapKvPolicy(b).name(), std::string("snapkv"));
        QCOMPARE(PyramidKvPolicy(b).name(), std::string("pyramidkv"));
        QCOMPARE(VlCachePolicy(b).name(), std::string("vlcache"));
        QVERIFY(H2oPolicy(b, true).wantsStepAttention());
        QVERIFY(!ElasticPolicy(b, true).wantsStepAttention());
    }
};

QTEST_APPLESS_MAIN(TestBaselines)
#include "test_baselines.moc"
