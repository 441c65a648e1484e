// The engine against Hugging Face transformers on tiny random-weight LLaVA models
// (tests/fixtures/make_fixtures.py). Goldens were computed in float32 with eager attention from
// the stored weights widened exactly to float32 — which is what the engine does with f16/bf16
// weights too — so every model, whatever its storage dtype, is held to the same tolerance:
// max |Δ| ≤ 1e-4 on logits (float32 summation-order noise over a 64-wide model is ~1e-6; 1e-4
// still catches any real mistake, which shows up at 1e-2 or more). Greedy ids must be identical
// (the fixture guarantees a top-1 margin > 2e-2 at every step). These runs keep the KV cache in
// f32; kvCacheF16 holds the f16 cache (the default for 16-bit weights) to transformers with the
// same rounding of its cache entries (make_kv_f16_golden.py).
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

#include <algorithm>
#include <cmath>

#include "common/errors.h"
#include "common/paths.h"
#include "engine/backend/profiling_backend.h"
#include "engine/backend/registry.h"
#include "engine/io/safetensors.h"
#include "engine/model/llava.h"
#include "engine/session.h"

using namespace pkv;

namespace {

QJsonObject readJson(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) qFatal("cannot read %s", qPrintable(path));
    return QJsonDocument::fromJson(f.readAll()).object();
}

std::vector<int> ids(const QJsonArray& a) {
    std::vector<int> v;
    for (const auto& x : a) v.push_back(x.toInt());
    return v;
}

// Golden tensor as floats, with its shape.
struct Golden {
    std::vector<float> values;
    std::vector<int64_t> shape;
};
Golden golden(const SafetensorsFile& f, const std::string& name) {
    const TensorView* t = f.find(name);
    if (!t) qFatal("golden tensor %s missing", name.c_str());
    Golden g;
    g.shape = t->shape;
    g.values.resize(size_t(t->numel()));
    std::memcpy(g.values.data(), t->data, t->nbytes);
    return g;
}

float maxAbsDiff(const float* a, const float* b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i] - b[i]));
    return m;
}

// Greedy decode from where the session stands: row k of `decode` (the golden logits) must match the
// session's logits within `tolerance` and its arg-max must be expected[k], which is then fed.
void followGreedyDecode(Session& s, const Golden& decode, const std::vector<int>& expected, float tolerance) {
    const int64_t vocab = decode.shape[1];
    for (size_t k = 0; k < expected.size(); ++k) {
        const float d = maxAbsDiff(s.logits().data(), decode.values.data() + k * size_t(vocab), size_t(vocab));
        QVERIFY2(d <= tolerance, qPrintable(QString("decode step %1 logits max|d| = %2").arg(k).arg(d)));
        const int token = int(std::max_element(s.logits().begin(), s.logits().end()) - s.logits().begin());
        QCOMPARE(token, expected[k]);
        if (k + 1 < expected.size()) s.feed(token);
    }
}

std::vector<float> download(Backend& be, const Tensor& t) {
    std::vector<float> v(size_t(t.numel()));
    be.download(t, v.data());
    return v;
}

QString modelDir(const QString& name) { return pkvtest::fixturesDir() + "/models/" + name; }
QString goldenPath(const QString& name, const char* ext) { return pkvtest::fixturesDir() + "/golden/" + name + ext; }

}  // namespace

class TestModelGolden : public QObject {
    Q_OBJECT
private slots:
    void models_data() {
        QTest::addColumn<QString>("name");
        for (const char* n : {"tiny-mha-f32", "tiny-gqa-f32", "tiny-gqa-f16", "tiny-mha-bf16"}) QTest::newRow(n) << n;
    }

