// The batch evaluation end to end on the tiny model and the bundled MM-Vet-shaped set: what it
// writes, that the full-cache reference is generated once per sample and reused, that a run
// cancelled part-way (or torn by a kill mid-write) resumes to exactly the uninterrupted files,
// and that shards merged equal one unsharded run.
#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/paths.h"
#include "engine/common/error.h"
#include "engine/eval/policy_grid.h"
#include "engine/eval/results.h"
#include "engine/eval/runner.h"

using namespace pkv;
using pkvtest::errorOf;
using nlohmann::json;

namespace {

constexpr int kSamples = 6;
constexpr int kPolicies = 2;

QByteArray readFile(const QString& path) {
    QFile f(path);
    f.open(QIODevice::ReadOnly);
    return f.readAll();
}


}  // namespace

class TestRunner : public QObject {
    Q_OBJECT
    std::shared_ptr<LlavaModel> model_;
    Dataset data_;
    QTemporaryDir tmp_;
    QString whole_;  // the uninterrupted, unsharded run

    EvalOptions options() const {
        EvalOptions o;
        PolicySpec full, prefixkv;
        prefixkv.method = "prefixkv";
        prefixkv.budget = Budget::keptPercent(50);
        o.policies = {full, prefixkv};
        o.maxNewTokens = 6;
        return o;
    }
    std::string dir(const char* name) const { return pkvtest::str(tmp_.filePath(name)); }

private slots:
    void initTestCase() {
        model_ = LlavaModel::load(pkvtest::str(pkvtest::fixturesDir() + "/models/tiny-gqa-f32"), {DeviceChoice::Cpu});
        data_ = loadDataset(pkvtest::str(pkvtest::sourceDir() + "/resources/eval/mm-vet/mm-vet.json"),
                            pkvtest::str(pkvtest::sourceDir() + "/resources/samples"));
        QCOMPARE(int(data_.samples.size()), kSamples);
        whole_ = tmp_.filePath("whole");
    }

