// Teacher-forced perplexity (spec 4.2) against transformers: tests/fixtures/make_ppl_golden.py
// scored two answers on tiny-gqa-f32 with a full cache in float32. The engine's logits agree with
// transformers to 1e-4 (test_model_golden), so each NLL may differ by about twice that; the pooled
// PPL is held to 1e-4 relative.
#include <QFile>
#include <QtTest>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/paths.h"
#include "engine/common/error.h"
#include "engine/eval/perplexity.h"
#include "engine/io/safetensors.h"
#include "engine/kv/full_policy.h"

using namespace pkv;
using pkvtest::errorOf;

namespace {

// Keeps every other prompt entry (and the last) in every layer after the prefill, nothing after
// steps: a compression independent of the policies under development elsewhere.
class HalvingPolicy : public KvPolicy {
public:
    std::string name() const override { return "halving"; }
    void afterPrefill(KvCache& cache, const PrefillContext&) override {
        for (int l = 0; l < cache.numLayers(); ++l) {
            std::vector<int64_t> keep;
            for (int64_t i = 0; i < cache.length(l); i += 2) keep.push_back(i);
            if (keep.back() != cache.length(l) - 1) keep.push_back(cache.length(l) - 1);
            cache.gather(l, keep);
        }
    }
    void afterStep(KvCache&, const StepContext&) override {}
    std::unique_ptr<KvPolicy> clone() const override { return std::make_unique<HalvingPolicy>(); }
};

nlohmann::json golden() {
    QFile f(pkvtest::fixturesDir() + "/golden/ppl_tiny-gqa-f32.json");
    if (!f.open(QIODevice::ReadOnly)) qFatal("cannot read the PPL golden");
    return nlohmann::json::parse(f.readAll().toStdString());
}

std::vector<float> goldenPixels() {
    auto f = SafetensorsFile::open(pkvtest::str(pkvtest::fixturesDir() + "/golden/tiny-gqa-f32.safetensors"));
    const TensorView* t = f->find("pixels");
    std::vector<float> v(size_t(t->numel()));
    std::memcpy(v.data(), t->data, t->nbytes);
    return v;
}


}  // namespace

class TestPerplexity : public QObject {
    Q_OBJECT
    std::shared_ptr<LlavaModel> model_;
    std::vector<float> pixels_;
    nlohmann::json golden_;

    // Pooled over both golden samples with the given policy (none = full cache).
    PerplexityPool score(const std::function<std::unique_ptr<KvPolicy>()>& policy, std::vector<std::vector<double>>* nlls) {
        PerplexityPool pool;
        for (const auto& sample : golden_["samples"]) {
            Session s(model_);
            if (policy) s.setPolicy(policy());
            s.prefillPixels(sample["prompt"].get<std::string>(), &pixels_);
            const std::vector<int> ids = model_->tokenizer().encode(sample["answer"].get<std::string>());
            const std::vector<double> nll = teacherForcedNll(s, ids);
            pool.add(nll);
            if (nlls) nlls->push_back(nll);
        }
        return pool;
    }

private slots:
    void initTestCase() {
        model_ = LlavaModel::load(pkvtest::str(pkvtest::fixturesDir() + "/models/tiny-gqa-f32"), {DeviceChoice::Cpu});
        pixels_ = goldenPixels();
        golden_ = golden();
    }

    void answerIdsMatchTheSlowTokenizer() {
        for (const auto& sample : golden_["samples"])
            QCOMPARE(model_->tokenizer().encode(sample["answer"].get<std::string>()),
                     sample["answer_ids"].get<std::vector<int>>());
    }