    // Vision tower, projector, every prompt logit, importance, and a 32-token greedy decode.
    void models() {
        QFETCH(QString, name);
        LoadOptions options;
        options.device = DeviceChoice::Cpu;
        options.kvDtype = KvDtypeChoice::F32;
        auto model = LlavaModel::load(pkvtest::str(modelDir(name)), options);
        QCOMPARE(model->kvDtype(), DType::F32);
        auto gold = SafetensorsFile::open(pkvtest::str(goldenPath(name, ".safetensors")));
        const QJsonObject meta = readJson(goldenPath(name, ".json"));
        Backend& be = model->backend();

        const Golden pixels = golden(*gold, "pixels");
        const Golden features = golden(*gold, "vision_features");
        const std::vector<float> ourFeatures = download(be, model->visionFeatures(pixels.values));
        QCOMPARE(ourFeatures.size(), features.values.size());
        QVERIFY2(maxAbsDiff(ourFeatures.data(), features.values.data(), ourFeatures.size()) <= 1e-4f, "vision features");

        const Golden embeds = golden(*gold, "image_embeds");
        const std::vector<float> ourEmbeds = download(be, model->encodeImage(pixels.values));
        QCOMPARE(ourEmbeds.size(), embeds.values.size());
        QVERIFY2(maxAbsDiff(ourEmbeds.data(), embeds.values.data(), ourEmbeds.size()) <= 1e-4f, "image embeddings");

        const std::string prompt = meta["prompt"].toString().toStdString();
        const PromptTokens tokens = tokenizePrompt(model->tokenizer(), prompt, model->config().imageTokenIndex);
        QCOMPARE(tokens.ids, ids(meta["prompt_ids"].toArray()));

        Session s(model);
        s.keepAllPromptLogits(true);
        s.prefillPixels(prompt, &pixels.values);
        const Golden logits = golden(*gold, "logits");
        QCOMPARE(s.stats().promptTokens, logits.shape[0]);
        QCOMPARE(s.promptLogits().size(), logits.values.size());
        const float dLogits = maxAbsDiff(s.promptLogits().data(), logits.values.data(), logits.values.size());
        QVERIFY2(dLogits <= 1e-4f, qPrintable(QString("prompt logits max|d| = %1").arg(dLogits)));

        // Importance: column sums over ~100 query rows of values in [0,1]; compared relative to
        // their size since entries near BOS approach N.
        const Golden importance = golden(*gold, "importance");
        const int64_t n = importance.shape[1];
        QCOMPARE(int64_t(s.importance().size()), importance.shape[0]);
        for (size_t l = 0; l < s.importance().size(); ++l) {
            QCOMPARE(int64_t(s.importance()[l].size()), n);
            for (int64_t j = 0; j < n; ++j) {
                const float g = importance.values[size_t(l * n + j)];
                QVERIFY2(std::abs(s.importance()[l][size_t(j)] - g) <= 1e-4f * (1.f + std::abs(g)),
                         qPrintable(QString("importance layer %1 token %2").arg(l).arg(j)));
            }
        }

        // Greedy decode: row k of decode_logits predicts greedy_ids[k].
        followGreedyDecode(s, golden(*gold, "decode_logits"), ids(meta["greedy_ids"].toArray()), 1e-4f);
    }

    void kvCacheF16_data() {
        QTest::addColumn<QString>("name");
        for (const char* n : {"tiny-gqa-f16", "tiny-mha-bf16"}) QTest::newRow(n) << n;
    }

