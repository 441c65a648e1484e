// The prefixkv command as a script uses it: exit codes, one-sentence errors on stderr, and the
// JSON it prints.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include "common/paths.h"
#include "engine/common/openblas_core.h"

namespace {

struct Run {
    int code = -1;
    QByteArray out, err;
};

Run prefixkv(const QStringList& args, const QProcessEnvironment& env = QProcessEnvironment::systemEnvironment()) {
    QProcess p;
    p.setProcessEnvironment(env);
    p.start(QStringLiteral(PKV_BINARY_DIR) + "/app/cli/prefixkv", args);
    if (!p.waitForFinished(120000)) qFatal("prefixkv did not finish");
    return {p.exitCode(), p.readAllStandardOutput(), p.readAllStandardError()};
}

QString fixtureModel() { return pkvtest::fixturesDir() + "/models/tiny-gqa-f32"; }
QString sample() { return pkvtest::sourceDir() + "/resources/samples/chelsea.jpg"; }

}  // namespace

class TestCli : public QObject {
    Q_OBJECT
private slots:
    void generateJson() {
        const Run r = prefixkv({"generate", "--model", fixtureModel(), "--image", sample(), "--prompt",
                                "Describe the image.", "--max-new-tokens", "8", "--ignore-eos", "--json"});
        QCOMPARE(r.code, 0);
        const QJsonObject j = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(j["token_ids"].toArray().size(), 8);
        QCOMPARE(j["stop_reason"].toString(), QString("max_tokens"));
        const QJsonObject st = j["stats"].toObject();
        QCOMPARE(st["image_tokens"].toInt(), 16);
        // Full cache: every layer holds the prompt and the 7 tokens fed back.
        for (const auto& len : st["layer_lengths"].toArray()) QCOMPARE(len.toInt(), st["prompt_tokens"].toInt() + 7);
        QCOMPARE(j["policy"].toString(), QString("full"));
    }

    // Streamed text and the summary through one pipe (`prefixkv generate ... 2>&1 | tee log`):
    // the answer's line ends before the summary begins. stdout is block-buffered in a pipe, so
    // without a flush its last newline arrived after the summary, which then sat on the answer's
    // line.
    void generateTextThenSummaryInOnePipe() {
        QProcess p;
        p.setProcessChannelMode(QProcess::MergedChannels);
        p.start(QStringLiteral(PKV_BINARY_DIR) + "/app/cli/prefixkv",
                {"generate", "--model", fixtureModel(), "--image", sample(), "--prompt", "Describe the image.",
                 "--max-new-tokens", "6", "--ignore-eos"});
        QVERIFY(p.waitForFinished(120000));
        QCOMPARE(p.exitCode(), 0);
        const QByteArray all = p.readAll();
        const qsizetype summary = all.indexOf("[cpu | ");
        QVERIFY2(summary > 0, all.constData());
        QCOMPARE(all.at(summary - 1), '\n');
        QVERIFY(all.endsWith("stop: max_tokens]\n"));
    }

    void generateCompressedJson() {
        const Run r = prefixkv({"generate", "--model", fixtureModel(), "--image", sample(), "--prompt",
                                "Describe the image.", "--max-new-tokens", "4", "--ignore-eos", "--json", "--method",
                                "prefixkv", "--keep", "20%"});
        QCOMPARE(r.code, 0);
        const QJsonObject st = QJsonDocument::fromJson(r.out).object()["stats"].toObject();
        int64_t total = 0;
        for (const auto& len : st["layer_lengths"].toArray()) total += len.toInt();
        // About 20% of (prompt + 3 fed tokens) per layer on average, never the whole prompt.
        const double perLayer = double(total) / st["layer_lengths"].toArray().size();
        QVERIFY2(perLayer < 0.3 * st["prompt_tokens"].toInt(), qPrintable(QString::number(perLayer)));
        QCOMPARE(st["kv_bytes"].toInteger(), total * st["kv_bytes_per_entry"].toInteger());
    }

