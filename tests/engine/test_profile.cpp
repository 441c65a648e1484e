// PrefixKV profile files in the reference's format (spec 2.3): the 20 confs the reference ships
// (../shared/reference/confs), round trips, aggregation of sample logs, and every malformed file.
#include <QDir>
#include <QFile>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <functional>

#include "common/errors.h"
#include "common/paths.h"
#include "engine/common/error.h"
#include "engine/kv/budget_search.h"
#include "engine/kv/profile.h"

using namespace pkv;
using pkvtest::errorOf;

namespace {


void writeText(const QString& path, const QByteArray& text) {
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly) || f.write(text) != text.size()) qFatal("cannot write %s", qPrintable(path));
}

// numpy's round, written out independently of the engine: nearest, halves to the even neighbour.
int64_t halfEven(double x) {
    const double down = std::floor(x);
    const double rest = x - down;
    if (rest > 0.5) return int64_t(down) + 1;
    if (rest < 0.5) return int64_t(down);
    return std::fmod(down, 2.0) == 0.0 ? int64_t(down) : int64_t(down) + 1;
}

}  // namespace

class TestProfile : public QObject {
    Q_OBJECT
private slots:
    void shippedConfs() {
        const QString dir = pkvtest::sharedDir() + "/reference/confs";
        if (pkvtest::sharedDir().isEmpty() || !QDir(dir).exists())
            QSKIP("../shared/reference/confs is not beside this checkout; the shipped confs cannot be checked.");
        const QStringList files = QDir(dir).entryList({"prefixkv_*.json"}, QDir::Files, QDir::Name);
        QCOMPARE(files.size(), 20);
        const QRegularExpression name("^prefixkv_(llava-v1\\.5-(7b|13b))_([0-9.]+)\\.json$");
        for (const QString& file : files) {
            const auto m = name.match(file);
            QVERIFY2(m.hasMatch(), qPrintable(file));
            const int layers = m.captured(2) == "7b" ? 32 : 40;
            const double ratio = m.captured(3).toDouble();
            QCOMPARE(QString::fromStdString(referenceProfileName(pkvtest::str(m.captured(1)), ratio)), file);

            const std::vector<double> f = readProfile(pkvtest::str(dir + "/" + file), layers);
            QCOMPARE(int(f.size()), layers);
            double mean = 0;
            for (double v : f) mean += v / layers;
            QVERIFY2(std::abs(mean - ratio) <= 0.002, qPrintable(QString("%1: mean %2").arg(file).arg(mean)));

            const std::vector<int64_t> counts = countsFromFractions(f, 640);
            for (int l = 0; l < layers; ++l)
                QCOMPARE(counts[size_t(l)], halfEven(f[size_t(l)] * 640.0));
        }
    }

    // The spec's sanity facts about the 7B confs: layer 0 evicts least, layer 21 most.
    void shippedConfShape() {
        const QString dir = pkvtest::sharedDir() + "/reference/confs";
        if (pkvtest::sharedDir().isEmpty() || !QDir(dir).exists())
            QSKIP("../shared/reference/confs is not beside this checkout; the shipped confs cannot be checked.");
        const auto half = readProfile(pkvtest::str(dir + "/prefixkv_llava-v1.5-7b_0.5.json"), 32);
        QVERIFY(std::abs(half[0] - 0.114) < 0.001);
        QCOMPARE(int(std::max_element(half.begin(), half.end()) - half.begin()), 21);
        QCOMPARE(int(std::min_element(half.begin(), half.end()) - half.begin()), 0);
    }

    void writeReadRoundTrip() {
        QTemporaryDir tmp;
        const std::string path = pkvtest::str(tmp.filePath("p.json"));
        const std::vector<double> f{0.0, 1.0, 0.1, 1.0 / 3.0, 0.49065420560747663, 0.9925245873664664, 5e-324};
        writeProfile(path, f);
        QCOMPARE(readProfile(path, 7), f);
        QCOMPARE(readProfile(path), f);
    }

    // A profile run appends one line per sample; the conf is the per-layer mean.
    void aggregateSamples() {
        QTemporaryDir tmp;
        const std::string path = pkvtest::str(tmp.filePath("samples.jsonl"));
        const std::vector<std::vector<double>> rows{{0.1, 0.5, 0.9}, {0.2, 0.4, 0.8}, {0.6, 0.3, 0.7}};
        for (const auto& r : rows) appendProfileSample(path, r);
        const auto read = readProfileSamples(path, 3);
        QCOMPARE(read, rows);
        const std::vector<double> mean = aggregateProfile(read);
        QCOMPARE(mean.size(), size_t(3));
        for (size_t l = 0; l < 3; ++l)
            QVERIFY(std::abs(mean[l] - (rows[0][l] + rows[1][l] + rows[2][l]) / 3.0) < 1e-15);
        QVERIFY(std::abs(mean[0] - 0.3) < 1e-15);
        QVERIFY(std::abs(mean[1] - 0.4) < 1e-15);
        QVERIFY(std::abs(mean[2] - 0.8) < 1e-15);
        QCOMPARE(aggregateProfile({{0.25, 0.5}}), (std::vector<double>{0.25, 0.5}));
    }

