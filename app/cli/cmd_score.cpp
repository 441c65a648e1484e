// prefixkv score: the evaluation's two metrics on their own.
//   score rouge --hyp FILE --ref FILE   ROUGE-L per pair and the mean (reference-exact, textbook)
//   score ppl --model DIR --dataset FILE --images DIR [--method M --keep B]   pooled teacher-forced PPL
#include <QCommandLineParser>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/cli/cli_common.h"
#include "engine/common/error.h"
#include "engine/eval/dataset.h"
#include "engine/eval/perplexity.h"
#include "engine/eval/policy_grid.h"
#include "engine/eval/rouge.h"

namespace pkvcli {
namespace {

std::atomic<bool> gCancel{false};
void onInterrupt(int) { gCancel.store(true); }

// A JSON list of strings, or else one text per line.
std::vector<std::string> readTexts(const QString& path) {
    std::ifstream in(path.toStdString(), std::ios::binary);
    if (!in) throw pkv::Error("Cannot read " + path.toStdString() + ".");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    const size_t first = text.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && text[first] == '[') {
        try {
            return nlohmann::json::parse(text).get<std::vector<std::string>>();
        } catch (const nlohmann::json::exception&) {
            throw pkv::Error(path.toStdString() + " starts like JSON but is not a list of strings.");
        }
    }
    std::vector<std::string> lines;
    std::istringstream ls(text);
    for (std::string line; std::getline(ls, line);) lines.push_back(line);
    return lines;
}

int scoreRouge(const QStringList& args) {
    QCommandLineParser p;
    p.setApplicationDescription(
        "ROUGE-L F of each hypothesis against its reference: as the rouge 1.0.1 package computes it (what the "
        "PrefixKV reference reports) and textbook ROUGE-L. Files hold one text per line, or a JSON list of strings.");
    p.addHelpOption();
    p.addOptions({{"hyp", "Hypotheses.", "file"}, {"ref", "References, in the same order.", "file"}});
    if (const auto exit = parseArguments(p, args)) return *exit;
    return runGuarded([&] {
        if (!p.isSet("hyp") || !p.isSet("ref")) throw pkv::Error("Give both --hyp FILE and --ref FILE.");
        const std::vector<std::string> hyps = readTexts(p.value("hyp")), refs = readTexts(p.value("ref"));
        if (hyps.size() != refs.size())
            throw pkv::Error("--hyp has " + std::to_string(hyps.size()) + " texts but --ref has " + std::to_string(refs.size()) + ".");
        if (hyps.empty()) throw pkv::Error("There is nothing to score: the files hold no texts.");
        double sum = 0, sumTextbook = 0;
        std::printf("index\trouge_l\trouge_l_textbook\n");
        for (size_t i = 0; i < hyps.size(); ++i) {
            double f = 0;
            try {
                f = pkv::rougeLReference(hyps[i], refs[i]).f;
            } catch (const pkv::Error& e) {
                std::fprintf(stderr, "text %zu: %s Scored 0.\n", i, e.what());
            }
            const double t = pkv::rougeLTextbook(hyps[i], refs[i]).f;
            sum += f;
            sumTextbook += t;
            std::printf("%zu\t%.17g\t%.17g\n", i, f, t);
        }
        std::printf("mean\t%.17g\t%.17g\n", sum / double(hyps.size()), sumTextbook / double(hyps.size()));
        return Ok;
    });
}

int scorePpl(const QStringList& args) {
    QCommandLineParser p;
    p.setApplicationDescription(
        "Perplexity of a dataset's reference answers, teacher-forced, with a KV-cache policy applied after the "
        "prefill and after every step, pooled over all tokens of all samples (spec 4.2).");
    p.addHelpOption();
    p.addOptions({
        {"model", "llava-hf model folder (default: the embedded demo model).", "dir"},
        {"dataset", "MM-Vet or LLaVA-Description JSON file.", "file"},
        {"images", "Folder the dataset's image names are relative to.", "dir"},
        {"method", "KV-cache policy.", "name", "full"},
        {"keep", "KV kept, percent.", "percent", "100"},
        {"variant", "h2o / elastic: faithful or fixed.", "name", "faithful"},
        {"profile", "A prefixkv profile (conf) file.", "file"},
        {"samples", "Score the first N items (0 = all).", "n", "0"},
        {"position-mode", "true (absolute) or faithful (layer-0 cache length).", "mode", "true"},
        {"device", "auto, cpu or cuda.", "name", "auto"},
    });
    p.addOption(kvDtypeOptionSpec());
    p.addOption(weightsOptionSpec());
    if (const auto exit = parseArguments(p, args)) return *exit;
    return runGuarded([&] {
        if (!p.isSet("dataset") || !p.isSet("images")) throw pkv::Error("Give --dataset FILE and --images DIR.");
        const std::vector<pkv::PolicySpec> specs =
            pkv::policyGrid({p.value("method").toStdString()}, pkv::parseKeepList(p.value("keep").toStdString()),
                            faithfulOption(p), p.value("profile").toStdString());
        if (specs.size() != 1) throw pkv::Error("score ppl takes one --keep budget.");
        const pkv::PositionMode positions = positionModeOption(p);
        const pkv::Dataset data = pkv::loadDataset(p.value("dataset").toStdString(), p.value("images").toStdString());
        const int limit = intOption(p, "samples", 0, 1 << 30);
        const size_t n = limit > 0 ? std::min(size_t(limit), data.samples.size()) : data.samples.size();
        std::signal(SIGINT, onInterrupt);
        bool demo = false;
        pkv::LoadOptions load;
        load.device = parseDevice(p.value("device"));
        load.kvDtype = kvDtypeOption(p);
        load.weights = weightsOption(p);
        load.cancel = &gCancel;
        auto model = pkv::LlavaModel::load(modelPathOrDemo(p.value("model"), &demo), load);
        pkv::PerplexityPool pool;
        std::printf("index\tid\ttokens\tppl\n");
        for (size_t i = 0; i < n; ++i) {
            pkv::Session s(model);
            s.setPositionMode(positions);
            s.setPolicy(pkv::makePolicy(specs.front(), model->config().text.numLayers));
            const pkv::RgbImage image = pkv::decodeImageFile(data.imagePath(i));
            s.prefill(data.samples[i].prompt, &image);
            const std::vector<double> nll =
                pkv::teacherForcedNll(s, model->tokenizer().encode(data.samples[i].answer), &gCancel);
            pkv::PerplexityPool one;
            one.add(nll);
            pool.add(nll);
            std::printf("%zu\t%s\t%lld\t%.6f\n", i, data.samples[i].id.c_str(), (long long)one.tokens(), one.perplexity());
            std::fflush(stdout);
        }
        std::printf("pooled\t%s\t%lld\t%.6f\n", pkv::describePolicy(specs.front()).c_str(), (long long)pool.tokens(),
                    pool.perplexity());
        return Ok;
    });
}

}  // namespace

int runScore(const QStringList& args) {
    if (args.size() > 1 && args[1] == "rouge") {
        QStringList rest = args;
        rest.removeAt(1);
        return scoreRouge(rest);
    }
    if (args.size() > 1 && args[1] == "ppl") {
        QStringList rest = args;
        rest.removeAt(1);
        return scorePpl(rest);
    }
    std::fprintf(stderr, "usage: prefixkv score rouge --hyp FILE --ref FILE\n"
                         "       prefixkv score ppl --model DIR --dataset FILE --images DIR [--method M --keep B]\n");
    return Usage;
}

}  // namespace pkvcli
