// config.json / preprocessor_config.json parsing with the transformers defaults real llava-hf
// files rely on, and opening model folders: weights found in either tensor-name layout, sharded
// or not, and every wrong folder refused with a sentence that says what is wrong.
#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/paths.h"
#include "engine/common/error.h"
#include "engine/io/model_folder.h"

using pkvtest::str;
using nlohmann::json;

using pkvtest::errorOf;

namespace {

// config.json of llava-hf/llava-1.5-7b-hf as published: the text config states only what
// differs from LlamaConfig's defaults.
const char* kLlava7bConfig = R"({
  "architectures": ["LlavaForConditionalGeneration"],
  "ignore_index": -100,
  "image_token_index": 32000,
  "model_type": "llava",
  "pad_token_id": 32001,
  "projector_hidden_act": "gelu",
  "text_config": {
    "architectures": ["LlamaForCausalLM"],
    "max_position_embeddings": 4096,
    "model_type": "llama",
    "rms_norm_eps": 1e-05,
    "torch_dtype": "float16",
    "vocab_size": 32064
  },
  "tie_word_embeddings": false,
  "torch_dtype": "float16",
  "transformers_version": "4.36.0.dev0",
  "vision_config": {
    "hidden_size": 1024,
    "image_size": 336,
    "intermediate_size": 4096,
    "model_type": "clip_vision_model",
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "patch_size": 14,
    "projection_dim": 768,
    "vocab_size": 32000
  },
  "vision_feature_layer": -2,
  "vision_feature_select_strategy": "default",
  "vocab_size": 32064
})";

const char* kLlavaPreprocessor = R"({
  "crop_size": {"height": 336, "width": 336},
  "do_center_crop": true, "do_convert_rgb": true, "do_normalize": true, "do_rescale": true,
  "do_resize": true,
  "image_mean": [0.48145466, 0.4578275, 0.40821073],
  "image_processor_type": "CLIPImageProcessor",
  "image_std": [0.26862954, 0.26130258, 0.27577711],
  "processor_class": "LlavaProcessor",
  "resample": 3,
  "rescale_factor": 0.00392156862745098,
  "size": {"shortest_edge": 336}
})";

// A tiny but valid config for folder tests: text hidden 8, vision 28 px in 14 px patches.
json tinyConfig() {
    return json{{"model_type", "llava"},
                {"text_config", {{"model_type", "llama"}, {"hidden_size", 8}, {"intermediate_size", 16},
                                 {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"vocab_size", 10}}},
                {"vision_config", {{"model_type", "clip_vision_model"}, {"hidden_size", 4}, {"intermediate_size", 8},
                                   {"num_hidden_layers", 2}, {"num_attention_heads", 1}, {"image_size", 28},
                                   {"patch_size", 14}}}};
}

struct Tensor {
    std::string name;
    std::string dtype;
    std::vector<int64_t> shape;
};

// A safetensors file holding the given tensors, each filled with its index + 1 so a lookup
// that lands on the wrong tensor shows.
QByteArray safetensors(const std::vector<Tensor>& tensors) {
    json header = json::object();
    QByteArray data;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const Tensor& t = tensors[i];
        int64_t n = 1;
        for (int64_t d : t.shape) n *= d;
        const int64_t bytes = n * (t.dtype == "F32" ? 4 : t.dtype == "I8" ? 1 : 2);
        header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + bytes}}};
        data.append(QByteArray(qsizetype(bytes), char(i + 1)));
    }
    QByteArray text = QByteArray::fromStdString(header.dump());
    QByteArray out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = char((quint64(text.size()) >> (8 * i)) & 0xff);
    return out + text + data;
}

void writeFile(const QString& path, const QByteArray& bytes) {
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly)) qFatal("cannot write test file");
    f.write(bytes);
}

#define VERIFY_MESSAGE(msg, part) QVERIFY2((msg).contains(part), qPrintable("\"" + (msg) + "\" lacks: " + (part)))

}  // namespace

class TestModelFolder : public QObject {
    Q_OBJECT

