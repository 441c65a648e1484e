// prefixkv generate: one answer, streamed to stdout, or one JSON object with --json.
#include <QCommandLineParser>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/cli/cli_common.h"
#include "engine/common/error.h"
#include "engine/kv/policy_factory.h"
#include "engine/session.h"

namespace pkvcli {
namespace {

std::atomic<bool> gLoadCancel{false};
std::atomic<pkv::Session*> gSession{nullptr};

// Ctrl+C stops at the next token; the answer so far is still printed.
void onInterrupt(int) {
    gLoadCancel.store(true);
    if (pkv::Session* s = gSession.load()) s->requestCancel();
}

pkv::ChatTemplate parseTemplate(const QString& t) {
    if (t == "llava_v1") return pkv::ChatTemplate::LlavaV1;
    if (t == "llava_hf") return pkv::ChatTemplate::LlavaHf;
    if (t == "raw") return pkv::ChatTemplate::Raw;
    throw pkv::Error("--template must be llava_v1, llava_hf or raw, not \"" + t.toStdString() + "\".");
}

// --keep 20% / --keep 20 / --budget-tokens 128, with --method and its options, as a PolicySpec.
pkv::PolicySpec policyFromOptions(const QCommandLineParser& p) {
    pkv::PolicySpec spec;
    spec.method = p.value("method").toStdString();
    if (p.isSet("keep") && p.isSet("budget-tokens"))
        throw pkv::Error("Give either --keep or --budget-tokens, not both.");
    if (p.isSet("budget-tokens")) {
        spec.budget = pkv::Budget::keptTokens(intOption(p, "budget-tokens", 1, 1 << 30));
    } else {
        QString keep = p.value("keep").trimmed();
        if (keep.endsWith('%')) keep.chop(1);
        bool ok = false;
        const double b = keep.toDouble(&ok);
        if (!ok) throw pkv::Error("--keep must be a percentage such as 20% or 20, not \"" + p.value("keep").toStdString() + "\".");
        spec.budget = pkv::Budget::keptPercent(b);
    }
    spec.faithful = faithfulOption(p);
    spec.profilePath = p.value("profile").toStdString();
    return spec;
}

nlohmann::json statsJson(const pkv::SessionStats& s) {
    return {{"prompt_tokens", s.promptTokens},
            {"image_tokens", s.imageTokens},
            {"generated_tokens", s.generatedTokens},
            {"image_encode_ms", s.imageEncodeMs},
            {"prefill_ms", s.prefillMs},
            {"first_token_ms", s.firstTokenMs},
            {"decode_ms", s.decodeMs},
            {"decode_tokens_per_second", s.decodeTokensPerSecond()},
            {"layer_lengths", s.layerLengths},
            {"kv_bytes", s.kvBytes},
            {"kv_bytes_per_entry", s.kvBytesPerEntry}};
}

}  // namespace

int runGenerate(const QStringList& args) {
    QCommandLineParser p;
    p.setApplicationDescription("Answer an instruction about an image with a LLaVA model, streaming the answer.");
    p.addHelpOption();
    p.addOptions({
        {"model", "llava-hf model folder (default: the embedded demo model).", "dir"},
        {"image", "Image file (JPEG, PNG, BMP, WebP, TIFF, ...).", "file"},
        {"prompt", "The instruction.", "text"},
        {"template", "Chat template: llava_v1 (the reference's), llava_hf, raw.", "name", "llava_v1"},
        {"image-mode", "pad (LLaVA-1.5: pad to square) or crop (llava-hf processor).", "mode", "pad"},
        {"image-after", "Put the image after the instruction (MM-Vet style) instead of before."},
        {"max-new-tokens", "Most tokens to generate.", "n", "256"},
        {"temperature", "0 for greedy decoding, else the sampling temperature.", "t", "0"},
        {"top-p", "Nucleus sampling mass.", "p", "1"},
        {"seed", "Sampling seed.", "n", "0"},
        {"ignore-eos", "Keep generating past the end-of-sequence token."},
        {"device", "auto, cpu or cuda.", "name", "auto"},
        {"method", "KV-cache policy: full, prefixkv, uniform, streaming, h2o, elastic, vlcache, snapkv, pyramidkv.",
         "name", "full"},
        {"keep", "KV kept, the paper's budget, e.g. 20% (default 100%).", "percent", "100"},
        {"budget-tokens", "Keep on average this many tokens per layer instead of a percentage.", "n"},
        {"variant", "h2o / elastic: faithful (the reference's argsort bug) or fixed.", "name", "faithful"},
        {"profile", "prefixkv: per-layer budgets from a profile file (reference format) instead of the online search.",
         "file"},
        {"position-mode", "RoPE position of new tokens: true (absolute) or faithful (layer-0 cache length, "
         "as the reference).", "mode", "true"},
        {"json", "Print one JSON object (text, token ids, per-layer cache lengths, timings) instead of streaming."},
    });
    p.addOption(kvDtypeOptionSpec());
    p.addOption(weightsOptionSpec());
    if (const auto exit = parseArguments(p, args)) return *exit;
    const bool json = p.isSet("json");
    return runGuarded([&] {
        const QString instruction = p.value("prompt");
        if (instruction.trimmed().isEmpty())
            throw pkv::Error("The prompt is empty: give an instruction with --prompt \"...\".");
        pkv::GenerateOptions gen;
        gen.maxNewTokens = intOption(p, "max-new-tokens", 1, 1 << 20);
        gen.temperature = float(doubleOption(p, "temperature", 0, 100));
        gen.topP = float(doubleOption(p, "top-p", 0, 1));
        gen.seed = uint64_t(intOption(p, "seed", 0, 2147483647));
        gen.stopAtEos = !p.isSet("ignore-eos");
        const pkv::ChatTemplate tmpl = parseTemplate(p.value("template"));
        const pkv::ImageMode mode = imageModeOption(p);
        const pkv::PolicySpec policy = policyFromOptions(p);
        const pkv::PositionMode positions = positionModeOption(p);

        std::signal(SIGINT, onInterrupt);
        bool demo = false;
        const std::string dir = modelPathOrDemo(p.value("model"), &demo);
        pkv::RgbImage image;
        const bool withImage = p.isSet("image");
        if (withImage) image = pkv::decodeImageFile(p.value("image").toStdString());

        pkv::LoadOptions load;
        load.device = parseDevice(p.value("device"));
        load.kvDtype = kvDtypeOption(p);
        load.weights = weightsOption(p);
        load.cancel = &gLoadCancel;
        auto model = pkv::LlavaModel::load(dir, load);
        if (demo && !json)
            std::fprintf(stderr, "[demo model: tiny random weights, the answer is meaningless; use --model DIR]\n");
        if (!model->weightsNote().empty() && !json) std::fprintf(stderr, "[%s]\n", model->weightsNote().c_str());

        const std::string prompt = pkv::applyChatTemplate(
            tmpl, instruction.toStdString(), withImage,
            p.isSet("image-after") ? pkv::ImagePlacement::After : pkv::ImagePlacement::Before);
        pkv::Session session(model);
        session.setPolicy(pkv::makePolicy(policy, model->config().text.numLayers));
        session.setPositionMode(positions);
        gSession.store(&session);
        session.prefill(prompt, withImage ? &image : nullptr, mode);
        const pkv::StopReason reason = session.generate(gen, [&](int, const std::string& text) {
            if (!json) {
                std::fwrite(text.data(), 1, text.size(), stdout);
                std::fflush(stdout);
            }
        });
        gSession.store(nullptr);
        const pkv::SessionStats st = session.stats();
        if (json) {
            nlohmann::json out = {{"model", demo ? "demo" : dir},
                                  {"device", model->backend().name()},
                                  {"device_reason", model->deviceReason()},
                                  {"weights", model->folder().weightsInMemory() ? "memory" : "mapped"},
                                  {"weights_note", model->weightsNote()},
                                  {"kv_dtype", pkv::dtypeName(model->kvDtype())},
                                  {"policy", pkv::describePolicy(policy)},
                                  {"prompt", prompt},
                                  {"prompt_ids", session.prompt().ids},
                                  {"text", session.generatedText()},
                                  {"token_ids", session.generated()},
                                  {"stop_reason", pkv::stopReasonName(reason)},
                                  {"stats", statsJson(st)}};
            std::printf("%s\n", out.dump(1).c_str());
        } else {
            // The answer's line ends before the summary on stderr starts, also when both go to one
            // pipe (stdout is block-buffered there, stderr is not).
            std::printf("\n");
            std::fflush(stdout);
            std::fprintf(stderr,
                         "[%s | %s | image %.0f ms | prefill %lld tokens in %.0f ms | decode %.1f tok/s | "
                         "KV cache %.1f MiB in %s | stop: %s]\n",
                         model->backend().name().c_str(), pkv::describePolicy(policy).c_str(), st.imageEncodeMs,
                         (long long)st.promptTokens, st.prefillMs, st.decodeTokensPerSecond(),
                         double(st.kvBytes) / (1 << 20), pkv::dtypeName(model->kvDtype()), pkv::stopReasonName(reason));
        }
        return reason == pkv::StopReason::Cancelled ? Interrupted : Ok;
    });
}

}  // namespace pkvcli
