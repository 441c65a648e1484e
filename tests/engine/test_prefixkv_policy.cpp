// The PrefixKV policy against tests/fixtures/prefixkv_reference.py, an independent numpy
// transcription of spec 2.2-2.6, on the token importance transformers computed for the
// tiny-gqa-f32 model. The policy works on a real cpu KvCache whose entries hold their own token
// position as data, so which entries survive is read back from the cache itself.
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

#include <cmath>
#include <cstring>
#include <limits>

#include "common/errors.h"
#include "common/paths.h"
#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/kv/full_policy.h"
#include "engine/kv/prefixkv_policy.h"
#include "engine/kv/profile.h"
#include "engine/kv/uniform_policy.h"
#include "engine/model/llava.h"
#include "engine/session.h"

using namespace pkv;
using pkvtest::errorOf;
using Counts = std::vector<int64_t>;
using Importance = std::vector<std::vector<float>>;

namespace {

constexpr int kWidth = 4;
const QString kModel = "tiny-gqa-f32";

QString goldenDir() { return pkvtest::fixturesDir() + "/golden/"; }

QJsonObject readJson(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) qFatal("cannot read %s", qPrintable(path));
    return QJsonDocument::fromJson(f.readAll()).object();
}

Counts ints(const QJsonValue& v) {
    Counts out;
    for (const auto& x : v.toArray()) out.push_back(int64_t(x.toDouble()));
    return out;
}
std::vector<Counts> intRows(const QJsonValue& v) {
    std::vector<Counts> out;
    for (const auto& row : v.toArray()) out.push_back(ints(row));
    return out;
}
std::vector<double> doubles(const QJsonValue& v) {
    std::vector<double> out;
    for (const auto& x : v.toArray()) out.push_back(x.toDouble());
    return out;
}

// The golden "importance" tensor [L, N] as per-layer vectors.
Importance goldenImportance() {
    auto file = SafetensorsFile::open(pkvtest::str(goldenDir() + kModel + ".safetensors"));
    const TensorView* t = file->find("importance");
    if (!t || t->shape.size() != 2) qFatal("golden importance missing");
    Importance out(size_t(t->shape[0]), std::vector<float>(size_t(t->shape[1])));
    for (size_t l = 0; l < out.size(); ++l)
        std::memcpy(out[l].data(), t->data + l * out[l].size() * sizeof(float), out[l].size() * sizeof(float));
    return out;
}

// Appends token `position` to every layer: keys hold the position, values its negative.
void appendToken(Backend& be, KvCache& cache, int64_t position) {
    const std::vector<float> k(kWidth, float(position)), v(kWidth, -float(position));
    const Tensor kt = be.upload(k.data(), 1, kWidth), vt = be.upload(v.data(), 1, kWidth);
    for (int l = 0; l < cache.numLayers(); ++l) cache.append(l, kt, vt, position);
}

std::unique_ptr<KvCache> promptCache(Backend& be, int layers, int64_t n) {
    auto cache = be.createKvCache(layers, kWidth, DType::F32);
    for (int64_t j = 0; j < n; ++j) appendToken(be, *cache, j);
    return cache;
}

// The positions a layer holds, read from the entries' data, checked against the cache's record.
Counts survivors(const KvCache& cache, int layer) {
    Counts out;
    std::vector<float> k, v;
    for (int64_t i = 0; i < cache.length(layer); ++i) {
        cache.read(layer, i, k, v);
        out.push_back(int64_t(k[0]));
        if (v[0] != -k[0]) qFatal("entry %lld of layer %d is torn", (long long)i, layer);
    }
    if (out != cache.tokenIndices(layer)) qFatal("cache record and data disagree in layer %d", layer);
    return out;
}

PrefillContext context(const Importance& importance) {
    PrefillContext ctx;
    ctx.promptLength = int64_t(importance.at(0).size());
    ctx.importance = &importance;
    return ctx;
}

void step(KvPolicy& policy, Backend& be, KvCache& cache, int64_t tokensSeen) {
    appendToken(be, cache, tokensSeen - 1);
    StepContext ctx;
    ctx.tokensSeen = tokensSeen;
    policy.afterStep(cache, ctx);
}


}  // namespace

class TestPrefixKvPolicy : public QObject {
    Q_OBJECT
private slots:
    void matchesReference_data() {
        QTest::addColumn<QString>("file");
        for (const char* r : {"0.1", "0.5", "0.8", "0.9", "profile"})
            QTest::newRow(r) << QString("prefixkv_%1_%2.json").arg(kModel, r);
    }

