// What a user can do wrong with a session, and how a run ends: every case yields a sentence or a
// stop reason, and the session stays usable afterwards.
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QtTest>

#include <thread>

#include "common/errors.h"
#include "common/paths.h"
#include "engine/common/error.h"
#include "engine/kv/policy_factory.h"
#include "engine/session.h"

using namespace pkv;
using pkvtest::errorOf;

namespace {

std::string fixtureModel(const char* name = "tiny-gqa-f32") {
    return pkvtest::str(pkvtest::fixturesDir() + "/models/" + name);
}

std::string goldenPrompt() {
    QFile f(pkvtest::fixturesDir() + "/golden/tiny-gqa-f32.json");
    f.open(QIODevice::ReadOnly);
    return QJsonDocument::fromJson(f.readAll()).object()["prompt"].toString().toStdString();
}

RgbImage fixtureImage() { return decodeImageFile(pkvtest::str(pkvtest::fixturesDir() + "/images/model_input.png")); }


}  // namespace

class TestSession : public QObject {
    Q_OBJECT
    std::shared_ptr<LlavaModel> model_;
    RgbImage image_;

private slots:
    void initTestCase() {
        model_ = LlavaModel::load(fixtureModel(), {DeviceChoice::Cpu});
        image_ = fixtureImage();
    }

    void emptyPrompt() {
        Session s(model_);
        QVERIFY(errorOf([&] { s.prefill("", nullptr); }).contains("empty"));
        QVERIFY(errorOf([&] { s.prefill("  \n\t", nullptr); }).contains("empty"));
        QVERIFY(!s.hasPrefill());
    }

    void promptLongerThanContext() {
        Session s(model_);
        std::string words;
        for (int i = 0; i < 300; ++i) words += " picture";
        const QString msg = errorOf([&] { s.prefill(applyChatTemplate(ChatTemplate::LlavaV1, words, true), &image_); });
        QVERIFY2(msg.contains("context") && msg.contains("256"), qPrintable(msg));
        QVERIFY(!s.hasPrefill());
        // Nothing is lost: the same session still answers a prompt that fits.
        s.prefill(goldenPrompt(), &image_);
        QVERIFY(s.hasPrefill());
    }

    void markerAndImageMustAgree() {
        Session s(model_);
        QVERIFY(errorOf([&] { s.prefill("USER: <image>\nhi ASSISTANT:", nullptr); }).contains("no image"));
        QVERIFY(errorOf([&] { s.prefill("USER: hi ASSISTANT:", &image_); }).contains("no <image> marker"));
        QVERIFY(errorOf([&] { s.prefill("<image> and <image>", &image_); }).contains("2 <image> markers"));
    }

    void textOnlyPromptWorks() {
        Session s(model_);
        s.prefill(applyChatTemplate(ChatTemplate::LlavaHf, "Say something.", false), nullptr);
        QCOMPARE(s.stats().imageTokens, int64_t(0));
        QCOMPARE(s.stats().layerLengths.front(), s.stats().promptTokens);
    }

    void feedBeforePrefill() {
        Session s(model_);
        QVERIFY(errorOf([&] { s.feed(5); }).contains("prefill first"));
        QVERIFY(errorOf([&] { s.generate({}, {}); }).contains("prefill first"));
    }

    void stopsAtContextLimit() {
        Session s(model_);
        s.prefill(goldenPrompt(), &image_);
        const int64_t n = s.stats().promptTokens;
        GenerateOptions opt;
        opt.maxNewTokens = 100000;
        opt.stopAtEos = false;
        QCOMPARE(s.generate(opt, {}), StopReason::ContextFull);
        // Every position up to the context limit was used, and one more token was predicted.
        QCOMPARE(s.tokensSeen(), int64_t(256));
        QCOMPARE(int64_t(s.generated().size()), 256 - n + 1);
    }

    void stopsAtEos() {
        // tiny-gqa-f32's greedy answer reaches EOS at step 14 (fixture JSON "eos_positions").
        Session s(model_);
        s.prefill(goldenPrompt(), &image_);
        GenerateOptions opt;
        opt.maxNewTokens = 64;
        QCOMPARE(s.generate(opt, {}), StopReason::Eos);
        QCOMPARE(s.generated().size(), size_t(15));
        QCOMPARE(s.generated().back(), model_->tokenizer().eosId());
    }

    // Cancel from inside the stream: generation ends before the next token.
    void cancelWithinOneToken() {
        Session s(model_);
        s.prefill(goldenPrompt(), &image_);
        GenerateOptions opt;
        opt.maxNewTokens = 100;
        opt.stopAtEos = false;
        int seen = 0;
        const StopReason r = s.generate(opt, [&](int id, const std::string&) {
            if (id >= 0 && ++seen == 3) s.requestCancel();
        });
        QCOMPARE(r, StopReason::Cancelled);
        QCOMPARE(s.generated().size(), size_t(3));
        // The session continues afterwards from where it stopped.
        opt.maxNewTokens = 2;
        QCOMPARE(s.generate(opt, {}), StopReason::MaxTokens);
        QCOMPARE(s.generated().size(), size_t(5));
    }