    void streamsOnDemoModel() {
        const Run r = prefixkv({"generate", "--image", sample(), "--prompt", "Hi", "--max-new-tokens", "5"});
        QCOMPARE(r.code, 0);
        QVERIFY(r.err.contains("demo model"));
        QVERIFY(!r.out.trimmed().isEmpty());
    }

    void errors_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("says");
        const QString m = fixtureModel();
        QTest::newRow("missing image") << QStringList{"generate", "--model", m, "--image", "/nope/cat.jpg", "--prompt", "x"} << "/nope/cat.jpg";
        QTest::newRow("not an image") << QStringList{"generate", "--model", m, "--image", m + "/config.json", "--prompt", "x"} << "config.json";
        QTest::newRow("empty prompt") << QStringList{"generate", "--model", m, "--prompt", "  "} << "empty";
        QTest::newRow("not a model") << QStringList{"generate", "--model", "/tmp", "--prompt", "x"} << "config.json";
        QTest::newRow("unknown method") << QStringList{"generate", "--model", m, "--prompt", "x", "--method", "magic"} << "magic";
        QTest::newRow("bad keep") << QStringList{"generate", "--model", m, "--prompt", "x", "--keep", "150%"} << "(0, 100]";
        QTest::newRow("bad number") << QStringList{"generate", "--model", m, "--prompt", "x", "--max-new-tokens", "ten"} << "max-new-tokens";
        QTest::newRow("bad kv dtype") << QStringList{"generate", "--model", m, "--prompt", "x", "--kv-dtype", "int8"} << "--kv-dtype must be auto, f32 or f16";
        QTest::newRow("bad weights") << QStringList{"generate", "--model", m, "--prompt", "x", "--weights", "ram"} << "--weights must be mapped or memory";
        QTest::newRow("info on a file") << QStringList{"info", "--model", m + "/config.json"} << "config.json";
    }
    void errors() {
        QFETCH(QStringList, args);
        QFETCH(QString, says);
        const Run r = prefixkv(args);
        QCOMPARE(r.code, 1);
        QVERIFY2(QString::fromUtf8(r.err).contains(says), r.err.constData());
        QCOMPARE(r.err.count('\n'), 1);  // one sentence, no stack trace
    }

    void pickledWeightsRefused() {
        QTemporaryDir dir;
        for (const QString& f : {"config.json", "tokenizer.model", "preprocessor_config.json"})
            QFile::copy(fixtureModel() + "/" + f, dir.filePath(f));
        QFile bin(dir.filePath("pytorch_model.bin"));
        QVERIFY(bin.open(QIODevice::WriteOnly));
        bin.write("\x80\x02}q\x00.");
        bin.close();
        const Run r = prefixkv({"info", "--model", dir.path()});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("pickle"), r.err.constData());
    }

    // Asking for CUDA where it cannot be used fails with the reason, instead of silently using the cpu.
    void cudaRequestedButUnavailable() {
        const Run probe = prefixkv({"info", "--model", fixtureModel(), "--json"});
        const QString device = QJsonDocument::fromJson(probe.out).object()["device"].toString();
        if (device.startsWith("cuda: ")) QSKIP("a CUDA device is present");
        const Run r = prefixkv({"generate", "--model", fixtureModel(), "--prompt", "x", "--device", "cuda"});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("CUDA was requested but cannot be used"), r.err.constData());
    }

    // bench --profile: every decode step runs each layer's attention once and the lm_head once,
    // so the op counts are known exactly; the paired steps come after the counted decode.
    void benchProfileJson() {
        const Run r = prefixkv({"bench", "--model", fixtureModel(), "--prompt-tokens", "40", "--decode-tokens", "3",
                                "--profile", "--json"});
        QCOMPARE(r.code, 0);
        const QJsonObject j = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(j["decode_steps"].toInt(), 3);
        QCOMPARE(j["prompt_tokens"].toInt(), 40);
        const QJsonObject decode = j["ops"].toObject()["decode"].toObject();
        QCOMPARE(decode["cachedAttention"].toObject()["calls"].toInt(), 3 * 3);  // steps x layers
        QCOMPARE(decode["rmsNorm"].toObject()["calls"].toInt(), 3 * (2 * 3 + 1));  // two per layer + final
        QVERIFY(!decode.contains("selfAttention"));  // the vision tower does not run while decoding
        const QJsonObject prefill = j["ops"].toObject()["image_and_prefill"].toObject();
        QCOMPARE(prefill["cachedAttention"].toObject()["calls"].toInt(), 3);
        QVERIFY(prefill["selfAttention"].toObject()["calls"].toInt() > 0);
        QVERIFY(prefill["cachedAttention"].toObject()["ms"].toDouble() > 0);
        const QJsonObject paired = j["paired_decode"].toObject();
        QCOMPARE(paired["steps"].toInt(), 3);
        QVERIFY(paired["median_read_gbps"].toDouble() > 0);  // the read-only probe beside each triad
        QVERIFY(paired["median_ratio_to_read"].toDouble() > 0);
        QVERIFY(j["limits"].toObject()["triad_gbps_for_bound"].toDouble() >=
                j["limits"].toObject()["triad_gbps"].toDouble());
    }

    // OPENBLAS_CORETYPE pins OpenBLAS's kernels (a machine image here sets Haswell on an AVX-512
    // CPU); the bench then measures the sgemm shapes again in a process without it, names both
    // kernel sets, and takes the peak over all of them. Prescott (SSE3) runs on any x86-64.
    void benchSgemmPeakWithAndWithoutCoreType() {
        QProcessEnvironment pinned = QProcessEnvironment::systemEnvironment();
        pinned.insert("OPENBLAS_CORETYPE", "Prescott");
        const Run r = prefixkv({"bench", "--model", fixtureModel(), "--prompt-tokens", "40", "--decode-tokens", "1",
                                "--json"},
                               pinned);
        QCOMPARE(r.code, 0);
        const QJsonObject limits = QJsonDocument::fromJson(r.out).object()["limits"].toObject();
        QCOMPARE(limits["sgemm_openblas_core"].toString().toLower(), QString("prescott"));
        const QJsonArray pinnedRates = limits["sgemm"].toArray(), ownRates = limits["sgemm_own_core"].toArray();
        QCOMPARE(pinnedRates.size(), 2);
        QCOMPARE(ownRates.size(), 2);
        QVERIFY(!limits["sgemm_own_openblas_core"].toString().isEmpty());
        // The same shapes again just before and just after the prefill, in processes like this one
        // (pinned): the peak is the best of all four sets; the prefill is also given against the
        // mean of the best rate before and the best after.
        const QJsonArray before = limits["sgemm_before_prefill"].toArray(), after = limits["sgemm_after_prefill"].toArray();
        QCOMPARE(before.size(), 2);
        QCOMPARE(after.size(), 2);
        double best = 0, bestBefore = 0, bestAfter = 0;
        for (const QJsonArray& rates : {pinnedRates, ownRates, before, after})
            for (const auto& g : rates) {
                QCOMPARE(g.toObject()["m"].toInt(), 40);
                QVERIFY(g.toObject()["gflops"].toDouble() > 0);
                best = std::max(best, g.toObject()["gflops"].toDouble());
            }
        for (const auto& g : before) bestBefore = std::max(bestBefore, g.toObject()["gflops"].toDouble());
        for (const auto& g : after) bestAfter = std::max(bestAfter, g.toObject()["gflops"].toDouble());
        QCOMPARE(limits["sgemm_peak_gflops"].toDouble(), best);
        const QJsonObject all = QJsonDocument::fromJson(r.out).object();
        const double prefill = all["prefill_gflops"].toDouble();
        QVERIFY(prefill > 0);
        QVERIFY(qAbs(all["prefill_ratio_to_sgemm_peak"].toDouble() - prefill / best) <= 1e-12 * prefill / best);
        const double beside = prefill / ((bestBefore + bestAfter) / 2);
        QVERIFY(qAbs(all["prefill_ratio_to_sgemm_beside"].toDouble() - beside) <= 1e-12 * beside);

        QProcessEnvironment own = QProcessEnvironment::systemEnvironment();
        own.remove("OPENBLAS_CORETYPE");
        const Run plain = prefixkv({"bench", "--model", fixtureModel(), "--prompt-tokens", "40", "--decode-tokens", "1",
                                    "--json"},
                                   own);
        QCOMPARE(plain.code, 0);
        const QJsonObject plainLimits = QJsonDocument::fromJson(plain.out).object()["limits"].toObject();
        QCOMPARE(plainLimits["sgemm_own_core"].toArray().size(), 0);  // nothing pinned: one measurement
        QCOMPARE(plainLimits["sgemm_openblas_core"].toString(), limits["sgemm_own_openblas_core"].toString());

        const Run bad = prefixkv({"bench", "--sgemm-probe", "40,x"});
        QCOMPARE(bad.code, 2);
        QVERIFY2(bad.err.contains("--sgemm-probe wants m,n,k;m,n,k"), bad.err.constData());
    }

    // Debian 12's OpenBLAS falls back to its SSE3 kernels on CPUs newer than it (an AVX-512 Xeon of
    // family 6 model 207 here: sgemm 27-38 GFLOP/s instead of 150-290). prefixkv started without
    // OPENBLAS_CORETYPE runs kernels as wide as the CPU's; one the user pinned is kept.
    void openBlasKernelsAsWideAsTheCpu() {
        QProcessEnvironment unpinned = QProcessEnvironment::systemEnvironment();
        unpinned.remove("OPENBLAS_CORETYPE");
        unpinned.remove(pkv::kOpenBlasCoreSetBy);
        const Run r = prefixkv({"info", "--json"}, unpinned);
        QCOMPARE(r.code, 0);
        const QJsonObject j = QJsonDocument::fromJson(r.out).object();
        const std::string core = j["openblas_core"].toString().toStdString();
        QVERIFY2(pkv::openBlasCoreLevel(core) >= pkv::cpuVectorLevel() ||
                     pkv::openBlasCoreFor(pkv::cpuVectorLevel()).empty(),
                 core.c_str());
        const QString said = j["openblas"].toString();
        QVERIFY2(said.contains(QString::fromStdString(core)), said.toUtf8().constData());
        QVERIFY2(said.contains("its own choice") || said.contains("chosen by prefixkv"), said.toUtf8().constData());

        QProcessEnvironment pinned = unpinned;
        pinned.insert("OPENBLAS_CORETYPE", "Prescott");
        const Run p = prefixkv({"info", "--json"}, pinned);
        QCOMPARE(p.code, 0);
        const QJsonObject pj = QJsonDocument::fromJson(p.out).object();
        QCOMPARE(pj["openblas_core"].toString().toLower(), QString("prescott"));
        QVERIFY(pj["openblas"].toString().contains("as OPENBLAS_CORETYPE=Prescott asks"));
        const Run text = prefixkv({"info"}, pinned);
        QVERIFY2(text.out.contains("BLAS         OpenBLAS runs its Prescott kernels"), text.out.constData());
    }

    void infoJson() {
        const Run r = prefixkv({"info", "--model", fixtureModel(), "--json"});
        QCOMPARE(r.code, 0);
        const QJsonObject j = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(j["text"].toObject()["layers"].toInt(), 3);
        QCOMPARE(j["text"].toObject()["kv_heads"].toInt(), 2);
        QCOMPARE(j["image_tokens"].toInt(), 16);
        QVERIFY(j["device"].toString().startsWith("cpu: ") || j["device"].toString().startsWith("cuda: "));
        // 3 layers x (K and V) x 2 KV heads x 16 dims x 4 bytes: an f32 model's cache is f32.
        QCOMPARE(j["kv_dtype"].toString(), QString("F32"));
        QCOMPARE(j["kv_bytes_per_token"].toInt(), 3 * 2 * 2 * 16 * 4);
        const Run half = prefixkv({"info", "--model", fixtureModel(), "--json", "--kv-dtype", "f16"});
        QCOMPARE(QJsonDocument::fromJson(half.out).object()["kv_bytes_per_token"].toInt(), 3 * 2 * 2 * 16 * 2);
        // The text says how generate will hold the weights, and how to choose otherwise.
        const Run text = prefixkv({"info", "--model", fixtureModel()});
        QCOMPARE(text.code, 0);
        QVERIFY2(text.out.contains("mapped from the files by default (--weights memory reads them into RAM)"),
                 text.out.constData());
    }

    // --weights memory: the same answer as mapped weights; the bench says which it measured.
    void weightsInMemory() {
        QJsonObject runs[2];
        const char* choices[2] = {"mapped", "memory"};
        for (int i = 0; i < 2; ++i) {
            const Run r = prefixkv({"generate", "--model", fixtureModel(), "--image", sample(), "--prompt", "Describe the image.",
                                    "--max-new-tokens", "6", "--ignore-eos", "--json", "--weights", choices[i]});
            QCOMPARE(r.code, 0);
            runs[i] = QJsonDocument::fromJson(r.out).object();
            QCOMPARE(runs[i]["weights"].toString(), QString(choices[i]));  // where they were, not where asked
            QCOMPARE(runs[i]["weights_note"].toString(), QString());
        }
        QCOMPARE(runs[0]["token_ids"].toArray().size(), 6);
        QCOMPARE(runs[1]["token_ids"].toArray(), runs[0]["token_ids"].toArray());
        const Run bench = prefixkv({"bench", "--model", fixtureModel(), "--prompt-tokens", "40", "--decode-tokens", "2",
                                    "--json", "--weights", "memory"});
        QCOMPARE(bench.code, 0);
        QCOMPARE(QJsonDocument::fromJson(bench.out).object()["weights"].toString(), QString("memory"));
    }

    // A 16-bit model's cache is f16 unless asked otherwise; the bytes per entry say so, and the
    // greedy answer of this fixture and photo comes out the same either way.
    void kvDtypeOfGenerate() {
        const QString f16Model = pkvtest::fixturesDir() + "/models/tiny-gqa-f16";
        QJsonObject runs[2];
        const char* choices[2] = {"auto", "f32"};
        for (int i = 0; i < 2; ++i) {
            const Run r = prefixkv({"generate", "--model", f16Model, "--image", sample(), "--prompt", "Describe the image.",
                                    "--max-new-tokens", "6", "--ignore-eos", "--json", "--kv-dtype", choices[i]});
            QCOMPARE(r.code, 0);
            runs[i] = QJsonDocument::fromJson(r.out).object();
        }
        QCOMPARE(runs[0]["kv_dtype"].toString(), QString("F16"));
        QCOMPARE(runs[1]["kv_dtype"].toString(), QString("F32"));
        // 2 KV heads x 16 dims, keys and values.
        QCOMPARE(runs[0]["stats"].toObject()["kv_bytes_per_entry"].toInt(), 2 * 16 * 2 * 2);
        QCOMPARE(runs[1]["stats"].toObject()["kv_bytes_per_entry"].toInt(), 2 * 16 * 2 * 4);
        QCOMPARE(runs[0]["token_ids"].toArray(), runs[1]["token_ids"].toArray());
    }
};

QTEST_APPLESS_MAIN(TestCli)
#include "test_cli.moc"