    // The default cache of a 16-bit model stores f16 entries: every prompt logit and a 32-token
    // greedy decode against transformers whose cache rounds the same way. Tolerance 2e-3: both
    // sides round keys and values that agree to float32 noise, but an entry within that noise of a
    // rounding boundary lands on the other f16 neighbour (2^-11 apart), which these deliberately
    // wide random models amplify on logits. Which entries flip follows the summation order of the
    // projections that made them: measured 1.4e-4 to 3.7e-4 (prompt) with OpenBLAS's SkylakeX
    // kernels or the AVX-512 build's own GEMM, 1.15e-3 (mha prompt) and 5.8e-4 (decode) in the AVX2
    // build under OPENBLAS_CORETYPE=Haswell (the machine image's setting). The rounding itself moves
    // logits by 8.5e-3 (gqa) and 1.1e-2 (mha), so a cache that did not round, or rounded wrongly,
    // still fails by a factor of four or more.
    void kvCacheF16() {
        QFETCH(QString, name);
        auto model = LlavaModel::load(pkvtest::str(modelDir(name)), {DeviceChoice::Cpu});
        QCOMPARE(model->kvDtype(), DType::F16);  // resolved from Auto
        auto gold = SafetensorsFile::open(pkvtest::str(goldenPath(name + "-kvf16", ".safetensors")));
        const QJsonObject meta = readJson(goldenPath(name, ".json"));
        const QJsonObject meta16 = readJson(goldenPath(name + "-kvf16", ".json"));
        const Golden pixels = golden(*SafetensorsFile::open(pkvtest::str(goldenPath(name, ".safetensors"))), "pixels");

        Session s(model);
        s.keepAllPromptLogits(true);
        s.prefillPixels(meta["prompt"].toString().toStdString(), &pixels.values);
        const int64_t width = int64_t(model->config().text.numKvHeads) * model->config().text.headDim;
        QCOMPARE(s.stats().kvBytesPerEntry, width * 2 * 2);  // keys and values, two bytes each
        const Golden logits = golden(*gold, "logits");
        QCOMPARE(s.promptLogits().size(), logits.values.size());
        const float dLogits = maxAbsDiff(s.promptLogits().data(), logits.values.data(), logits.values.size());
        QVERIFY2(dLogits <= 2e-3f, qPrintable(QString("prompt logits max|d| = %1").arg(dLogits)));

        followGreedyDecode(s, golden(*gold, "decode_logits"), ids(meta16["greedy_ids"].toArray()), 2e-3f);
    }

    // Auto keeps an f32 model's cache in f32; f16 can be asked for on any model and halves the bytes.
    void kvDtypeChoice() {
        const std::string dir = pkvtest::str(modelDir("tiny-gqa-f32"));
        LoadOptions options;
        options.device = DeviceChoice::Cpu;
        QCOMPARE(LlavaModel::load(dir, options)->kvDtype(), DType::F32);
        options.kvDtype = KvDtypeChoice::F16;
        auto half = LlavaModel::load(dir, options);
        QCOMPARE(half->kvDtype(), DType::F16);
        options.kvDtype = KvDtypeChoice::F32;
        auto full = LlavaModel::load(dir, options);
        Session a(full), b(half);
        const QJsonObject meta = readJson(goldenPath("tiny-gqa-f32", ".json"));
        const Golden pixels = golden(*SafetensorsFile::open(pkvtest::str(goldenPath("tiny-gqa-f32", ".safetensors"))), "pixels");
        a.prefillPixels(meta["prompt"].toString().toStdString(), &pixels.values);
        b.prefillPixels(meta["prompt"].toString().toStdString(), &pixels.values);
        QCOMPARE(b.stats().kvBytes * 2, a.stats().kvBytes);

        // A backend that keeps only f32 caches (as the cuda one): auto falls back, f16 is refused.
        struct F32Only : ProfilingBackend {
            using ProfilingBackend::ProfilingBackend;
            bool supportsKvDtype(DType t) const override { return t == DType::F32; }
        } f32Only(createCpuBackend());
        QCOMPARE(resolveKvDtype(KvDtypeChoice::Auto, DType::F16, f32Only), DType::F32);
        QCOMPARE(resolveKvDtype(KvDtypeChoice::Auto, DType::BF16, *createCpuBackend()), DType::F16);
        QVERIFY(pkvtest::errorOf([&] { resolveKvDtype(KvDtypeChoice::F16, DType::F16, f32Only); })
                    .contains("cannot keep the key/value cache in f16"));

        KvDtypeChoice c = KvDtypeChoice::Auto;
        QVERIFY(parseKvDtypeChoice("f16", c) && c == KvDtypeChoice::F16);
        QVERIFY(parseKvDtypeChoice("auto", c) && c == KvDtypeChoice::Auto);
        QVERIFY(!parseKvDtypeChoice("fp16", c));
        QCOMPARE(c, KvDtypeChoice::Auto);  // untouched on failure
    }