    void fullCacheMatchesTransformers_data() {
        QTest::addColumn<bool>("fullPolicy");
        QTest::newRow("no policy") << false;
        QTest::newRow("full policy") << true;
    }
    void fullCacheMatchesTransformers() {
        QFETCH(bool, fullPolicy);
        std::vector<std::vector<double>> nlls;
        std::function<std::unique_ptr<KvPolicy>()> make;
        if (fullPolicy) make = [] { return std::make_unique<FullPolicy>(); };
        const PerplexityPool pool = score(make, &nlls);
        for (size_t i = 0; i < nlls.size(); ++i) {
            const auto expected = golden_["samples"][i]["nll"].get<std::vector<double>>();
            QCOMPARE(nlls[i].size(), expected.size());
            for (size_t k = 0; k < expected.size(); ++k)
                QVERIFY2(std::abs(nlls[i][k] - expected[k]) <= 2e-4,
                         qPrintable(QString("sample %1 token %2: %3 vs %4").arg(i).arg(k).arg(nlls[i][k]).arg(expected[k])));
        }
        QCOMPARE(pool.tokens(), golden_["tokens"].get<int64_t>());
        const double want = golden_["pooled_ppl"].get<double>();
        QVERIFY2(std::abs(pool.perplexity() - want) <= 1e-4 * want,
                 qPrintable(QString("PPL %1 vs transformers %2").arg(pool.perplexity(), 0, 'g', 12).arg(want, 0, 'g', 12)));
    }

    // The first answer token is scored from the full prefill; compression changes the rest.
    void compressionAppliesAfterTheFirstToken() {
        std::vector<std::vector<double>> full, halved;
        const PerplexityPool a = score({}, &full);
        const PerplexityPool b = score([] { return std::make_unique<HalvingPolicy>(); }, &halved);
        for (size_t i = 0; i < full.size(); ++i) {
            QCOMPARE(halved[i][0], full[i][0]);
            QVERIFY(halved[i][1] != full[i][1]);
        }
        QVERIFY(a.perplexity() != b.perplexity());
    }

    void pooledNotAveraged() {
        PerplexityPool p;
        p.add(std::vector<double>{1.0, 1.0});
        p.add(std::vector<double>{4.0});
        QCOMPARE(p.tokens(), int64_t(3));
        QCOMPARE(p.perplexity(), std::exp(2.0));  // a mean of per-sample PPLs would be (e + e^4)/2
        QVERIFY(std::isnan(PerplexityPool().perplexity()));
    }

    void tokenNllIsLogSoftmax() {
        QCOMPARE(tokenNll({0.f, 0.f}, 1), std::log(2.0));
        QCOMPARE(tokenNll({1000.f, 0.f}, 0), 0.0);  // no overflow: shifted by the maximum
        QVERIFY(errorOf([] { tokenNll({0.f}, 3); }).contains("outside"));
    }

    void misuseIsAnError() {
        Session s(model_);
        QVERIFY(errorOf([&] { teacherForcedNll(s, {5}); }).contains("prefill first"));
        const std::string prompt = golden_["samples"][0]["prompt"];
        s.prefillPixels(prompt, &pixels_);
        QVERIFY(errorOf([&] { teacherForcedNll(s, {}); }).contains("empty"));
        const QString tooLong = errorOf([&] { teacherForcedNll(s, std::vector<int>(200, 40)); });
        QVERIFY2(tooLong.contains("context holds 256"), qPrintable(tooLong));
        GenerateOptions g;
        g.maxNewTokens = 2;
        s.generate(g, {});
        QVERIFY(errorOf([&] { teacherForcedNll(s, {5}); }).contains("fresh"));
    }

    void cancelBetweenTokens() {
        Session s(model_);
        s.prefillPixels(golden_["samples"][0]["prompt"].get<std::string>(), &pixels_);
        std::atomic<bool> cancel{true};
        bool cancelled = false;
        try {
            teacherForcedNll(s, {40, 41, 42}, &cancel);
        } catch (const Cancelled&) {
            cancelled = true;
        }
        QVERIFY(cancelled);
        QCOMPARE(s.tokensSeen(), s.stats().promptTokens);  // stopped before the first feed
    }
};

QTEST_APPLESS_MAIN(TestPerplexity)
#include "test_perplexity.moc"
