// SafetensorsFile: a valid file maps back exactly; every malformed file is refused with a
// sentence naming the file and what is wrong with it.
#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/paths.h"
#include "engine/common/error.h"
#include "engine/io/safetensors.h"

using pkvtest::str;

namespace {

// A safetensors file's bytes: little-endian header length, header text, data.
QByteArray blob(const QByteArray& header, const QByteArray& data = {}) {
    QByteArray out(8, '\0');
    quint64 n = quint64(header.size());
    for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
    return out + header + data;
}

QByteArray bytesOf(const void* p, size_t n) { return QByteArray(static_cast<const char*>(p), qsizetype(n)); }

}  // namespace

class TestSafetensors : public QObject {
    Q_OBJECT

    QTemporaryDir tmp_;

    QString write(const QString& name, const QByteArray& bytes) {
        QString path = tmp_.filePath(name);
        QFile f(path);
        if (!f.open(QIODevice::WriteOnly)) qFatal("cannot write test file");
        f.write(bytes);
        return path;
    }

private slots:
    void validFileRoundTrips() {
        const float w[6] = {1, 2, 3, 4, 5, 6};
        const uint16_t b[4] = {0x3f80, 0x4000, 0x4040, 0x4080};
        const int64_t ids[1] = {42};
        const QByteArray data = bytesOf(w, 24) + bytesOf(b, 8) + bytesOf(ids, 8) + QByteArray(1, '\x7f');
        const QByteArray header = R"({"__metadata__":{"format":"pt"},
            "w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},
            "b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},
            "ids":{"dtype":"I64","shape":[1],"data_offsets":[32,40]},
            "empty":{"dtype":"F16","shape":[0,5],"data_offsets":[40,40]},
            "scalar8":{"dtype":"F8_E4M3","shape":[],"data_offsets":[40,41]}})";
        QString path = write("ok.safetensors", blob(header, data));

        auto f = pkv::SafetensorsFile::open(str(path));
        QCOMPARE(f->path(), str(path));
        QCOMPARE(f->fileBytes(), size_t(8 + header.size() + data.size()));
        QCOMPARE(f->tensors().size(), size_t(5));
        QVERIFY(f->find("__metadata__") == nullptr);
        QVERIFY(f->find("missing") == nullptr);

        const pkv::TensorView* tw = f->find("w");
        QVERIFY(tw);
        QCOMPARE(tw->name, std::string("w"));
        QCOMPARE(tw->file, str(path));
        QCOMPARE(tw->dtypeText, std::string("F32"));
        QVERIFY(tw->dtypeSupported);
        QVERIFY(tw->dtype == pkv::DType::F32);
        QCOMPARE(tw->shape, (std::vector<int64_t>{2, 3}));
        QCOMPARE(tw->numel(), int64_t(6));
        QCOMPARE(tw->nbytes, size_t(24));
        QVERIFY(std::memcmp(tw->data, w, 24) == 0);

        const pkv::TensorView* tb = f->find("b");
        QVERIFY(tb->dtypeSupported);
        QVERIFY(tb->dtype == pkv::DType::BF16);
        QVERIFY(std::memcmp(tb->data, b, 8) == 0);

        const pkv::TensorView* ti = f->find("ids");
        QCOMPARE(ti->dtypeText, std::string("I64"));
        QVERIFY(!ti->dtypeSupported);
        QVERIFY(std::memcmp(ti->data, ids, 8) == 0);

        const pkv::TensorView* te = f->find("empty");
        QCOMPARE(te->numel(), int64_t(0));
        QCOMPARE(te->nbytes, size_t(0));

        const pkv::TensorView* ts = f->find("scalar8");
        QCOMPARE(ts->dtypeText, std::string("F8_E4M3"));
        QVERIFY(!ts->dtypeSupported);
        QCOMPARE(ts->numel(), int64_t(1));
        QCOMPARE(uint8_t(ts->data[0]), uint8_t(0x7f));
    }

    // readIntoMemory: the same tensors and bytes, no longer tied to the file (truncated and
    // rewritten afterwards, which a mapping would turn into SIGBUS or other bytes); progress
    // ends at the file's size. A progress callback that throws (a cancel) leaves it mapped.
    void readIntoMemoryKeepsEveryTensor() {
        const float w[6] = {1, 2, 3, 4, 5, 6};
        const uint16_t b[4] = {0x3f80, 0x4000, 0x4040, 0x4080};
        const QByteArray header = R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},
            "b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}})";
        const QString path = write("copy.safetensors", blob(header, bytesOf(w, 24) + bytesOf(b, 8)));
        auto f = pkv::SafetensorsFile::open(str(path));

        bool threw = false;
        try {
            f->readIntoMemory([](size_t) { throw pkv::Cancelled(); });
        } catch (const pkv::Cancelled&) {
            threw = true;
        }
        QVERIFY(threw);
        QVERIFY(!f->inMemory());
        QVERIFY(std::memcmp(f->find("w")->data, w, 24) == 0);

        size_t last = 0;
        f->readIntoMemory([&](size_t done) { last = done; });
        QVERIFY(f->inMemory());
        QCOMPARE(last, f->fileBytes());
        QFile file(path);
        QVERIFY(file.open(QIODevice::ReadWrite | QIODevice::Truncate));
        file.write(QByteArray(int(f->fileBytes()), '\0'));
        file.close();
        QCOMPARE(f->tensors().size(), size_t(2));
        QVERIFY(std::memcmp(f->find("w")->data, w, 24) == 0);
        QVERIFY(std::memcmp(f->find("b")->data, b, 8) == 0);
        QCOMPARE(f->find("b")->shape, (std::vector<int64_t>{4}));
    }

    // A file of several 64 MiB blocks, read by several readers at once: every byte lands where it
    // belongs (a block written to the wrong place, or twice, or not at all, shows as a position
    // whose value is not its own index), and progress rises to the file's size.
    void readIntoMemoryInSeveralBlocks() {
        const int64_t n = (int64_t(150) << 20) / 4;  // 150 MiB of int32: three blocks
        QByteArray data(qsizetype(n * 4), '\0');
        auto* v = reinterpret_cast<int32_t*>(data.data());
        for (int64_t i = 0; i < n; ++i) v[i] = int32_t(i);
        const QByteArray header = QByteArray(R"({"v":{"dtype":"I32","shape":[)") + QByteArray::number(qint64(n)) +
                                  R"(],"data_offsets":[0,)" + QByteArray::number(qint64(n * 4)) + "]}}";
        const QString path = write("big.safetensors", blob(header, data));
        data.clear();
        auto f = pkv::SafetensorsFile::open(str(path));
        std::vector<size_t> progress;
        f->readIntoMemory([&](size_t done) { progress.push_back(done); });
        QFile::remove(path);
        QVERIFY(f->inMemory());
        QVERIFY(!progress.empty());
        QVERIFY(std::is_sorted(progress.begin(), progress.end()));
        QCOMPARE(progress.back(), f->fileBytes());
        const auto* got = reinterpret_cast<const int32_t*>(f->find("v")->data);
        int64_t wrong = 0;
        for (int64_t i = 0; i < n; ++i) wrong += got[i] != int32_t(i);
        QCOMPARE(wrong, int64_t(0));
    }

    // A file that became shorter after it was opened is refused with a sentence, and stays mapped.
    void readIntoMemoryOfAShrunkFileFails() {
        const float w[6] = {1, 2, 3, 4, 5, 6};
        const QByteArray header = R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
        const QString path = write("shrinks.safetensors", blob(header, bytesOf(w, 24)));
        auto f = pkv::SafetensorsFile::open(str(path));
        QVERIFY(QFile::resize(path, 8));
        QString msg;
        try {
            f->readIntoMemory();
        } catch (const pkv::Error& e) {
            msg = QString::fromStdString(e.what());
        }
        QVERIFY2(msg.contains("became shorter while it was being read into memory"), qPrintable(msg));
        QVERIFY2(msg.contains("shrinks.safetensors"), qPrintable(msg));
        QVERIFY(!f->inMemory());
    }

    void headerOnlyFileHasNoTensors() {
        auto f = pkv::SafetensorsFile::open(str(write("none.safetensors", blob("{}"))));
        QVERIFY(f->tensors().empty());
    }

    void malformedFileIsRefused_data() {
        QTest::addColumn<QByteArray>("bytes");
        QTest::addColumn<QStringList>("expected");
        const QByteArray d24(24, '\0');
        auto one = [](const char* entry) { return QByteArray("{\"w\":") + entry + "}"; };

        QTest::newRow("empty") << QByteArray() << QStringList{"is empty"};
        QTest::newRow("shorter than 8 bytes") << QByteArray("abcd") << QStringList{"truncated", "8-byte"};
        QByteArray longHeader = blob("{}");
        longHeader[0] = char(200);
        QTest::newRow("header length beyond file")
            << longHeader << QStringList{"truncated", "header length (200 bytes)", "beyond the end of the file"};
        QTest::newRow("header not JSON") << blob("{not json") << QStringList{"not valid JSON"};
        QTest::newRow("header an array") << blob("[1,2]") << QStringList{"not a JSON object"};
        QTest::newRow("entry not an object") << blob(one("3")) << QStringList{"\"w\"", "not a JSON object"};
        QTest::newRow("missing dtype") << blob(one(R"({"shape":[6],"data_offsets":[0,24]})"), d24)
                                       << QStringList{"no \"dtype\"", "\"w\""};
        QTest::newRow("missing shape") << blob(one(R"({"dtype":"F32","data_offsets":[0,24]})"), d24)
                                       << QStringList{"no \"shape\"", "\"w\""};
        QTest::newRow("missing offsets") << blob(one(R"({"dtype":"F32","shape":[6]})"), d24)
                                         << QStringList{"no \"data_offsets\"", "\"w\""};
        QTest::newRow("unknown dtype") << blob(one(R"({"dtype":"F13","shape":[6],"data_offsets":[0,24]})"), d24)
                                       << QStringList{"unknown dtype \"F13\"", "\"w\""};
        QTest::newRow("negative dim") << blob(one(R"({"dtype":"F32","shape":[-2,3],"data_offsets":[0,24]})"), d24)
                                      << QStringList{"negative dimension", "\"w\""};
        QTest::newRow("dim not integer") << blob(one(R"({"dtype":"F32","shape":[6.5],"data_offsets":[0,24]})"), d24)
                                         << QStringList{"not an integer", "\"w\""};
        QTest::newRow("offsets not a pair") << blob(one(R"({"dtype":"F32","shape":[6],"data_offsets":[24]})"), d24)
                                            << QStringList{"not a pair [begin, end]", "\"w\""};
        QTest::newRow("offsets reversed") << blob(one(R"({"dtype":"F32","shape":[0],"data_offsets":[24,0]})"), d24)
                                          << QStringList{"begin (24) lies after its end (0)", "\"w\""};
        QTest::newRow("data truncated") << blob(one(R"({"dtype":"F32","shape":[6],"data_offsets":[0,24]})"), d24.left(20))
                                        << QStringList{"truncated", "ends at data byte 24", "holds only 20 bytes"};
        QTest::newRow("size disagrees with shape")
            << blob(one(R"({"dtype":"F16","shape":[6],"data_offsets":[0,24]})"), d24)
            << QStringList{"24 bytes", "F16 need 12 bytes", "\"w\""};
        QTest::newRow("overlapping ranges")
            << blob(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},
                        "b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", d24)
            << QStringList{"overlapping", "\"a\"", "\"b\""};
    }

    void malformedFileIsRefused() {
        QFETCH(QByteArray, bytes);
        QFETCH(QStringList, expected);
        QString path = write(QString("bad-%1.safetensors").arg(QTest::currentDataTag()), bytes);
        try {
            pkv::SafetensorsFile::open(str(path));
            QFAIL("a malformed file was accepted");
        } catch (const pkv::Error& e) {
            QString msg = QString::fromStdString(e.what());
            QVERIFY2(msg.contains(path), qPrintable(msg));
            for (const QString& part : expected) QVERIFY2(msg.contains(part), qPrintable(msg + " lacks: " + part));
        }
    }

    void missingFileIsRefused() {
        QString path = tmp_.filePath("absent.safetensors");
        try {
            pkv::SafetensorsFile::open(str(path));
            QFAIL("a missing file was accepted");
        } catch (const pkv::Error& e) {
            QString msg = e.what();
            QVERIFY2(msg.contains(path) && msg.contains("does not exist"), qPrintable(msg));
        }
    }

    void folderIsRefused() {
        QString path = tmp_.filePath("folder.safetensors");
        QVERIFY(QDir().mkpath(path));
        try {
            pkv::SafetensorsFile::open(str(path));
            QFAIL("a folder was accepted");
        } catch (const pkv::Error& e) {
            QString msg = e.what();
            QVERIFY2(msg.contains(path) && msg.contains("not a regular file"), qPrintable(msg));
        }
    }
};

QTEST_APPLESS_MAIN(TestSafetensors)
#include "test_safetensors.moc"