    // Weights read into memory compute exactly what mapped weights do (the same bytes at another
    // address): every prompt logit equal, and the 16-bit model's golden greedy decode followed.
    // Loading reports the reading as progress; a cancel during it ends the load.
    void weightsInMemory() {
        const QString name = "tiny-gqa-f16";
        const std::string dir = pkvtest::str(modelDir(name));
        LoadOptions options;
        options.device = DeviceChoice::Cpu;
        auto mapped = LlavaModel::load(dir, options);
        QVERIFY(!mapped->folder().weightsInMemory());
        options.weights = WeightStorage::Memory;
        std::vector<std::string> steps;
        options.progress = [&](double, const std::string& what) { steps.push_back(what); };
        auto inMemory = LlavaModel::load(dir, options);
        QVERIFY(inMemory->folder().weightsInMemory());
        QVERIFY(std::count(steps.begin(), steps.end(), "Reading the weights into memory") >= 1);

        auto gold = SafetensorsFile::open(pkvtest::str(goldenPath(name, ".safetensors")));
        const QJsonObject meta = readJson(goldenPath(name, ".json"));
        const Golden pixels = golden(*gold, "pixels");
        Session a(mapped), b(inMemory);
        a.keepAllPromptLogits(true);
        b.keepAllPromptLogits(true);
        a.prefillPixels(meta["prompt"].toString().toStdString(), &pixels.values);
        b.prefillPixels(meta["prompt"].toString().toStdString(), &pixels.values);
        QVERIFY(!a.promptLogits().empty());
        QCOMPARE(b.promptLogits(), a.promptLogits());

        std::atomic<bool> cancel{false};
        options.cancel = &cancel;
        options.progress = [&](double, const std::string& what) {
            if (what == "Reading the weights into memory") cancel = true;
        };
        bool cancelled = false;
        try {
            LlavaModel::load(dir, options);
        } catch (const Cancelled&) {
            cancelled = true;
        }
        QVERIFY(cancelled);

        WeightStorage w = WeightStorage::Mapped;
        QVERIFY(parseWeightStorage("memory", w) && w == WeightStorage::Memory);
        QVERIFY(!parseWeightStorage("ram", w));
        QCOMPARE(w, WeightStorage::Memory);  // untouched on failure
    }

    // A backend that keeps its own copy of the weights (as CUDA does, in device memory) is not
    // given a second one in RAM: the folder stays mapped, the model says why, and the logits are
    // the cpu backend's. The cpu backend still reads them into memory, with nothing to say.
    void memoryStorageSkippedForABackendWithItsOwnCopy() {
        struct OwnCopy : ProfilingBackend {
            OwnCopy() : ProfilingBackend(createCpuBackend()) {}
            std::string name() const override { return "own-copy"; }
            bool readsHostWeights() const override { return false; }
        };
        registerCudaFactory([](int64_t) { return BackendChoice{std::make_unique<OwnCopy>(), "own-copy: a test's"}; });
        struct Unregister {
            ~Unregister() { registerCudaFactory({}); }
        } unregister;

        const std::string dir = pkvtest::str(modelDir("tiny-gqa-f16"));
        LoadOptions options;  // device auto: the registered factory's backend
        options.weights = WeightStorage::Memory;
        auto own = LlavaModel::load(dir, options);
        QCOMPARE(QString::fromStdString(own->backend().name()), QString("own-copy"));
        QVERIFY(!own->folder().weightsInMemory());
        const QString note = QString::fromStdString(own->weightsNote());
        QVERIFY2(note.contains("stay mapped") && note.contains("own-copy backend keeps its own copy"), qPrintable(note));

        options.device = DeviceChoice::Cpu;
        auto cpu = LlavaModel::load(dir, options);
        QVERIFY(cpu->folder().weightsInMemory());
        QVERIFY(cpu->weightsNote().empty());

        Session a(own), b(cpu);
        a.keepAllPromptLogits(true);
        b.keepAllPromptLogits(true);
        a.prefill("USER: hello ASSISTANT:", nullptr);
        b.prefill("USER: hello ASSISTANT:", nullptr);
        QVERIFY(!a.promptLogits().empty());
        QCOMPARE(a.promptLogits(), b.promptLogits());
    }

