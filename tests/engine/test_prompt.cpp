// Chat templates and LLaVA's tokenizer_image_token splicing. Expected ids were computed with
// Python sentencepiece on llama-spm-rebuilt.model, splitting on "<image>" and joining the
// chunks' tokenizer(chunk).input_ids as LLaVA's mm_utils does.
#include <QTemporaryDir>
#include <QtTest>

#include <fstream>

#include "common/paths.h"
#include "engine/tokenizer/prompt.h"

using pkv::ChatTemplate;
using pkv::ImagePlacement;

namespace {

const std::string kSystem =
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions.";

// BOS + the system text + " USER:" as every LlavaV1 prompt starts (34 ids).
const QList<int> kV1Head = {1,    319,  13563, 1546,  263,   12758, 5199, 322,   385,   23116, 21082, 20255,
                            29889, 450, 20255, 4076,  8444,  29892, 13173, 29892, 322,   1248,  568,   6089,
                            304,  278,  5199,  29915, 29879, 5155,  29889, 3148,  1001,  29901};
// " ASSISTANT:" at the end of a chunk.
const QList<int> kAssistant = {319, 1799, 9047, 13566, 29901};

QList<int> ql(const std::vector<int>& v) { return QList<int>(v.begin(), v.end()); }

}  // namespace

class PromptTest : public QObject {
    Q_OBJECT

    std::unique_ptr<pkv::Tokenizer> tok_;
    QTemporaryDir tmp_;

private slots:
    void initTestCase() {
        const QString model = pkvtest::sharedDir() + "/reference/tokenizer/llama-spm-rebuilt.model";
        if (pkvtest::sharedDir().isEmpty() || !QFileInfo::exists(model)) return;
        std::ofstream(pkvtest::str(tmp_.path() + "/added_tokens.json")) << R"({"<image>": 32000, "<pad>": 32001})";
        tok_ = pkv::Tokenizer::load(pkvtest::str(model), pkvtest::str(tmp_.path()));
    }

    void templates_data() {
        QTest::addColumn<int>("chat");
        QTest::addColumn<QString>("instruction");
        QTest::addColumn<bool>("withImage");
        QTest::addColumn<int>("placement");
        QTest::addColumn<QString>("prompt");
        const QString sys = QString::fromStdString(kSystem);
        const int v1 = int(ChatTemplate::LlavaV1), hf = int(ChatTemplate::LlavaHf), raw = int(ChatTemplate::Raw);
        const int before = int(ImagePlacement::Before), after = int(ImagePlacement::After);
        QTest::newRow("v1 description") << v1 << "<image>\nDescribe the image in detail." << true << before
                                        << sys + " USER: <image>\nDescribe the image in detail. ASSISTANT:";
        QTest::newRow("v1 mm-vet") << v1 << "What is in the image?" << true << after
                                   << sys + " USER: What is in the image?\n<image> ASSISTANT:";
        QTest::newRow("v1 marker before") << v1 << "What is this?" << true << before
                                          << sys + " USER: <image>\nWhat is this? ASSISTANT:";
        QTest::newRow("v1 text only") << v1 << "Hi" << false << before << sys + " USER: Hi ASSISTANT:";
        QTest::newRow("v1 empty") << v1 << "" << false << before << sys + " USER:  ASSISTANT:";
        QTest::newRow("hf") << hf << "What is this?" << true << before << "USER: <image>\nWhat is this? ASSISTANT:";
        QTest::newRow("hf marker kept") << hf << "Look: <image> here" << true << after << "USER: Look: <image> here ASSISTANT:";
        QTest::newRow("raw") << raw << "Hello" << false << before << "Hello";
        QTest::newRow("raw after") << raw << "Hello" << true << after << "Hello\n<image>";
        QTest::newRow("raw empty") << raw << "" << false << after << "";
    }
    void templates() {
        QFETCH(int, chat);
        QFETCH(QString, instruction);
        QFETCH(bool, withImage);
        QFETCH(int, placement);
        QFETCH(QString, prompt);
        const std::string got = pkv::applyChatTemplate(ChatTemplate(chat), pkvtest::str(instruction), withImage,
                                                       ImagePlacement(placement));
        QCOMPARE(QString::fromStdString(got), prompt);
    }

    void tokenize_data() {
        QTest::addColumn<QString>("prompt");
        QTest::addColumn<int>("imageId");
        QTest::addColumn<QList<int>>("ids");
        QTest::addColumn<QList<int>>("positions");
        const QString sys = QString::fromStdString(kSystem);
        // The image sits after " USER:" and its dummy-prefix space: index 35, as the spec says.
        QTest::newRow("llava description")
            << sys + " USER: <image>\nDescribe the image in detail. ASSISTANT:" << 32000
            << kV1Head + QList<int>{29871, 32000, 29871, 13, 4002, 29581, 278, 1967, 297, 9493, 29889} + kAssistant
            << QList<int>{35};
        QTest::newRow("mm-vet, image after the question")
            << sys + " USER: What is in the image?\n<image> ASSISTANT:" << 32000
            << kV1Head + QList<int>{1724, 338, 297, 278, 1967, 29973, 13, 32000, 29871} + kAssistant << QList<int>{41};
        // An empty first chunk contributes only the BOS.
        QTest::newRow("starts with image") << "<image>\nWhat is this?" << -200
                                           << QList<int>{1, -200, 29871, 13, 5618, 338, 445, 29973} << QList<int>{1};
        QTest::newRow("two markers") << "A<image>B<image>" << 32000 << QList<int>{1, 319, 32000, 350, 32000}
                                     << QList<int>{2, 4};
        QTest::newRow("no marker") << "USER: Hello ASSISTANT:" << 32000
                                   << QList<int>{1, 3148, 1001, 29901, 15043} + kAssistant << QList<int>{};
        QTest::newRow("empty") << "" << 32000 << QList<int>{1} << QList<int>{};
    }
    void tokenize() {
        QFETCH(QString, prompt);
        QFETCH(int, imageId);
        QFETCH(QList<int>, ids);
        QFETCH(QList<int>, positions);
        if (!tok_) QSKIP("../shared/reference/tokenizer/llama-spm-rebuilt.model is absent (the LLaMA vocabulary).");
        const pkv::PromptTokens t = pkv::tokenizePrompt(*tok_, pkvtest::str(prompt), imageId);
        QCOMPARE(ql(t.ids), ids);
        QCOMPARE(ql(t.imagePositions), positions);
        for (int p : t.imagePositions) QCOMPARE(t.ids[size_t(p)], imageId);
    }
};

QTEST_APPLESS_MAIN(PromptTest)
#include "test_prompt.moc"