    QTemporaryDir tmp_;
    int folders_ = 0;

    // A fresh folder with config.json and tokenizer.model (and weights, when given).
    QString makeFolder(const std::vector<Tensor>& weights = {}) {
        QString dir = tmp_.filePath(QString("model%1").arg(folders_++));
        QDir().mkpath(dir);
        writeFile(dir + "/config.json", QByteArray::fromStdString(tinyConfig().dump()));
        writeFile(dir + "/tokenizer.model", "not parsed by ModelFolder");
        if (!weights.empty()) writeFile(dir + "/model.safetensors", safetensors(weights));
        return dir;
    }

private slots:
    void llava7bConfigAppliesDefaults() {
        pkv::LlavaConfig c = pkv::parseLlavaConfig(kLlava7bConfig, "config.json");
        QCOMPARE(c.text.hiddenSize, 4096);
        QCOMPARE(c.text.intermediateSize, 11008);
        QCOMPARE(c.text.numLayers, 32);
        QCOMPARE(c.text.numHeads, 32);
        QCOMPARE(c.text.numKvHeads, 32);
        QCOMPARE(c.text.headDim, 128);
        QCOMPARE(c.text.vocabSize, 32064);
        QCOMPARE(c.text.maxPositions, 4096);
        QCOMPARE(c.text.rmsNormEps, 1e-5f);
        QCOMPARE(c.text.ropeTheta, 10000.0f);
        QCOMPARE(c.text.bosTokenId, 1);
        QCOMPARE(c.text.eosTokenId, 2);
        QCOMPARE(c.text.padTokenId, 32001);
        QVERIFY(!c.text.tieWordEmbeddings);
        QCOMPARE(c.vision.hiddenSize, 1024);
        QCOMPARE(c.vision.numLayers, 24);
        QCOMPARE(c.vision.headDim, 64);
        QCOMPARE(c.vision.hiddenAct, std::string("quick_gelu"));
        QCOMPARE(c.vision.layerNormEps, 1e-5f);
        QCOMPARE(c.imageTokenIndex, 32000);
        QCOMPARE(c.imageTokens(), 576);
        QCOMPARE(c.visionLayersToRun(), 23);
        QCOMPARE(c.projectorHiddenAct, std::string("gelu"));
        QVERIFY(c.projectorBias);
    }