    // The same continuation through the public generate() loop, from the image file on disk.
    void generateFromImageFile() {
        const QString name = "tiny-gqa-f16";
        auto model = LlavaModel::load(pkvtest::str(modelDir(name)), {DeviceChoice::Cpu});
        const QJsonObject meta = readJson(goldenPath(name, ".json"));
        const RgbImage image = decodeImageFile(pkvtest::str(pkvtest::sourceDir() + "/" + meta["image"].toString()));
        auto gold = SafetensorsFile::open(pkvtest::str(goldenPath(name, ".safetensors")));
        const Golden pixels = golden(*gold, "pixels");
        const std::vector<float> ours = model->preprocess(image, ImageMode::Pad);
        QCOMPARE(ours.size(), pixels.values.size());
        // 1/255 of the 0..1 range, divided by the smallest CLIP std, in normalised units.
        QVERIFY(maxAbsDiff(ours.data(), pixels.values.data(), ours.size()) <= (1.f / 255.f) / 0.2613f + 1e-5f);

        Session s(model);
        s.prefill(meta["prompt"].toString().toStdString(), &image, ImageMode::Pad);
        std::vector<int> streamed;
        std::string text;
        GenerateOptions opt;
        opt.maxNewTokens = 32;
        opt.stopAtEos = false;
        QCOMPARE(s.generate(opt, [&](int id, const std::string& piece) {
                     if (id >= 0) streamed.push_back(id);
                     text += piece;
                 }),
                 StopReason::MaxTokens);
        QCOMPARE(streamed, ids(meta["greedy_ids"].toArray()));
        // The session streams exactly what a StreamDetokenizer makes of the ids (that class's own
        // tests relate it to decode(); random weights emit <s> mid-answer, where the two differ).
        StreamDetokenizer reference(model->tokenizer());
        std::string expectedText;
        for (int id : streamed) expectedText += reference.push(id);
        expectedText += reference.flush();
        QVERIFY(!text.empty());
        QCOMPARE(text, expectedText);
        QCOMPARE(s.stats().decodeSteps, int64_t(31));
        QCOMPARE(s.stats().layerLengths, std::vector<int64_t>(3, s.stats().promptTokens + 31));
    }

    // MM-Vet layout: the image marker after the question.
    void imageAfterQuestion() {
        const QString name = "tiny-gqa-f32-mmvet";
        const QJsonObject meta = readJson(goldenPath(name, ".json"));
        auto model = LlavaModel::load(pkvtest::str(modelDir("tiny-gqa-f32")), {DeviceChoice::Cpu});
        auto gold = SafetensorsFile::open(pkvtest::str(goldenPath(name, ".safetensors")));
        // Same image as the description golden, whose pixels are stored there.
        const Golden pixels = golden(*SafetensorsFile::open(pkvtest::str(goldenPath("tiny-gqa-f32", ".safetensors"))), "pixels");
        const std::string prompt = meta["prompt"].toString().toStdString();
        QCOMPARE(tokenizePrompt(model->tokenizer(), prompt, 512).ids, ids(meta["prompt_ids"].toArray()));
        Session s(model);
        s.keepAllPromptLogits(true);
        s.prefillPixels(prompt, &pixels.values);
        const Golden logits = golden(*gold, "logits");
        QCOMPARE(s.promptLogits().size(), logits.values.size());
        QVERIFY(maxAbsDiff(s.promptLogits().data(), logits.values.data(), logits.values.size()) <= 1e-4f);
    }

    // Fork copies the cache: both branches continue identically and independently.
    void forkIsIndependent() {
        auto model = LlavaModel::load(pkvtest::str(modelDir("tiny-gqa-f32")), {DeviceChoice::Cpu});
        const QJsonObject meta = readJson(goldenPath("tiny-gqa-f32", ".json"));
        const RgbImage image = decodeImageFile(pkvtest::str(pkvtest::sourceDir() + "/" + meta["image"].toString()));
        Session a(model);
        a.prefill(meta["prompt"].toString().toStdString(), &image);
        auto b = a.fork();
        GenerateOptions opt;
        opt.maxNewTokens = 10;
        opt.stopAtEos = false;
        a.generate(opt, {});
        QCOMPARE(b->generated().size(), size_t(0));
        QCOMPARE(b->cache()->length(0), a.stats().promptTokens);
        b->generate(opt, {});
        QCOMPARE(b->generated(), a.generated());
    }
};

QTEST_APPLESS_MAIN(TestModelGolden)
#include "test_model_golden.moc"