    void aggregateErrors() {
        QVERIFY(errorOf([] { aggregateProfile({}); }).contains("no profile samples"));
        const QString m = errorOf([] { aggregateProfile({{0.1, 0.2}, {0.1}}); });
        QVERIFY2(m.contains("sample 1"), qPrintable(m));
    }

    void badFiles_data() {
        QTest::addColumn<QByteArray>("text");
        QTest::addColumn<int>("layers");
        QTest::addColumn<QString>("alsoNames");
        QTest::newRow("not JSON") << QByteArray("hello") << -1 << "not a JSON array";
        QTest::newRow("object") << QByteArray("{\"a\": 0.5}") << -1 << "not a JSON array";
        QTest::newRow("empty array") << QByteArray("[]") << -1 << "not a JSON array";
        QTest::newRow("truncated") << QByteArray("[0.1, 0.2") << -1 << "not a JSON array";
        QTest::newRow("string entry") << QByteArray("[0.1, \"x\", 0.2]") << -1 << "entry 1";
        QTest::newRow("nested array") << QByteArray("[0.1, [0.2]]") << -1 << "entry 1";
        QTest::newRow("above 1") << QByteArray("[0.1, 0.2, 1.5]") << -1 << "entry 2";
        QTest::newRow("negative") << QByteArray("[-0.1, 0.2]") << -1 << "entry 0";
        QTest::newRow("wrong layer count") << QByteArray("[0.1, 0.2]") << 3 << "3 layers";
    }
    void badFiles() {
        QFETCH(QByteArray, text);
        QFETCH(int, layers);
        QFETCH(QString, alsoNames);
        QTemporaryDir tmp;
        const QString path = tmp.filePath("bad_conf.json");
        writeText(path, text);
        const QString m = errorOf([&] { readProfile(pkvtest::str(path), layers); });
        QVERIFY2(m.contains(path) && m.contains(alsoNames), qPrintable(m));
    }

    void unreadableFile() {
        QTemporaryDir tmp;
        const QString missing = tmp.filePath("missing.json");
        QString m = errorOf([&] { readProfile(pkvtest::str(missing)); });
        QVERIFY2(m.contains(missing) && m.contains("Cannot read"), qPrintable(m));
        m = errorOf([&] { readProfile(pkvtest::str(tmp.path())); });  // a folder
        QVERIFY2(m.contains(tmp.path()), qPrintable(m));
        const QString noDir = tmp.filePath("no/such/dir/p.json");
        m = errorOf([&] { writeProfile(pkvtest::str(noDir), {0.5}); });
        QVERIFY2(m.contains(noDir) && m.contains("Cannot write"), qPrintable(m));
        m = errorOf([&] { writeProfile(pkvtest::str(tmp.filePath("p.json")), {0.5, 2.0}); });
        QVERIFY2(m.contains("entry 1"), qPrintable(m));
    }

    void badSampleLine() {
        QTemporaryDir tmp;
        const QString path = tmp.filePath("samples.jsonl");
        writeText(path, "[0.1, 0.2]\n\n[0.1, 7]\n");
        const QString m = errorOf([&] { readProfileSamples(pkvtest::str(path), 2); });
        QVERIFY2(m.contains(path) && m.contains("Line 3") && m.contains("entry 1"), qPrintable(m));
    }

    void referenceNames_data() {
        QTest::addColumn<double>("r");
        QTest::addColumn<QString>("name");
        QTest::newRow("0.8") << 0.8 << "prefixkv_llava-v1.5-7b_0.8.json";
        QTest::newRow("0.0") << 0.0 << "prefixkv_llava-v1.5-7b_0.0.json";
        QTest::newRow("0.3 from 70% kept") << (100.0 - 70.0) / 100.0 << "prefixkv_llava-v1.5-7b_0.3.json";
        QTest::newRow("0.35") << 0.35 << "prefixkv_llava-v1.5-7b_0.35.json";
        QTest::newRow("1e-05") << 1e-05 << "prefixkv_llava-v1.5-7b_1e-05.json";
    }
    void referenceNames() {
        QFETCH(double, r);
        QFETCH(QString, name);
        QCOMPARE(QString::fromStdString(referenceProfileName("llava-v1.5-7b", r)), name);
    }
};

QTEST_APPLESS_MAIN(TestProfile)
#include "test_profile.moc"