    void uninterruptedRun() {
        EvalOptions o = options();
        std::vector<EvalProgress> seen;
        o.onProgress = [&](const EvalProgress& p) { seen.push_back(p); };
        const EvalReport r = runEvaluation(model_, data_, pkvtest::str(whole_), o);
        QVERIFY(!r.cancelled);
        QCOMPARE(r.resultsWritten, kSamples * kPolicies);
        QCOMPARE(r.referencesGenerated, kSamples);  // once per sample, shared by both policies
        QCOMPARE(r.prefills, kSamples + kSamples * kPolicies);
        QCOMPARE(seen.back().done, kSamples * kPolicies);
        QCOMPARE(seen.back().total, kSamples * kPolicies);
        QCOMPARE(seen.back().samples, kSamples);
        QVERIFY(seen.back().etaSeconds == 0.0);

        const std::vector<json> lines = readJsonLines(pkvtest::str(whole_ + "/results.jsonl"));
        const std::vector<json> refs = readJsonLines(pkvtest::str(whole_ + "/reference.jsonl"));
        QCOMPARE(int(lines.size()), kSamples * kPolicies);
        QCOMPARE(int(refs.size()), kSamples);
        double nll[2] = {0, 0};
        int64_t tokens[2] = {0, 0};
        for (size_t i = 0; i < lines.size(); ++i) {
            const json& l = lines[i];
            QCOMPARE(l["sample"].get<int>(), int(i) / kPolicies);  // sample-major, policies in order
            const int p = int(i) % kPolicies;
            QCOMPARE(l["policy_key"].get<std::string>(), std::string(p == 0 ? "full" : "prefixkv_50"));
            const json& ref = refs[size_t(l["sample"].get<int>())];
            QVERIFY(!ref["text"].get<std::string>().empty());
            QCOMPARE(ref["token_ids"].size(), size_t(6));  // the tiny model does not stop within 6
            if (p == 0) {
                // The full policy reproduces the reference generation: ROUGE-L is 1 up to the +1e-8.
                QCOMPARE(l["hypothesis"], ref["text"]);
                QCOMPARE(l["rouge_l"]["f"].get<double>(), 2.0 * (1.0 / (2.0 + 1e-8)));
                QCOMPARE(l["kept_fraction"].get<double>(), 1.0);
            } else {
                QVERIFY(l["kept_fraction"].get<double>() < 0.6);
            }
            QCOMPARE(l["answer_tokens"].get<size_t>(), model_->tokenizer().encode(data_.samples[i / kPolicies].answer).size());
            nll[p] += l["nll_sum"].get<double>();
            tokens[p] += l["answer_tokens"].get<int64_t>();
            // The trace has every layer's length after the prefill and after each decode step.
            const json trace = readJsonFile(pkvtest::str(whole_ + "/" + QString::fromStdString(l["trace"])));
            QCOMPARE(trace["layer_lengths"].size(), size_t(6));
            QCOMPARE(trace["layer_lengths"][0].size(), size_t(3));
            const int64_t n = l["prompt_tokens"].get<int64_t>();
            QCOMPARE(trace["tokens_seen"][0].get<int64_t>(), n);
            QCOMPARE(trace["tokens_seen"][5].get<int64_t>(), n + 5);
            if (p == 0) QCOMPARE(trace["layer_lengths"][5][2].get<int64_t>(), n + 5);
            else QVERIFY(trace["layer_lengths"][0][2].get<int64_t>() < n);
        }
        const json summary = readJsonFile(pkvtest::str(whole_ + "/summary.json"));
        QCOMPARE(summary.size(), size_t(kPolicies));
        for (int p = 0; p < kPolicies; ++p) {
            QCOMPARE(summary[p]["samples"].get<int>(), kSamples);
            QCOMPARE(summary[p]["ppl"].get<double>(), std::exp(nll[p] / double(tokens[p])));  // pooled over tokens
        }
        QVERIFY(summary[1]["kv_mib"].get<double>() < summary[0]["kv_mib"].get<double>());
        QVERIFY(readFile(whole_ + "/summary.csv").startsWith("key,method,policy,keep_percent,samples"));
    }

    void rerunReusesEverything() {
        const QByteArray before = readFile(whole_ + "/results.jsonl");
        const EvalReport r = runEvaluation(model_, data_, pkvtest::str(whole_), options());
        QCOMPARE(r.resultsWritten, 0);
        QCOMPARE(r.resultsSkipped, kSamples * kPolicies);
        QCOMPARE(r.prefills, 0);
        QCOMPARE(readFile(whole_ + "/results.jsonl"), before);
    }

    // A new policy on an old folder: only its lines are computed, and the references are reused.
    void addedPolicyReusesReferences() {
        QVERIFY(QDir().mkpath(tmp_.filePath("grow")));
        for (const char* f : {"run.json", "reference.jsonl"})
            QVERIFY(QFile::copy(whole_ + "/" + f, tmp_.filePath("grow/") + f));
        EvalOptions o = options();
        o.policies.resize(1);
        const EvalReport r = runEvaluation(model_, data_, dir("grow"), o);
        QCOMPARE(r.referencesGenerated, 0);
        QCOMPARE(r.referencesReused, kSamples);
        QCOMPARE(r.prefills, kSamples);
    }