    void groupedQueryConfigParses() {
        json j = json::parse(kLlava7bConfig);
        j["text_config"]["num_key_value_heads"] = 4;
        j["text_config"]["eos_token_id"] = {7, 8};
        j["text_config"]["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 500000.0}};
        j["text_config"]["pad_token_id"] = nullptr;
        j["image_token_id"] = 31999;
        j.erase("image_token_index");
        j["vision_feature_select_strategy"] = "full";
        pkv::LlavaConfig c = pkv::parseLlavaConfig(j.dump(), "config.json");
        QCOMPARE(c.text.numHeads, 32);
        QCOMPARE(c.text.numKvHeads, 4);
        QCOMPARE(c.text.eosTokenId, 7);
        QCOMPARE(c.text.ropeTheta, 500000.0f);
        QCOMPARE(c.text.padTokenId, 32001);  // null in text_config defers to the top level
        QCOMPARE(c.imageTokenIndex, 31999);
        QCOMPARE(c.imageTokens(), 577);
    }

    void emptySubConfigsTakeClassDefaults() {
        pkv::LlavaConfig c =
            pkv::parseLlavaConfig(R"({"model_type":"llava","text_config":{},"vision_config":{}})", "config.json");
        QCOMPARE(c.text.hiddenSize, 4096);
        QCOMPARE(c.text.maxPositions, 2048);
        QCOMPARE(c.text.vocabSize, 32000);
        QCOMPARE(c.text.rmsNormEps, 1e-6f);
        QCOMPARE(c.vision.hiddenSize, 768);
        QCOMPARE(c.vision.intermediateSize, 3072);
        QCOMPARE(c.vision.numLayers, 12);
        QCOMPARE(c.vision.imageSize, 224);
        QCOMPARE(c.vision.patchSize, 32);
        QCOMPARE(c.imageTokens(), 49);
        QCOMPARE(c.visionLayersToRun(), 11);
    }

    void badConfigIsRefused_data() {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QStringList>("expected");
        auto edit = [](const std::function<void(json&)>& change) {
            json j = json::parse(kLlava7bConfig);
            change(j);
            return QString::fromStdString(j.dump());
        };
        QTest::newRow("not json") << "{oops" << QStringList{"not valid JSON"};
        QTest::newRow("not an object") << "[]" << QStringList{"not hold a JSON object"};
        QTest::newRow("other model") << edit([](json& j) { j["model_type"] = "qwen2_vl"; })
                                     << QStringList{"\"qwen2_vl\"", "only LLaVA", "llava-hf"};
        QTest::newRow("no model_type") << edit([](json& j) { j.erase("model_type"); }) << QStringList{"model_type"};
        QTest::newRow("no text_config") << edit([](json& j) { j.erase("text_config"); })
                                        << QStringList{"text_config is missing"};
        QTest::newRow("no vision_config") << edit([](json& j) { j.erase("vision_config"); })
                                          << QStringList{"vision_config is missing"};
        QTest::newRow("mistral decoder") << edit([](json& j) { j["text_config"]["model_type"] = "mistral"; })
                                         << QStringList{"\"mistral\"", "llama"};
        QTest::newRow("siglip tower") << edit([](json& j) { j["vision_config"]["model_type"] = "siglip_vision_model"; })
                                      << QStringList{"\"siglip_vision_model\"", "CLIP"};
        QTest::newRow("string size") << edit([](json& j) { j["text_config"]["hidden_size"] = "4096"; })
                                     << QStringList{"text_config.hidden_size", "an integer", "a string"};
        QTest::newRow("float layers") << edit([](json& j) { j["vision_config"]["num_hidden_layers"] = 24.5; })
                                      << QStringList{"vision_config.num_hidden_layers", "an integer"};
        QTest::newRow("zero heads") << edit([](json& j) { j["text_config"]["num_attention_heads"] = 0; })
                                    << QStringList{"text_config.num_attention_heads", "positive"};
        QTest::newRow("hidden % heads") << edit([](json& j) { j["text_config"]["num_attention_heads"] = 30; })
                                        << QStringList{"text_config.hidden_size (4096)", "multiple", "(30)"};
        QTest::newRow("heads % kv heads") << edit([](json& j) { j["text_config"]["num_key_value_heads"] = 5; })
                                          << QStringList{"num_attention_heads (32)", "num_key_value_heads (5)"};
        QTest::newRow("image % patch") << edit([](json& j) { j["vision_config"]["patch_size"] = 15; })
                                       << QStringList{"vision_config.image_size (336)", "patch_size (15)"};
        QTest::newRow("feature layer too deep") << edit([](json& j) { j["vision_feature_layer"] = -26; })
                                                << QStringList{"vision_feature_layer (-26)", "25 hidden states"};
        QTest::newRow("feature layer list") << edit([](json& j) { j["vision_feature_layer"] = {-2, -5}; })
                                            << QStringList{"vision_feature_layer is a list", "not supported"};
        QTest::newRow("rope scaling") << edit([](json& j) {
            j["text_config"]["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
        }) << QStringList{"rope_scaling", "\"linear\"", "not supported"};
        QTest::newRow("gelu llama") << edit([](json& j) { j["text_config"]["hidden_act"] = "gelu"; })
                                    << QStringList{"text_config.hidden_act", "\"gelu\"", "silu"};
        QTest::newRow("relu tower") << edit([](json& j) { j["vision_config"]["hidden_act"] = "relu"; })
                                    << QStringList{"vision_config.hidden_act", "\"relu\""};
        QTest::newRow("silu projector") << edit([](json& j) { j["projector_hidden_act"] = "silu"; })
                                        << QStringList{"projector_hidden_act", "\"silu\""};
        QTest::newRow("odd strategy") << edit([](json& j) { j["vision_feature_select_strategy"] = "cls"; })
                                      << QStringList{"vision_feature_select_strategy", "\"cls\""};
    }

    void badConfigIsRefused() {
        QFETCH(QString, text);
        QFETCH(QStringList, expected);
        QString msg = errorOf([&] { pkv::parseLlavaConfig(str(text), "/m/config.json"); });
        VERIFY_MESSAGE(msg, "/m/config.json");
        for (const QString& part : expected) VERIFY_MESSAGE(msg, part);
    }

    void preprocessConfigParses() {
        pkv::PreprocessConfig p = pkv::parsePreprocessConfig(kLlavaPreprocessor, "preprocessor_config.json");
        QCOMPARE(p.shortestEdge, 336);
        QCOMPARE(p.resizeHeight, 0);
        QCOMPARE(p.cropHeight, 336);
        QCOMPARE(p.cropWidth, 336);
        QVERIFY(p.doResize && p.doCenterCrop && p.doNormalize && p.doRescale);
        QCOMPARE(p.resample, 3);
        QVERIFY(std::abs(p.rescaleFactor - 1.0f / 255.0f) < 1e-9f);
        QCOMPARE(p.mean[1], 0.4578275f);
        QCOMPARE(p.std[2], 0.27577711f);

        p = pkv::parsePreprocessConfig(R"({"size":224,"crop_size":224,"do_center_crop":false})", "p.json");
        QCOMPARE(p.shortestEdge, 224);
        QCOMPARE(p.cropHeight, 224);
        QCOMPARE(p.cropWidth, 224);
        QVERIFY(!p.doCenterCrop);

        p = pkv::parsePreprocessConfig(R"({"size":{"height":384,"width":512},"crop_size":{"height":384,"width":512}})",
                                       "p.json");
        QCOMPARE(p.resizeHeight, 384);
        QCOMPARE(p.resizeWidth, 512);
        QCOMPARE(p.shortestEdge, 384);
        QCOMPARE(p.cropWidth, 512);
    }

    void badPreprocessConfigIsRefused_data() {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("expected");
        QTest::newRow("not an object") << "3" << "not hold a JSON object";
        QTest::newRow("two means") << R"({"image_mean":[0.5,0.5]})" << "image_mean should be a list of 3 numbers";
        QTest::newRow("zero std") << R"({"image_std":[0.5,0,0.5]})" << "image_std must be positive";
        QTest::newRow("size without edge") << R"({"size":{"longest_edge":3}})" << "size has neither";
        QTest::newRow("string crop") << R"({"crop_size":"336"})" << "crop_size should be an object";
        QTest::newRow("negative size") << R"({"size":{"shortest_edge":-1}})" << "size.shortest_edge must be positive";
    }

    void badPreprocessConfigIsRefused() {
        QFETCH(QString, text);
        QFETCH(QString, expected);
        QString msg = errorOf([&] { pkv::parsePreprocessConfig(str(text), "/m/preprocessor_config.json"); });
        VERIFY_MESSAGE(msg, "/m/preprocessor_config.json");
        VERIFY_MESSAGE(msg, expected);
    }

    void hubLayoutFolderOpens() {
        QString dir = makeFolder({{"language_model.model.embed_tokens.weight", "F16", {10, 8}},
                                  {"language_model.lm_head.weight", "BF16", {10, 8}},
                                  {"vision_tower.vision_model.post_layernorm.weight", "F32", {4}},
                                  {"multi_modal_projector.linear_1.weight", "F16", {8, 4}}});
        auto m = pkv::ModelFolder::open(str(dir));
        QCOMPARE(m->dir(), str(dir));
        QCOMPARE(m->config().text.hiddenSize, 8);
        QCOMPARE(m->preprocess().shortestEdge, 336);  // no preprocessor_config.json: defaults
        QCOMPARE(m->tokenizerModelPath(), str(dir + "/tokenizer.model"));
        QCOMPARE(m->weightBytes(), size_t(QFileInfo(dir + "/model.safetensors").size()));
        const pkv::TensorView& emb = m->require("language_model.model.embed_tokens.weight", {10, 8});
        QCOMPARE(int(emb.data[0]), 1);
        QCOMPARE(int(m->require("language_model.lm_head.weight", {10, 8}).data[0]), 2);
        QVERIFY(m->find("vision_tower.vision_model.post_layernorm.weight"));
        QVERIFY(m->find("multi_modal_projector.linear_1.weight"));
        QVERIFY(!m->find("multi_modal_projector.linear_2.weight"));
    }

    void recentTransformersLayoutIsFoundByHubNames() {
        QString dir = makeFolder({{"model.language_model.layers.0.self_attn.q_proj.weight", "F16", {8, 8}},
                                  {"lm_head.weight", "F16", {10, 8}},
                                  {"model.vision_tower.vision_model.post_layernorm.weight", "F32", {4}},
                                  {"model.multi_modal_projector.linear_2.bias", "F32", {8}}});
        writeFile(dir + "/preprocessor_config.json", R"({"size":{"shortest_edge":28},"crop_size":28})");
        auto m = pkv::ModelFolder::open(str(dir));
        QCOMPARE(m->preprocess().shortestEdge, 28);
        const pkv::TensorView* q = m->find("language_model.model.layers.0.self_attn.q_proj.weight");
        QVERIFY(q);
        QCOMPARE(q->name, std::string("model.language_model.layers.0.self_attn.q_proj.weight"));
        QCOMPARE(int(q->data[0]), 1);
        QCOMPARE(int(m->find("language_model.lm_head.weight")->data[0]), 2);
        QCOMPARE(int(m->find("vision_tower.vision_model.post_layernorm.weight")->data[0]), 3);
        QCOMPARE(int(m->find("multi_modal_projector.linear_2.bias")->data[0]), 4);
    }

    void requireExplainsMismatches() {
        QString dir = makeFolder({{"language_model.model.norm.weight", "F16", {8}},
                                  {"language_model.model.embed_tokens.weight", "I8", {10, 8}}});
        auto m = pkv::ModelFolder::open(str(dir));
        QString file = dir + "/model.safetensors";

        QString msg = errorOf([&] { m->require("language_model.model.norm.weight", {16}); });
        VERIFY_MESSAGE(msg, "\"language_model.model.norm.weight\"");
        VERIFY_MESSAGE(msg, file);
        VERIFY_MESSAGE(msg, "[8]");
        VERIFY_MESSAGE(msg, "[16]");

        msg = errorOf([&] { m->require("language_model.model.layers.0.mlp.up_proj.weight", {16, 8}); });
        VERIFY_MESSAGE(msg, "\"language_model.model.layers.0.mlp.up_proj.weight\"");
        VERIFY_MESSAGE(msg, "\"model.language_model.layers.0.mlp.up_proj.weight\"");
        VERIFY_MESSAGE(msg, dir);

        msg = errorOf([&] { m->require("language_model.model.embed_tokens.weight", {10, 8}); });
        VERIFY_MESSAGE(msg, "I8");
        VERIFY_MESSAGE(msg, file);
    }

    void shardedFolderOpens() {
        QString dir = makeFolder();
        writeFile(dir + "/model-00001-of-00002.safetensors",
                  safetensors({{"language_model.model.norm.weight", "F32", {8}}, {"stray", "F32", {1}}}));
        writeFile(dir + "/model-00002-of-00002.safetensors",
                  safetensors({{"language_model.lm_head.weight", "F16", {10, 8}}}));
        writeFile(dir + "/model.safetensors.index.json", R"({"metadata":{"total_size":200},"weight_map":{
            "language_model.model.norm.weight":"model-00001-of-00002.safetensors",
            "language_model.lm_head.weight":"model-00002-of-00002.safetensors"}})");
        auto m = pkv::ModelFolder::open(str(dir));
        QVERIFY(m->find("language_model.model.norm.weight"));
        QCOMPARE(QString::fromStdString(m->find("language_model.lm_head.weight")->file),
                 dir + "/model-00002-of-00002.safetensors");
        QVERIFY(!m->find("stray"));  // only what the index lists is part of the model
        QCOMPARE(m->weightBytes(), size_t(QFileInfo(dir + "/model-00001-of-00002.safetensors").size() +
                                          QFileInfo(dir + "/model-00002-of-00002.safetensors").size()));
    }

