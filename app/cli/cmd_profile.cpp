// prefixkv profile: PrefixKV's offline step (spec 2.3). The online budget search runs on each
// calibration sample; the per-layer mean of the evicted fractions is written as a conf file in
// the reference's format, which `--method prefixkv --profile FILE` then uses.
#include <QCommandLineParser>
#include <atomic>
#include <csignal>
#include <cstdio>

#include "app/cli/cli_common.h"
#include "engine/common/error.h"
#include "engine/eval/policy_grid.h"
#include "engine/eval/profile_run.h"
#include "engine/kv/profile.h"

namespace pkvcli {
namespace {

std::atomic<bool> gCancel{false};
void onInterrupt(int) { gCancel.store(true); }

}  // namespace

int runProfile(const QStringList& args) {
    QCommandLineParser p;
    p.setApplicationDescription(
        "Estimate PrefixKV's per-layer budgets offline: run the online search on calibration samples and write the "
        "per-layer mean of the evicted fractions (a JSON array, the reference's conf format).");
    p.addHelpOption();
    p.addOptions({
        {"model", "llava-hf model folder (default: the embedded demo model).", "dir"},
        {"dataset", "Calibration set: MM-Vet or LLaVA-Description JSON file.", "file"},
        {"images", "Folder the dataset's image names are relative to.", "dir"},
        {"keep", "KV kept, percent (the conf's ratio is 1 - keep/100).", "percent", "20"},
        {"samples", "Use the first N items (0 = all).", "n", "0"},
        {"out", "Conf file to write.", "file"},
        {"samples-log", "Also append each sample's fractions to this .jsonl (the reference's samples/ file).", "file"},
        {"image-mode", "pad or crop.", "mode", "pad"},
        {"device", "auto, cpu or cuda.", "name", "auto"},
    });
    p.addOption(kvDtypeOptionSpec());
    p.addOption(weightsOptionSpec());
    if (const auto exit = parseArguments(p, args)) return *exit;
    return runGuarded([&] {
        requireOptions(p, {"dataset", "images", "out"});
        const std::vector<double> keep = pkv::parseKeepList(p.value("keep").toStdString());
        if (keep.size() != 1) throw pkv::Error("profile takes one --keep budget; run it once per budget.");
        const pkv::ImageMode imageMode = imageModeOption(p);
        const pkv::Dataset data = pkv::loadDataset(p.value("dataset").toStdString(), p.value("images").toStdString());
        std::signal(SIGINT, onInterrupt);
        bool demo = false;
        pkv::LoadOptions load;
        load.device = parseDevice(p.value("device"));
        load.kvDtype = kvDtypeOption(p);
        load.weights = weightsOption(p);
        load.cancel = &gCancel;
        auto model = pkv::LlavaModel::load(modelPathOrDemo(p.value("model"), &demo), load);
        const auto rows = pkv::profileSamples(
            model, data, pkv::Budget::keptPercent(keep.front()), intOption(p, "samples", 0, 1 << 30),
            imageMode,
            [](int i, int n) { std::fprintf(stderr, "profiling sample %d/%d\n", i + 1, n); }, &gCancel);
        if (p.isSet("samples-log"))
            for (const auto& row : rows) pkv::appendProfileSample(p.value("samples-log").toStdString(), row);
        const std::vector<double> conf = pkv::aggregateProfile(rows);
        pkv::writeProfile(p.value("out").toStdString(), conf);
        double mean = 0;
        for (double f : conf) mean += f;
        std::fprintf(stderr, "wrote %s: %zu layers, mean evicted fraction %.4f over %zu samples\n",
                     qPrintable(p.value("out")), conf.size(), mean / double(conf.size()), rows.size());
        return Ok;
    });
}

}  // namespace pkvcli