    // Cancel from another thread, as the GUI does.
    void cancelFromAnotherThread() {
        Session s(model_);
        s.prefill(goldenPrompt(), &image_);
        GenerateOptions opt;
        opt.maxNewTokens = 100000;
        opt.stopAtEos = false;
        std::atomic<int> tokens{0};
        std::atomic<int> atCancel{-1};
        std::thread stopper([&] {
            while (tokens.load() < 5) std::this_thread::yield();
            atCancel.store(tokens.load());
            s.requestCancel();
        });
        const StopReason r = s.generate(opt, [&](int id, const std::string&) {
            if (id >= 0) tokens.fetch_add(1);
        });
        stopper.join();
        QCOMPARE(r, StopReason::Cancelled);
        QVERIFY(int(s.generated().size()) <= atCancel.load() + 1);
    }

    void cancelDuringPrefillForward() {
        LlamaDecoder& dec = model_->decoder();
        auto cache = dec.newCache();
        std::atomic<bool> cancel{true};
        bool cancelled = false;
        try {
            dec.forward(dec.embed({1, 5, 7}), {0, 1, 2}, 0, *cache, nullptr, &cancel);
        } catch (const Cancelled&) {
            cancelled = true;
        }
        QVERIFY(cancelled);
    }

    void loadCancelled() {
        std::atomic<bool> cancel{true};
        LoadOptions o;
        o.cancel = &cancel;
        bool cancelled = false;
        try {
            LlavaModel::load(fixtureModel(), o);
        } catch (const Cancelled&) {
            cancelled = true;
        }
        QVERIFY(cancelled);
    }

    void loadFailures() {
        QVERIFY(errorOf([] { LlavaModel::load("/nonexistent/model"); }).contains("/nonexistent/model"));
        QTemporaryDir dir;
        for (const QString& f : QDir(QString::fromStdString(fixtureModel("tiny-mha-f32"))).entryList(QDir::Files))
            QFile::copy(QString::fromStdString(fixtureModel("tiny-mha-f32")) + "/" + f, dir.filePath(f));
        QFile weights(dir.filePath("model.safetensors"));
        QVERIFY(weights.resize(weights.size() / 2));
        const QString msg = errorOf([&] { LlavaModel::load(pkvtest::str(dir.path())); });
        QVERIFY2(msg.contains("model.safetensors"), qPrintable(msg));
    }

    // RoPE positions of new tokens: absolute by default, layer 0's cache length in the reference's
    // mode (spec 1.7) — the same thing until a policy shortens layer 0.
    void positionModes() {
        PolicySpec spec;
        spec.method = "prefixkv";
        spec.budget = Budget::keptPercent(50);
        for (PositionMode mode : {PositionMode::Absolute, PositionMode::LayerZeroLength}) {
            Session s(model_);
            s.setPolicy(makePolicy(spec, 3));
            s.setPositionMode(mode);
            s.prefill(goldenPrompt(), &image_);
            const int64_t n = s.stats().promptTokens;
            const int64_t layer0 = s.cache()->length(0);
            QVERIFY(layer0 < n);
            s.feed(5);
            QCOMPARE(s.lastPosition(), mode == PositionMode::Absolute ? n : layer0);
        }
        Session full(model_), faithful(model_);
        faithful.setPositionMode(PositionMode::LayerZeroLength);
        full.prefill(goldenPrompt(), &image_);
        faithful.prefill(goldenPrompt(), &image_);
        for (int t : {5, 9, 11}) {
            full.feed(t);
            faithful.feed(t);
        }
        QCOMPARE(faithful.lastPosition(), full.lastPosition());
        QCOMPARE(faithful.logits(), full.logits());
    }

    void samplingIsSeeded() {
        Session a(model_), b(model_);
        a.prefill(goldenPrompt(), &image_);
        b.prefill(goldenPrompt(), &image_);
        GenerateOptions opt;
        opt.maxNewTokens = 12;
        opt.stopAtEos = false;
        opt.temperature = 1.5f;
        opt.topP = 0.9f;
        opt.seed = 7;
        a.generate(opt, {});
        b.generate(opt, {});
        QCOMPARE(a.generated(), b.generated());
        Session c(model_);
        c.prefill(goldenPrompt(), &image_);
        opt.seed = 8;
        c.generate(opt, {});
        QVERIFY(c.generated() != a.generated());
        // The same answer drawn one token per call, as the GUI steps it.
        Session d(model_);
        d.prefill(goldenPrompt(), &image_);
        opt.seed = 7;
        opt.maxNewTokens = 1;
        for (int i = 0; i < 12; ++i) d.generate(opt, {});
        QCOMPARE(d.generated(), a.generated());
    }
};

QTEST_APPLESS_MAIN(TestSession)
#include "test_session.moc"