    void cancelledRunResumes() {
        const std::string d = dir("resumed");
        std::atomic<bool> cancel{false};
        EvalOptions o = options();
        o.cancel = &cancel;
        o.onProgress = [&](const EvalProgress& p) {
            if (p.done == 5) cancel.store(true);
        };
        const EvalReport first = runEvaluation(model_, data_, d, o);
        QVERIFY(first.cancelled);
        QCOMPARE(first.resultsWritten, 5);
        // A kill in the middle of writing a line leaves it torn; the resume cuts it off.
        {
            QFile f(QString::fromStdString(d) + "/results.jsonl");
            QVERIFY(f.open(QIODevice::Append));
            f.write("{\"sample\": 2, \"policy_key\": \"prefi");
        }
        const EvalReport second = runEvaluation(model_, data_, d, options());
        QVERIFY(!second.cancelled);
        QCOMPARE(second.resultsSkipped, 5);
        QCOMPARE(second.resultsWritten, kSamples * kPolicies - 5);
        QCOMPARE(first.referencesGenerated + second.referencesGenerated, kSamples);
        QCOMPARE(readFile(QString::fromStdString(d) + "/results.jsonl"), readFile(whole_ + "/results.jsonl"));
        QCOMPARE(readFile(QString::fromStdString(d) + "/reference.jsonl"), readFile(whole_ + "/reference.jsonl"));
        QCOMPARE(readFile(QString::fromStdString(d) + "/summary.json"), readFile(whole_ + "/summary.json"));
    }

    // A cancel during a generation (between tokens) loses only the pair in flight.
    void cancelBetweenTokens() {
        const std::string d = dir("midtoken");
        std::atomic<bool> cancel{false};
        EvalOptions o = options();
        o.cancel = &cancel;
        o.onProgress = [&](const EvalProgress& p) {
            if (p.stage == "reference") cancel.store(true);
        };
        const EvalReport r = runEvaluation(model_, data_, d, o);
        QVERIFY(r.cancelled);
        QCOMPARE(r.referencesGenerated, 0);
        QCOMPARE(r.resultsWritten, 0);
        QVERIFY(readJsonLines(d + "/results.jsonl").empty());
    }

    void shardsMergeToTheWholeRun() {
        for (int k = 0; k < 2; ++k) {
            EvalOptions o = options();
            o.shardIndex = k;
            o.shardCount = 2;
            const EvalReport r = runEvaluation(model_, data_, dir(k ? "shard1" : "shard0"), o);
            QCOMPARE(r.resultsWritten, kSamples / 2 * kPolicies);
        }
        mergeEvaluations({dir("shard0"), dir("shard1")}, dir("merged"));
        for (const char* f : {"/results.jsonl", "/reference.jsonl", "/summary.json", "/summary.csv"})
            QCOMPARE(readFile(tmp_.filePath("merged") + f), readFile(whole_ + f));
        QVERIFY(QFile::exists(tmp_.filePath("merged/traces/s5_prefixkv_50.json")));
    }

    void settingsMustMatch() {
        EvalOptions o = options();
        o.maxNewTokens = 7;
        QVERIFY(errorOf([&] { runEvaluation(model_, data_, pkvtest::str(whole_), o); }).contains("max_new_tokens"));
        o = options();
        o.shardIndex = 1;
        o.shardCount = 2;
        QVERIFY(errorOf([&] { runEvaluation(model_, data_, pkvtest::str(whole_), o); }).contains("shard 0/1"));
        o.shardIndex = 2;
        QVERIFY(errorOf([&] { runEvaluation(model_, data_, dir("x"), o); }).contains("0 <= K < N"));
        o = options();
        o.policies[1].method = "nonsense";
        QVERIFY(errorOf([&] { runEvaluation(model_, data_, dir("y"), o); }).contains("nonsense"));
        QVERIFY(errorOf([&] { mergeEvaluations({dir("grow"), dir("nothing")}, dir("z")); }).contains("no run.json"));
    }