    // Weights read into memory (--weights memory): every shard's tensors keep their bytes and
    // stop depending on the files, which are then overwritten with other bytes; progress runs
    // from above 0 to 1.
    void weightsReadIntoMemory() {
        QString dir = makeFolder();
        const QString shard1 = dir + "/model-00001-of-00002.safetensors", shard2 = dir + "/model-00002-of-00002.safetensors";
        writeFile(shard1, safetensors({{"language_model.model.norm.weight", "F32", {8}}}));
        writeFile(shard2, safetensors({{"stray", "F32", {3}}, {"language_model.lm_head.weight", "F16", {10, 8}}}));
        writeFile(dir + "/model.safetensors.index.json", R"({"weight_map":{
            "language_model.model.norm.weight":"model-00001-of-00002.safetensors",
            "language_model.lm_head.weight":"model-00002-of-00002.safetensors"}})");
        auto m = pkv::ModelFolder::open(str(dir));
        QVERIFY(!m->weightsInMemory());
        std::vector<double> progress;
        m->readWeightsIntoMemory([&](double f) { progress.push_back(f); });
        QVERIFY(m->weightsInMemory());
        QVERIFY(!progress.empty());
        QVERIFY(progress.front() > 0);
        QVERIFY(std::is_sorted(progress.begin(), progress.end()));
        QCOMPARE(progress.back(), 1.0);
        for (const QString& f : {shard1, shard2}) writeFile(f, QByteArray(QFileInfo(f).size(), '\x55'));
        const pkv::TensorView* norm = m->find("language_model.model.norm.weight");
        const pkv::TensorView* head = m->find("language_model.lm_head.weight");
        QCOMPARE(QByteArray(reinterpret_cast<const char*>(norm->data), qsizetype(norm->nbytes)), QByteArray(32, char(1)));
        QCOMPARE(QByteArray(reinterpret_cast<const char*>(head->data), qsizetype(head->nbytes)), QByteArray(160, char(2)));
    }

    // A folder whose weights would not fit is refused with the sizes, before anything is read.
    void weightsTooLargeForMemoryAreRefused() {
        QString msg = errorOf([] { pkv::checkWeightsFitInMemory(size_t(14.1e9), size_t(9.8e9)); });
        VERIFY_MESSAGE(msg, "needs 14.1 GB and 9.8 GB are available");
        VERIFY_MESSAGE(msg, "keep them mapped from their files");
        QVERIFY(errorOf([] { pkv::checkWeightsFitInMemory(size_t(14.1e9), size_t(16e9)); }).isEmpty());
        // Too close: the margin for the rest of the run is not left.
        QVERIFY(!errorOf([] { pkv::checkWeightsFitInMemory(size_t(14.1e9), size_t(14.1e9) + pkv::kMemoryMargin - 1); }).isEmpty());

        QString dir = makeFolder({{"language_model.model.norm.weight", "F32", {8}}});
        auto m = pkv::ModelFolder::open(str(dir));
        bool called = false;
        msg = errorOf([&] { m->readWeightsIntoMemory([&](double) { called = true; }, size_t(1) << 20); });
        VERIFY_MESSAGE(msg, "Reading the weights into memory needs");
        QVERIFY(!called);
        QVERIFY(!m->weightsInMemory());
        QCOMPARE(m->find("language_model.model.norm.weight")->data[0], std::byte(1));  // still mapped, still readable
    }

    void missingShardIsRefused() {
        QString dir = makeFolder();
        writeFile(dir + "/model-00001-of-00002.safetensors", safetensors({{"language_model.model.norm.weight", "F32", {8}}}));
        writeFile(dir + "/model.safetensors.index.json", R"({"weight_map":{
            "language_model.model.norm.weight":"model-00001-of-00002.safetensors",
            "language_model.lm_head.weight":"model-00002-of-00002.safetensors"}})");
        QString msg = errorOf([&] { pkv::ModelFolder::open(str(dir)); });
        VERIFY_MESSAGE(msg, "model-00002-of-00002.safetensors");
        VERIFY_MESSAGE(msg, "missing");
    }

    void indexNamingAbsentTensorIsRefused() {
        QString dir = makeFolder();
        writeFile(dir + "/a.safetensors", safetensors({{"x", "F32", {1}}}));
        writeFile(dir + "/model.safetensors.index.json", R"({"weight_map":{"y":"a.safetensors"}})");
        QString msg = errorOf([&] { pkv::ModelFolder::open(str(dir)); });
        VERIFY_MESSAGE(msg, "\"y\"");
        VERIFY_MESSAGE(msg, "a.safetensors");
    }

    void severalFilesWithoutIndexAreAllOpened() {
        QString dir = makeFolder({{"a", "F32", {1}}});
        writeFile(dir + "/extra.safetensors", safetensors({{"b", "F32", {2}}}));
        auto m = pkv::ModelFolder::open(str(dir));
        QVERIFY(m->find("a") && m->find("b"));

        writeFile(dir + "/clash.safetensors", safetensors({{"a", "F32", {1}}}));
        QString msg = errorOf([&] { pkv::ModelFolder::open(str(dir)); });
        VERIFY_MESSAGE(msg, "\"a\" appears in both");
    }

    void pickledWeightsAreRefused() {
        QString dir = makeFolder();
        writeFile(dir + "/pytorch_model.bin", "PK\x03\x04 pretend zip of pickles");
        QString msg = errorOf([&] { pkv::ModelFolder::open(str(dir)); });
        VERIFY_MESSAGE(msg, "pytorch_model.bin");
        VERIFY_MESSAGE(msg, "pickle");
        VERIFY_MESSAGE(msg, "safe_serialization=True");
    }

    void wrongFoldersAreRefused() {
        QString dir = makeFolder();
        QString msg = errorOf([&] { pkv::ModelFolder::open(str(dir)); });
        VERIFY_MESSAGE(msg, "no weights");

        QString noTokenizer = makeFolder({{"a", "F32", {1}}});
        QFile::remove(noTokenizer + "/tokenizer.model");
        msg = errorOf([&] { pkv::ModelFolder::open(str(noTokenizer)); });
        VERIFY_MESSAGE(msg, noTokenizer);
        VERIFY_MESSAGE(msg, "tokenizer.model");

        QString noConfig = makeFolder({{"a", "F32", {1}}});
        QFile::remove(noConfig + "/config.json");
        msg = errorOf([&] { pkv::ModelFolder::open(str(noConfig)); });
        VERIFY_MESSAGE(msg, noConfig + " is not a model folder: config.json is missing");

        QString badConfig = makeFolder({{"a", "F32", {1}}});
        writeFile(badConfig + "/config.json", R"({"model_type":"bert"})");
        msg = errorOf([&] { pkv::ModelFolder::open(str(badConfig)); });
        VERIFY_MESSAGE(msg, badConfig + "/config.json");
        VERIFY_MESSAGE(msg, "\"bert\"");

        msg = errorOf([&] { pkv::ModelFolder::open(str(tmp_.filePath("nowhere"))); });
        VERIFY_MESSAGE(msg, tmp_.filePath("nowhere"));
        VERIFY_MESSAGE(msg, "does not exist");

        msg = errorOf([&] { pkv::ModelFolder::open(str(dir + "/config.json")); });
        VERIFY_MESSAGE(msg, "is not a folder");

        QString badWeights = makeFolder();
        writeFile(badWeights + "/model.safetensors", "short");
        msg = errorOf([&] { pkv::ModelFolder::open(str(badWeights)); });
        VERIFY_MESSAGE(msg, badWeights + "/model.safetensors");
        VERIFY_MESSAGE(msg, "truncated");
    }
};

QTEST_APPLESS_MAIN(TestModelFolder)
#include "test_model_folder.moc"
