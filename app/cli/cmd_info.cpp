// prefixkv info: what a model folder holds and what running it will cost, without loading it.
#include <QCommandLineParser>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/cli/cli_common.h"
#include "engine/common/error.h"
#include "engine/common/openblas_core.h"
#include "engine/backend/registry.h"
#include "engine/io/model_folder.h"
#include "engine/model/memory_estimate.h"

namespace pkvcli {
namespace {

// 13.48 GiB, 536.2 KiB: the unit that keeps the number readable.
std::string human(double bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 4) {
        bytes /= 1024.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
    return buf;
}

}  // namespace

int runInfo(const QStringList& args) {
    QCommandLineParser p;
    p.setApplicationDescription("Summarise a llava-hf model folder and estimate the memory a run needs.");
    p.addHelpOption();
    p.addOptions({{"model", "llava-hf model folder (default: the embedded demo model).", "dir"},
                  {"device", "auto, cpu or cuda: the device a run would use.", "name", "auto"},
                  kvDtypeOptionSpec(),
                  {"json", "Print one JSON object."}});
    if (const auto exit = parseArguments(p, args)) return *exit;
    return runGuarded([&] {
        bool demo = false;
        const std::string dir = modelPathOrDemo(p.value("model"), &demo);
        auto folder = pkv::ModelFolder::open(dir);
        const pkv::LlavaConfig& c = folder->config();
        const pkv::LlamaConfig& t = c.text;
        const pkv::ClipVisionConfig& v = c.vision;

        const double weights = double(folder->weightBytes());
        // Which backend a run would get, and why (a missing GPU is the question users ask most).
        const pkv::BackendChoice backend = pkv::chooseBackend(parseDevice(p.value("device")), int64_t(weights));
        const std::string device = backend.reason;
        // The cache in the dtype a run would use.
        const pkv::DType kvDtype =
            pkv::resolveKvDtype(kvDtypeOption(p), pkv::decoderWeightDtype(*folder), *backend.backend);
        const pkv::MemoryEstimate memory = pkv::estimateMemory(*folder, kvDtype);
        const double kvPerToken = memory.kvBytesPerToken;

        nlohmann::json j = {
            {"model", demo ? "demo" : dir},
            {"text", {{"layers", t.numLayers}, {"hidden", t.hiddenSize}, {"intermediate", t.intermediateSize},
                      {"heads", t.numHeads}, {"kv_heads", t.numKvHeads}, {"head_dim", t.headDim},
                      {"vocab", t.vocabSize}, {"context", t.maxPositions}, {"rope_theta", t.ropeTheta}}},
            {"vision", {{"layers", v.numLayers}, {"layers_run", c.visionLayersToRun()}, {"hidden", v.hiddenSize},
                        {"heads", v.numHeads}, {"image_size", v.imageSize}, {"patch_size", v.patchSize}}},
            {"image_tokens", c.imageTokens()},
            {"device", device},
            {"openblas_core", pkv::openBlasCore()},
            {"openblas", pkv::openBlasCoreDescription()},
            {"weight_bytes", int64_t(weights)},
            {"kv_dtype", pkv::dtypeName(kvDtype)},
            {"kv_bytes_per_token", int64_t(kvPerToken)},
            {"estimated_bytes_typical_run", int64_t(memory.typicalRunBytes)},
            {"estimated_bytes_full_context", int64_t(memory.fullContextBytes)},
        };
        if (p.isSet("json")) {
            std::printf("%s\n", j.dump(1).c_str());
            return Ok;
        }
        std::printf("Model        %s%s\n", demo ? "embedded demo model" : dir.c_str(),
                    demo ? " (tiny random weights)" : "");
        std::printf("Language     LLaMA, %d layers, hidden %d, %d heads (%d KV heads%s), vocab %d, context %d\n",
                    t.numLayers, t.hiddenSize, t.numHeads, t.numKvHeads, t.numKvHeads < t.numHeads ? ", GQA" : "",
                    t.vocabSize, t.maxPositions);
        std::printf("Vision       CLIP ViT, %d of %d layers used, hidden %d, %dx%d px, patch %d -> %d image tokens\n",
                    c.visionLayersToRun(), v.numLayers, v.hiddenSize, v.imageSize, v.imageSize, v.patchSize,
                    c.imageTokens());
        std::printf("Weights      %s on disk, mapped from the files by default (--weights memory reads them into RAM)\n",
                    human(weights).c_str());
        std::printf("Device       %s\n", device.c_str());
        std::printf("BLAS         %s\n", pkv::openBlasCoreDescription().c_str());
        std::printf("KV cache     %s per token (%s), %s at the full context\n", human(kvPerToken).c_str(),
                    pkv::dtypeName(kvDtype), human(kvPerToken * t.maxPositions).c_str());
        std::printf("Estimate     %s for a %lld-token prompt and 512 new tokens\n", human(memory.typicalRunBytes).c_str(),
                    (long long)memory.typicalPromptTokens);
        return Ok;
    });
}

}  // namespace pkvcli
