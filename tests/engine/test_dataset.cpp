// The bundled evaluation set in its three shapes, the prompts the reference builds from them
// (spec 1.2), and every malformed input a user can give, each with a sentence naming the file
// and the item.
#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include "common/errors.h"
#include "common/paths.h"
#include "engine/common/error.h"
#include "engine/eval/dataset.h"
#include "engine/tokenizer/prompt.h"

using namespace pkv;
using pkvtest::errorOf;

namespace {

std::string evalDir() { return pkvtest::str(pkvtest::sourceDir() + "/resources/eval"); }
std::string imagesDir() { return pkvtest::str(pkvtest::sourceDir() + "/resources/samples"); }


const char* kSystem =
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions.";

}  // namespace

class TestDataset : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

    std::string write(const char* name, const QByteArray& content) {
        QFile f(tmp_.filePath(name));
        f.open(QIODevice::WriteOnly);
        f.write(content);
        return pkvtest::str(tmp_.filePath(name));
    }

private slots:
    void mmVetBothShapesAgree() {
        const Dataset list = loadDataset(evalDir() + "/mm-vet/mm-vet.json", imagesDir());
        const Dataset keyed = loadDataset(evalDir() + "/mm-vet-original/mm-vet.json", imagesDir());
        QCOMPARE(list.kind, DatasetKind::MmVetList);
        QCOMPARE(keyed.kind, DatasetKind::MmVetKeyed);
        QCOMPARE(list.samples.size(), size_t(6));
        QCOMPARE(keyed.samples.size(), list.samples.size());
        for (size_t i = 0; i < list.samples.size(); ++i) {
            QCOMPARE(keyed.samples[i].image, list.samples[i].image);
            QCOMPARE(keyed.samples[i].question, list.samples[i].question);
            QCOMPARE(keyed.samples[i].answer, list.samples[i].answer);
            QCOMPARE(keyed.samples[i].prompt, list.samples[i].prompt);
            QCOMPARE(keyed.samples[i].id, "v1_" + std::to_string(i));  // file order, not sorted keys
        }
        // Spec 1.2: the question, then "\n<image>", inside the llava_v1 template.
        QCOMPARE(list.samples[0].prompt,
                 std::string(kSystem) + " USER: What animal is shown in the image?\n<image> ASSISTANT:");
        QCOMPARE(list.samples[0].prompt, applyChatTemplate(ChatTemplate::LlavaV1, list.samples[0].question, true,
                                                           ImagePlacement::After));
        QCOMPARE(list.samples[0].answer, std::string("A tabby cat."));
        QCOMPARE(list.imagePath(0), imagesDir() + "/chelsea.jpg");
    }

    void description() {
        const Dataset d = loadDataset(evalDir() + "/detail/detail_small.json", imagesDir());
        QCOMPARE(d.kind, DatasetKind::Description);
        QCOMPARE(d.samples.size(), size_t(4));
        QCOMPARE(d.samples[0].id, std::string("detail-0"));
        // The question keeps its own marker where it stands.
        QCOMPARE(d.samples[0].prompt, std::string(kSystem) + " USER: <image>\nDescribe the following image. ASSISTANT:");
        QCOMPARE(d.samples[1].prompt,
                 std::string(kSystem) + " USER: What do you see happening in this image?\n<image> ASSISTANT:");
        QVERIFY(d.samples[0].answer.rfind("A close-up of a tabby cat", 0) == 0);
    }

    void badInputs_data() {
        QTest::addColumn<QByteArray>("content");
        QTest::addColumn<QStringList>("expected");
        QTest::newRow("malformed") << QByteArray("[{\"image\": ") << QStringList{"bad.json", "not valid JSON"};
        QTest::newRow("scalar") << QByteArray("42") << QStringList{"bad.json", "JSON list", "not a number"};
        QTest::newRow("empty list") << QByteArray("[]") << QStringList{"bad.json", "no items"};
        QTest::newRow("item not object") << QByteArray("[\"x\"]") << QStringList{"bad.json: item 0", "not an object"};
        QTest::newRow("missing answer")
            << QByteArray(R"([{"image": "chelsea.jpg", "question": "q", "answer": "a"}, {"image": "chelsea.jpg", "question": "q"}])")
            << QStringList{"bad.json: item 1", "no \"answer\""};
        QTest::newRow("wrong type")
            << QByteArray(R"([{"image": "chelsea.jpg", "question": 7, "answer": "a"}])")
            << QStringList{"item 0", "\"question\" must be a string", "not number"};
        QTest::newRow("keyed missing imagename")
            << QByteArray(R"({"v1_0": {"question": "q", "answer": "a"}})") << QStringList{"item \"v1_0\"", "\"imagename\""};
        QTest::newRow("keyed item not object") << QByteArray(R"({"v1_0": []})") << QStringList{"item \"v1_0\"", "not an object"};
        QTest::newRow("description without marker")
            << QByteArray(R"([{"image": "chelsea.jpg", "conversations": [{"from": "human", "value": "Describe."}, {"from": "gpt", "value": "A cat."}]}])")
            << QStringList{"item 0", "no <image> marker"};
        QTest::newRow("description one turn")
            << QByteArray(R"([{"image": "chelsea.jpg", "conversations": [{"from": "human", "value": "<image>"}]}])")
            << QStringList{"item 0", "at least two turns"};
        QTest::newRow("description answer not text")
            << QByteArray(R"([{"image": "chelsea.jpg", "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": null}]}])")
            << QStringList{"item 0, conversation turn 1", "\"value\" must be a string"};
        QTest::newRow("images missing")
            << QByteArray(R"([{"image": "chelsea.jpg", "question": "q", "answer": "a"},
                               {"image": "nope1.jpg", "question": "q", "answer": "a"},
                               {"image": "nope2.jpg", "question": "q", "answer": "a"}])")
            << QStringList{"2 of the 3 images", "bad.json", "resources/samples", "nope1.jpg (item 1)", "nope2.jpg (item 2)"};
    }
    void badInputs() {
        QFETCH(QByteArray, content);
        QFETCH(QStringList, expected);
        const std::string path = write("bad.json", content);
        const QString msg = errorOf([&] { loadDataset(path, imagesDir()); });
        for (const QString& e : expected) QVERIFY2(msg.contains(e), qPrintable(msg));
    }

    void missingImagesListedUpFront() {
        QByteArray items = "[";
        for (int i = 0; i < 9; ++i) items += QByteArray(i ? "," : "") + "{\"image\": \"x" + QByteArray::number(i) + ".jpg\", \"question\": \"q\", \"answer\": \"a\"}";
        const std::string path = write("many.json", items + "]");
        const QString msg = errorOf([&] { loadDataset(path, imagesDir()); });
        QVERIFY2(msg.contains("9 of the 9") && msg.contains("x4.jpg") && !msg.contains("x5.jpg") && msg.contains("..."),
                 qPrintable(msg));
        QCOMPARE(loadDataset(path, imagesDir(), false).samples.size(), size_t(9));  // the check can be skipped
    }

    void unreadableFile() {
        QVERIFY(errorOf([] { loadDataset("/nonexistent/set.json", "/"); }).contains("/nonexistent/set.json"));
    }
};

QTEST_APPLESS_MAIN(TestDataset)
#include "test_dataset.moc"