    // The cache's precision is a setting of the run: a folder written with an f32 cache is not
    // continued with an f16 one (and a folder from before the setting existed counts as f32).
    void kvDtypeIsASetting() {
        LoadOptions half;
        half.device = DeviceChoice::Cpu;
        half.kvDtype = KvDtypeChoice::F16;
        auto model16 = LlavaModel::load(pkvtest::str(pkvtest::fixturesDir() + "/models/tiny-gqa-f32"), half);
        const QString error = errorOf([&] { runEvaluation(model16, data_, pkvtest::str(whole_), options()); });
        QVERIFY2(error.contains("kv_dtype") && error.contains("\"F32\" there, \"F16\" now"), qPrintable(error));

        QFile run(whole_ + "/run.json");
        QVERIFY(run.open(QIODevice::ReadOnly));
        nlohmann::json j = nlohmann::json::parse(run.readAll().toStdString());
        run.close();
        QCOMPARE(QString::fromStdString(j.at("kv_dtype").get<std::string>()), QString("F32"));
        j.erase("kv_dtype");  // as an older version wrote it
        const QString old = tmp_.filePath("old");
        QVERIFY(QDir().mkpath(old));
        QFile oldRun(old + "/run.json");
        QVERIFY(oldRun.open(QIODevice::WriteOnly));
        oldRun.write(QByteArray::fromStdString(j.dump()));
        oldRun.close();
        QVERIFY(errorOf([&] { runEvaluation(model16, data_, pkvtest::str(old), options()); }).contains("kv_dtype"));
    }

    // A sample that cannot be scored stops the run with a sentence naming it; earlier ones stay.
    void sampleErrorsNameTheItem() {
        QFile f(tmp_.filePath("long.json"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(("[{\"image\": \"chelsea.jpg\", \"question\": \"q\", \"answer\": \"a\"},"
                 " {\"image\": \"coffee.jpg\", \"question\": \"q\", \"answer\": \"" +
                 QByteArray("word ").repeated(200) + "\"}]").constData());
        f.close();
        const Dataset d = loadDataset(pkvtest::str(tmp_.filePath("long.json")), data_.imageDir);
        const QString msg = errorOf([&] { runEvaluation(model_, d, dir("long"), options()); });
        QVERIFY2(msg.contains("long.json, item 1") && msg.contains("context holds 256"), qPrintable(msg));
        QCOMPARE(int(readJsonLines(dir("long") + "/results.jsonl").size()), kPolicies);
    }

    void policyKeys() {
        PolicySpec s;
        QCOMPARE(policyKey(s), std::string("full"));
        s.method = "prefixkv";
        s.budget = Budget::keptPercent(20);
        QCOMPARE(policyKey(s), std::string("prefixkv_20"));
        s.budget = Budget::keptTokens(128);
        QCOMPARE(policyKey(s), std::string("prefixkv_128tok"));
        s.profilePath = "/x/prefixkv_llava-v1.5-7b_0.8.json";
        QCOMPARE(policyKey(s), std::string("prefixkv_profile-prefixkv_llava-v1.5-7b_0.8"));
        QCOMPARE(stripWhitespace("  a b </s>\n"), std::string("a b </s>"));
    }

    void grid() {
        QCOMPARE(parseKeepList(" 10,20% ,50"), (std::vector<double>{10, 20, 50}));
        QVERIFY(errorOf([] { parseKeepList("10,abc"); }).contains("\"abc\""));
        QVERIFY(errorOf([] { parseKeepList("150"); }).contains("(0, 100]"));
        const std::vector<PolicySpec> g = policyGrid({"full", "prefixkv", "uniform"}, {10, 50});
        QCOMPARE(g.size(), size_t(5));  // full once, whatever the budgets
        QCOMPARE(policyKey(g[0]), std::string("full"));
        QCOMPARE(policyKey(g[2]), std::string("prefixkv_50"));
        QCOMPARE(policyKey(g[3]), std::string("uniform_10"));
        QCOMPARE(policyGrid({"prefixkv"}, {10, 50}, true, "/p/conf.json").size(), size_t(1));
        QVERIFY(errorOf([] { policyGrid({"nope"}, {10}); }).contains("known methods"));
    }
};

QTEST_APPLESS_MAIN(TestRunner)
#include "test_runner.moc"