    // Counts, kept positions, P_l and 40 decode steps, exactly as the Python transcription.
    void matchesReference() {
        QFETCH(QString, file);
        const QJsonObject gold = readJson(goldenDir() + file);
        const Importance importance = goldenImportance();
        const int layers = int(importance.size());
        const int64_t n = int64_t(importance[0].size());
        QCOMPARE(n, int64_t(gold["prompt_length"].toInt()));

        std::unique_ptr<PrefixKvPolicy> policy;
        if (gold["mode"].toString() == "online") {
            policy = PrefixKvPolicy::online(Budget::fromEvictedFraction(gold["ratio"].toDouble()));
        } else {
            const std::string conf = pkvtest::str(goldenDir() + gold["conf"].toString());
            policy = PrefixKvPolicy::fromFractions(readProfile(conf, layers));
        }
        auto be = createCpuBackend();
        auto cache = promptCache(*be, layers, n);
        policy->afterPrefill(*cache, context(importance));

        QCOMPARE(policy->evictCounts(), ints(gold["evict"]));
        QCOMPARE(policy->fractions(), doubles(gold["fractions"]));
        QCOMPARE(policy->evictionIndex(), ints(gold["eviction_index"]));
        const std::vector<Counts> kept = intRows(gold["kept"]);
        QCOMPARE(policy->keptAfterPrefill(), kept);
        if (gold["mode"].toString() == "online") {
            QVERIFY(policy->search().has_value());
            QCOMPARE(policy->search()->target, gold["target"].toDouble());
            QCOMPARE(policy->search()->threshold, gold["threshold"].toDouble());
            QCOMPARE(policy->search()->iterations, gold["iterations"].toInt());
            QCOMPARE(policy->search()->evictAtThreshold, ints(gold["evict_at_threshold"]));
        }
        for (int l = 0; l < layers; ++l) QCOMPARE(survivors(*cache, l), kept[size_t(l)]);

        for (const auto& s : gold["steps"].toArray()) {
            const QJsonObject expected = s.toObject();
            const int64_t seen = expected["tokens_seen"].toInt();
            step(*policy, *be, *cache, seen);
            const std::vector<Counts> positions = intRows(expected["positions"]);
            const Counts lengths = ints(expected["lengths"]);
            for (int l = 0; l < layers; ++l) {
                QCOMPARE(cache->length(l), lengths[size_t(l)]);
                QCOMPARE(survivors(*cache, l), positions[size_t(l)]);
            }
        }
    }

    // A clone taken after the prefill continues on its own copy exactly like the original.
    void cloneContinuesIndependently() {
        const Importance importance = goldenImportance();
        auto be = createCpuBackend();
        auto policy = PrefixKvPolicy::online(Budget::keptPercent(50));
        auto a = promptCache(*be, 3, 107);
        policy->afterPrefill(*a, context(importance));
        auto b = a->clone();
        auto copy = policy->clone();
        QCOMPARE(copy->name(), std::string("prefixkv"));
        for (int64_t t = 108; t < 130; ++t) {
            step(*policy, *be, *a, t);
            step(*copy, *be, *b, t);
        }
        for (int l = 0; l < 3; ++l) QCOMPARE(survivors(*a, l), survivors(*b, l));
    }

    // Every layer evicts floor(r * N) by the same ranking, and decodes against f = r.
    void uniformPolicy() {
        const Importance importance = goldenImportance();
        auto be = createCpuBackend();
        UniformPolicy policy(Budget::keptPercent(50));
        QCOMPARE(policy.name(), std::string("uniform"));
        auto cache = promptCache(*be, 3, 107);
        policy.afterPrefill(*cache, context(importance));
        QCOMPARE(policy.evictCounts(), (Counts{53, 53, 53}));  // floor(0.5 * 107)
        QCOMPARE(policy.fractions(), (std::vector<double>{0.5, 0.5, 0.5}));
        QCOMPARE(policy.evictionIndex(), (Counts{29, 29, 29}));  // 54 - 25
        for (int l = 0; l < 3; ++l) QCOMPARE(survivors(*cache, l), selectKeptPositions(importance[size_t(l)], 53));
        // 54 entries at T = 107: the first step (55 - 54) is 1 over, the second (55 - 54.5) not.
        step(policy, *be, *cache, 108);
        QCOMPARE(cache->length(0), int64_t(54));
        step(policy, *be, *cache, 109);
        QCOMPARE(cache->length(0), int64_t(55));
        QVERIFY(!policy.search().has_value());
        auto copy = policy.clone();
        QCOMPARE(copy->name(), std::string("uniform"));
    }

