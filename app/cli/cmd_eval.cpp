// prefixkv eval: the batch evaluation (PPL and ROUGE-L over a dataset, methods x budgets),
// resumable, shardable; and `prefixkv eval merge` to join shard folders.
#include <QCommandLineParser>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <unistd.h>

#include "app/cli/cli_common.h"
#include "engine/common/error.h"
#include "engine/eval/policy_grid.h"
#include "engine/eval/runner.h"

namespace pkvcli {
namespace {

std::atomic<bool> gCancel{false};

// Ctrl+C stops at the next token; what finished is on disk and a rerun resumes.
void onInterrupt(int) { gCancel.store(true); }

std::string clock(double seconds) {
    const long s = long(seconds + 0.5);
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%02ld:%02ld", s / 60, s % 60);
    return buf;
}

void printProgress(const pkv::EvalProgress& p) {
    static const bool tty = isatty(2);
    std::fprintf(stderr, "%s[%d/%d done] sample %d/%d, %s | %s elapsed, ETA %s%s", tty ? "\r\033[K" : "", p.done, p.total,
                 p.sample + 1, p.samples, p.stage.c_str(), clock(p.elapsedSeconds).c_str(),
                 p.etaSeconds < 0 ? "--:--" : clock(p.etaSeconds).c_str(), tty ? "" : "\n");
}

void parseShard(const QString& text, int* k, int* n) {
    const QStringList parts = text.split('/');
    bool ok1 = false, ok2 = false;
    if (parts.size() == 2) {
        *k = parts[0].toInt(&ok1);
        *n = parts[1].toInt(&ok2);
    }
    if (!ok1 || !ok2 || *n < 1 || *k < 0 || *k >= *n)
        throw pkv::Error("--shard must be K/N with 0 <= K < N, e.g. 0/4, not \"" + text.toStdString() + "\".");
}

int runMerge(const QStringList& args) {
    QCommandLineParser p;
    p.setApplicationDescription("Join the folders of a sharded evaluation into one, with its summary.");
    p.addHelpOption();
    p.addOption({"out", "Folder to write the merged results to.", "dir"});
    p.addPositionalArgument("shards", "Shard folders written by 'prefixkv eval --shard K/N'.", "SHARD_DIR...");
    if (const auto exit = parseArguments(p, args)) return *exit;
    return runGuarded([&] {
        if (!p.isSet("out")) throw pkv::Error("Give the folder to merge into with --out DIR.");
        std::vector<std::string> shards;
        for (const QString& s : p.positionalArguments()) shards.push_back(s.toStdString());
        pkv::mergeEvaluations(shards, p.value("out").toStdString());
        std::fprintf(stderr, "merged %zu folders into %s (summary.json, summary.csv)\n", shards.size(),
                     qPrintable(p.value("out")));
        return Ok;
    });
}

}  // namespace

int runEval(const QStringList& args) {
    if (args.size() > 1 && args[1] == "merge") {
        QStringList rest = args;
        rest.removeAt(1);
        return runMerge(rest);
    }
    QCommandLineParser p;
    p.setApplicationDescription(
        "Evaluate KV-cache compression over a dataset as the PrefixKV reference does: PPL of the dataset's answers "
        "(teacher-forced) and ROUGE-L of compressed generations against the full-cache generation. Results are "
        "appended to OUT/results.jsonl; rerunning the same command resumes. 'prefixkv eval merge --out DIR SHARDS...' "
        "joins shard folders.");
    p.addHelpOption();
    p.addOptions({
        {"model", "llava-hf model folder (default: the embedded demo model).", "dir"},
        {"dataset", "MM-Vet (list or original keyed JSON) or LLaVA-Description JSON file.", "file"},
        {"images", "Folder the dataset's image names are relative to.", "dir"},
        {"methods", "Comma-separated methods: full, prefixkv, uniform, streaming, h2o, elastic, ...", "list", "prefixkv"},
        {"keep", "Comma-separated KV budgets, percent kept.", "list", "20"},
        {"variant", "h2o / elastic: faithful (the reference's argsort bug) or fixed.", "name", "faithful"},
        {"profile", "A prefixkv profile (conf) file; prefixkv then runs offline with it.", "file"},
        {"samples", "Evaluate the first N items (0 = all).", "n", "0"},
        {"out", "Output folder (created; reused to resume).", "dir"},
        {"shard", "Evaluate only items with index % N == K.", "K/N", "0/1"},
        {"max-new-tokens", "Most tokens per generation (the reference uses 1024).", "n", "1024"},
        {"position-mode", "RoPE position of new tokens: true (absolute) or faithful (layer-0 cache length).", "mode",
         "true"},
        {"image-mode", "pad (LLaVA-1.5, the reference) or crop.", "mode", "pad"},
        {"device", "auto, cpu or cuda.", "name", "auto"},
    });
    p.addOption(kvDtypeOptionSpec());
    p.addOption(weightsOptionSpec());
    if (const auto exit = parseArguments(p, args)) return *exit;
    return runGuarded([&] {
        requireOptions(p, {"dataset", "images", "out"});
        pkv::EvalOptions o;
        o.policies = pkv::policyGrid(pkv::splitCommaList(p.value("methods").toStdString()),
                                     pkv::parseKeepList(p.value("keep").toStdString()), faithfulOption(p),
                                     p.value("profile").toStdString());
        o.maxSamples = intOption(p, "samples", 0, 1 << 30);
        o.maxNewTokens = intOption(p, "max-new-tokens", 1, 1 << 20);
        parseShard(p.value("shard"), &o.shardIndex, &o.shardCount);
        o.positionMode = positionModeOption(p);
        o.imageMode = imageModeOption(p);
        o.onProgress = printProgress;
        o.cancel = &gCancel;

        const pkv::Dataset data = pkv::loadDataset(p.value("dataset").toStdString(), p.value("images").toStdString());
        std::signal(SIGINT, onInterrupt);
        bool demo = false;
        const std::string dir = modelPathOrDemo(p.value("model"), &demo);
        pkv::LoadOptions load;
        load.device = parseDevice(p.value("device"));
        load.kvDtype = kvDtypeOption(p);
        load.weights = weightsOption(p);
        load.cancel = &gCancel;
        auto model = pkv::LlavaModel::load(dir, load);
        if (demo) std::fprintf(stderr, "[demo model: tiny random weights, the numbers are meaningless; use --model DIR]\n");
        std::fprintf(stderr, "%s: %zu items (%s), %zu policies, on %s\n", qPrintable(p.value("dataset")),
                     data.samples.size(), pkv::datasetKindName(data.kind), o.policies.size(),
                     model->backend().name().c_str());

        const pkv::EvalReport r = pkv::runEvaluation(model, data, p.value("out").toStdString(), o);
        std::fprintf(stderr, "\n%d results written, %d already there; %d reference generations made, %d reused\n",
                     r.resultsWritten, r.resultsSkipped, r.referencesGenerated, r.referencesReused);
        if (r.cancelled) {
            std::fprintf(stderr, "prefixkv: interrupted; run the same command again to resume.\n");
            return Interrupted;
        }
        std::fprintf(stderr, "summary: %s/summary.json, %s/summary.csv\n", qPrintable(p.value("out")), qPrintable(p.value("out")));
        return Ok;
    });
}

}  // namespace pkvcli