    void fullPolicyKeepsEverything() {
        const Importance importance = goldenImportance();
        auto be = createCpuBackend();
        FullPolicy policy;
        QCOMPARE(policy.name(), std::string("full"));
        auto cache = promptCache(*be, 3, 107);
        policy.afterPrefill(*cache, context(importance));
        for (int64_t t = 108; t < 118; ++t) step(policy, *be, *cache, t);
        for (int l = 0; l < 3; ++l) QCOMPARE(cache->length(l), int64_t(117));
        QCOMPARE(policy.clone()->name(), std::string("full"));
    }

    // 1% kept cannot be reached (each layer can evict at most N - 2): the search stops at its cap
    // and every layer keeps only BOS and the last prompt token, with P = 2 / 2 = 1.
    void saturatedLayers() {
        const Importance importance = goldenImportance();
        auto be = createCpuBackend();
        auto policy = PrefixKvPolicy::online(Budget::keptPercent(1));
        auto cache = promptCache(*be, 3, 107);
        policy->afterPrefill(*cache, context(importance));
        QCOMPARE(policy->search()->iterations, kSearchMaxIterations);
        QCOMPARE(policy->evictCounts(), (Counts{105, 105, 105}));
        QCOMPARE(policy->evictionIndex(), (Counts{1, 1, 1}));
        for (int l = 0; l < 3; ++l) QCOMPARE(survivors(*cache, l), (Counts{0, 106}));
        // Then a window of about 1.9% of T behind the permanent BOS.
        for (int64_t t = 108; t <= 207; ++t) step(*policy, *be, *cache, t);
        QCOMPARE(survivors(*cache, 0), (Counts{0, 204, 205, 206}));
    }

    // 100% kept: online evicts nothing at prefill; the decode rule never fires.
    void everythingKept() {
        const Importance importance = goldenImportance();
        auto be = createCpuBackend();
        auto policy = PrefixKvPolicy::online(Budget::keptPercent(100));
        auto cache = promptCache(*be, 3, 107);
        policy->afterPrefill(*cache, context(importance));
        QCOMPARE(policy->evictCounts(), (Counts{0, 0, 0}));
        for (int64_t t = 108; t < 130; ++t) step(*policy, *be, *cache, t);
        for (int l = 0; l < 3; ++l) QCOMPARE(cache->length(l), int64_t(129));
    }

    // Prompts of 1-3 tokens: nothing to choose from but token 1 of 3.
    void tinyPrompts_data() {
        QTest::addColumn<qint64>("n");
        QTest::addColumn<Counts>("kept");
        QTest::newRow("N=3") << qint64(3) << Counts{0, 2};
        QTest::newRow("N=2") << qint64(2) << Counts{0, 1};
        QTest::newRow("N=1") << qint64(1) << Counts{0};
    }
    void tinyPrompts() {
        QFETCH(qint64, n);
        QFETCH(Counts, kept);
        const Importance importance(2, std::vector<float>(size_t(n), 1.f));
        auto be = createCpuBackend();
        auto profiled = PrefixKvPolicy::fromFractions({0.9, 0.9});
        auto cache = promptCache(*be, 2, n);
        profiled->afterPrefill(*cache, context(importance));
        for (int l = 0; l < 2; ++l) QCOMPARE(survivors(*cache, l), kept);
        for (int64_t t = n + 1; t <= n + 5; ++t) step(*profiled, *be, *cache, t);
        QVERIFY(cache->length(0) >= 1);

        auto online = PrefixKvPolicy::online(Budget::keptPercent(10));
        auto fresh = promptCache(*be, 2, n);
        online->afterPrefill(*fresh, context(importance));
        QCOMPARE(online->evictCounts(), (Counts{0, 0}));  // e(p) = N - (k+1) - 2 <= 0
    }

    // A layer whose importance is all zero ranks as uniform: no division by zero, ties by position.
    void allZeroLayer() {
        Importance importance = goldenImportance();
        std::fill(importance[1].begin(), importance[1].end(), 0.f);
        auto be = createCpuBackend();
        auto policy = PrefixKvPolicy::online(Budget::keptPercent(50));
        auto cache = promptCache(*be, 3, 107);
        policy->afterPrefill(*cache, context(importance));
        const int64_t e = policy->evictCounts()[1];
        QVERIFY(e > 0 && e <= 105);
        Counts expected{0};
        for (int64_t j = 1 + e; j < 107; ++j) expected.push_back(j);
        QCOMPARE(survivors(*cache, 1), expected);
    }

    void rejectsBadInput() {
        auto be = createCpuBackend();
        Importance importance = goldenImportance();
        importance[2][40] = std::numeric_limits<float>::quiet_NaN();
        auto policy = PrefixKvPolicy::online(Budget::keptPercent(50));
        auto cache = promptCache(*be, 3, 107);
        QString m = errorOf([&] { policy->afterPrefill(*cache, context(importance)); });
        QVERIFY2(m.contains("layer 2") && m.contains("token 40"), qPrintable(m));
        QCOMPARE(cache->length(0), int64_t(107));  // untouched

        const Importance good = goldenImportance();
        auto twoLayers = PrefixKvPolicy::fromFractions({0.5, 0.5});
        m = errorOf([&] { twoLayers->afterPrefill(*cache, context(good)); });
        QVERIFY2(m.contains("2 per-layer fractions") && m.contains("3 layers"), qPrintable(m));

        m = errorOf([&] { PrefixKvPolicy::fromFractions({0.5, 1.5}); });
        QVERIFY2(m.contains("layer 1"), qPrintable(m));

        auto fresh = PrefixKvPolicy::online(Budget::keptPercent(50));
        m = errorOf([&] { step(*fresh, *be, *cache, 108); });
        QVERIFY2(m.contains("prefilled"), qPrintable(m));
    }

    // On the tiny model: the engine's own importance (equal to transformers' to ~1e-5) gives the
    // reference's budgets, and 20 decode steps the reference's per-layer lengths.
    void endToEndOnTinyModel() {
        const QJsonObject gold = readJson(goldenDir() + QString("prefixkv_%1_0.5.json").arg(kModel));
        const QJsonObject meta = readJson(goldenDir() + kModel + ".json");
        auto model = LlavaModel::load(pkvtest::str(pkvtest::fixturesDir() + "/models/" + kModel), {DeviceChoice::Cpu});
        auto pixelsFile = SafetensorsFile::open(pkvtest::str(goldenDir() + kModel + ".safetensors"));
        const TensorView* px = pixelsFile->find("pixels");
        std::vector<float> pixels(size_t(px->numel()));
        std::memcpy(pixels.data(), px->data, px->nbytes);

        Session s(model);
        s.setPositionMode(PositionMode::LayerZeroLength);
        s.setPolicy(PrefixKvPolicy::online(Budget::keptPercent(50)));
        s.prefillPixels(pkvtest::str(meta["prompt"].toString()), &pixels);
        const auto* policy = dynamic_cast<const PrefixKvPolicy*>(s.policy());
        QVERIFY(policy);
        const int64_t n = s.stats().promptTokens;
        QCOMPARE(n, int64_t(gold["prompt_length"].toInt()));
        const Counts evict = ints(gold["evict"]);
        QCOMPARE(policy->evictCounts(), evict);
        for (int l = 0; l < 3; ++l) QCOMPARE(s.cache()->length(l), n - evict[size_t(l)]);
        // No near-tie separates the two importances here, so even the kept tokens agree.
        const std::vector<Counts> kept = intRows(gold["kept"]);
        for (int l = 0; l < 3; ++l) QCOMPARE(s.cache()->tokenIndices(l), kept[size_t(l)]);

        const QJsonArray steps = gold["steps"].toArray();
        for (int t = 0; t < 20; ++t) {
            const auto& logits = s.logits();
            s.feed(int(std::max_element(logits.begin(), logits.end()) - logits.begin()));
            const QJsonObject expected = steps[t].toObject();
            QCOMPARE(s.tokensSeen(), int64_t(expected["tokens_seen"].toInt()));
            const Counts lengths = ints(expected["lengths"]);
            const std::vector<Counts> positions = intRows(expected["positions"]);
            for (int l = 0; l < 3; ++l) {
                QCOMPARE(s.cache()->length(l), lengths[size_t(l)]);
                QCOMPARE(s.cache()->tokenIndices(l), positions[size_t(l)]);
            }
        }
        int64_t entries = 0;
        for (int l = 0; l < 3; ++l) entries += s.cache()->length(l);
        QCOMPARE(entries * s.cache()->bytesPerEntry(), s.cache()->bytesUsed());
        QCOMPARE(s.stats().kvBytes, s.cache()->bytesUsed());
    }
};

QTEST_APPLESS_MAIN(TestPrefixKvPolicy)
#include "test_prefixkv_policy.moc"
