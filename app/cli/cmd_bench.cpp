// prefixkv bench: how fast this machine runs a model, next to what the machine allows, measured
// in the same run. Decode reads every decoder weight once per token, so its bound is the measured
// memory bandwidth over those bytes; prefill is matrix multiplication, so it is compared with the
// measured sgemm rate at the same shapes; peak RSS is compared with the weights on disk.
#include <sys/resource.h>

#include <QCommandLineParser>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "app/cli/cli_common.h"
#include "bench/bench_limits.h"
#include "bench/decoder_cost.h"
#include "engine/common/error.h"
#include "engine/common/openblas_core.h"
#include "engine/kv/policy_factory.h"
#include "engine/session.h"

namespace pkvcli {
namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// Causal prefill of n tokens: every projection once per token, attention scores and the weighted
// sum over the i + 1 visible keys of token i, and the lm_head for the last token only.
double prefillFlops(const pkv::LlamaConfig& t, const pkvbench::DecoderCost& c, int64_t n) {
    const double pairs = double(n) * double(n + 1) / 2;
    const double attention = 4.0 * t.numLayers * t.numHeads * t.headDim * pairs;
    return 2.0 * c.layerMatmulParams * double(n) + attention + 2.0 * t.hiddenSize * double(t.vocabSize);
}

// Brings the model's weight files into memory and faults in every page of their mappings, so the
// timings measure compute on resident weights, not the disk or first-touch page faults. Reading
// each file sequentially first fills the page cache at disk speed; touching pages one by one
// through the mapping would read it 4 KiB at a time.
void prefaultWeights(const std::string& dir) {
    const std::string prefix = std::filesystem::weakly_canonical(dir).string() + "/";
    std::ifstream maps("/proc/self/maps");
    std::string line;
    std::vector<char> buffer(16 << 20);
    volatile unsigned char sink = 0;
    while (std::getline(maps, line)) {
        std::istringstream fields(line);
        std::string range, perms, offset, device, inode, path;
        fields >> range >> perms >> offset >> device >> inode >> path;
        if (path.rfind(prefix, 0) != 0 || path.find(".safetensors") == std::string::npos) continue;
        std::ifstream file(path, std::ios::binary);
        while (file.read(buffer.data(), std::streamsize(buffer.size()))) continue;
        const size_t dash = range.find('-');
        const auto* begin = reinterpret_cast<const unsigned char*>(std::stoull(range.substr(0, dash), nullptr, 16));
        const auto* end = reinterpret_cast<const unsigned char*>(std::stoull(range.substr(dash + 1), nullptr, 16));
        for (const unsigned char* p = begin; p < end; p += 4096) sink = sink + *p;
    }
}

// "<image>\n" and filler words until the prompt, image tokens included, reaches `target` tokens.
std::string promptOfLength(const pkv::LlavaModel& model, int64_t target) {
    const pkv::LlavaConfig& cfg = model.config();
    auto length = [&](const std::string& prompt) {
        const pkv::PromptTokens t = pkv::tokenizePrompt(model.tokenizer(), prompt, cfg.imageTokenIndex);
        return int64_t(t.ids.size()) - 1 + cfg.imageTokens();
    };
    std::string prompt = "<image>\n";
    if (length(prompt) > target)
        throw pkv::Error("--prompt-tokens must be at least " + std::to_string(length(prompt)) +
                         ": the image alone takes " + std::to_string(cfg.imageTokens()) + " tokens.");
    while (length(prompt + " the") <= target) prompt += " the";
    return prompt;
}

// A smooth colour gradient: the benchmark times the arithmetic, which does not depend on content.
pkv::RgbImage syntheticImage(int width, int height) {
    pkv::RgbImage img;
    img.width = width;
    img.height = height;
    img.pixels.resize(size_t(width) * size_t(height) * 3);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            uint8_t* p = &img.pixels[(size_t(y) * size_t(width) + size_t(x)) * 3];
            p[0] = uint8_t(255 * x / width);
            p[1] = uint8_t(255 * y / height);
            p[2] = uint8_t((x + y) & 0xff);
        }
    return img;
}

// One table of op times, largest first, with each op's share of the phase's wall time.
void printProfile(const char* phase, const pkv::OpProfile& profile, double phaseMs) {
    std::vector<std::pair<std::string, pkv::OpTime>> rows(profile.begin(), profile.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
    double total = 0;
    for (const auto& r : rows) total += r.second.ms;
    std::printf("Ops, %s: %.0f ms in ops of %.0f ms wall\n", phase, total, phaseMs);
    for (const auto& [op, t] : rows)
        std::printf("    %-22s %7lld calls %9.1f ms %5.1f%% %9.3f ms/call\n", op.c_str(), (long long)t.calls, t.ms,
                    100.0 * t.ms / phaseMs, t.ms / double(t.calls));
}

nlohmann::json profileJson(const pkv::OpProfile& profile) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [op, t] : profile) j[op] = {{"calls", t.calls}, {"ms", t.ms}};
    return j;
}

// Decode steps each paired with a triad measured just before it, so a step that ran while the
// machine's bandwidth was low is compared with that low bandwidth and not the run's best.
// Returns the median of the per-step ratios (step bytes / step time) / triad. Each step is also
// held to a read-only probe measured beside its triad: decode only reads, and on a shared machine
// reads alone can fall short of the triad (whose stores do not wait like loads), so this second
// ratio tells how much of a shortfall is the kernels' and how much the machine's.
struct PairedDecode {
    int steps = 0;
    double medianRatio = 0;
    double medianTriadGBps = 0;
    double medianStepGBps = 0;
    double medianRatioToRead = 0;
    double medianReadGBps = 0;
};

PairedDecode pairedDecode(pkv::Session& s, int steps, double weightBytesPerToken) {
    pkvbench::TriadProbe probe;
    std::vector<double> ratios, triads, rates, readRatios, reads;
    for (int i = 0; i < steps; ++i) {
        const double triad = probe.gbps(), read = probe.readGBps();
        const auto& logits = s.logits();
        const int next = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
        const auto t0 = Clock::now();
        s.feed(next);
        const double rate = weightBytesPerToken / (msSince(t0) / 1000.0) / 1e9;
        ratios.push_back(rate / triad);
        triads.push_back(triad);
        rates.push_back(rate);
        readRatios.push_back(rate / read);
        reads.push_back(read);
    }
    using pkvbench::median;
    return {steps, median(ratios), median(triads), median(rates), median(readRatios), median(reads)};
}

double peakRssBytes() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_maxrss) * 1024.0;  // Linux reports kilobytes
}

}  // namespace

// The same prefill compressed by a policy: what the policy itself costs next to the prefill, the
// cache bytes it leaves (the cache's own count and the sum of kept entries, which must agree),
// and decode speed against the full cache with the ratio the bytes moved per token predict.
nlohmann::json compareCompressed(pkv::Session& s, const std::string& method, double keep,
                                 const pkv::GenerateOptions& gen, const pkv::SessionStats& full,
                                 const pkv::LlavaModel& model) {
    const pkv::ModelFolder& folder = model.folder();
    pkv::PolicySpec spec;
    spec.method = method;
    spec.budget = pkv::Budget::keptPercent(keep);
    s.setPolicy(pkv::makePolicy(spec, folder.config().text.numLayers));
    const auto t0 = Clock::now();
    s.applyPolicyToPrefill();
    const double policyMs = msSince(t0);
    const pkv::SessionStats afterPrefill = s.stats();
    int64_t kept = 0;
    for (int64_t len : afterPrefill.layerLengths) kept += len;
    s.generate(gen, nullptr);
    const pkv::SessionStats st = s.stats();
    const pkvbench::DecoderCost cost = pkvbench::decoderCost(folder, model.kvDtype());
    // Bytes one decode step reads: the weights plus the cache, averaged over the decoded tokens.
    auto bytesPerStep = [&](const pkv::SessionStats& x) {
        int64_t entries = 0;
        for (int64_t len : x.layerLengths) entries += len;
        return cost.weightBytesPerToken + double(entries) / double(x.layerLengths.size()) * cost.kvBytesPerCachedToken;
    };
    return {{"policy", pkv::describePolicy(spec)},
            {"policy_ms", policyMs},
            {"policy_share_of_prefill", policyMs / full.prefillMs},
            {"kv_bytes_after_prefill", afterPrefill.kvBytes},
            {"kept_entries_times_bytes_per_entry", kept * afterPrefill.kvBytesPerEntry},
            {"kv_bytes_full_after_prefill", full.promptTokens * int64_t(full.layerLengths.size()) * full.kvBytesPerEntry},
            {"decode_tokens_per_second", st.decodeTokensPerSecond()},
            {"full_decode_tokens_per_second", full.decodeTokensPerSecond()},
            {"speedup", st.decodeTokensPerSecond() / full.decodeTokensPerSecond()},
            {"ideal_speedup_from_bytes", bytesPerStep(full) / bytesPerStep(st)}};
}

void printCompression(const nlohmann::json& c, const pkv::SessionStats& full) {
    std::printf("Compressed  %s: policy (search + eviction) %.1f ms = %.2f%% of the prefill; importance is\n"
                "            accumulated inside the prefill's attention (one add per probability)\n",
                c["policy"].get<std::string>().c_str(), c["policy_ms"].get<double>(),
                100.0 * c["policy_share_of_prefill"].get<double>());
    std::printf("            KV bytes after prefill %lld (cache) = %lld (kept entries x bytes per entry), full %lld\n",
                (long long)c["kv_bytes_after_prefill"].get<int64_t>(),
                (long long)c["kept_entries_times_bytes_per_entry"].get<int64_t>(),
                (long long)c["kv_bytes_full_after_prefill"].get<int64_t>());
    std::printf("            decode %.2f tok/s vs full %.2f tok/s: %.2fx (ideal from bytes moved %.2fx) at %lld prompt tokens\n",
                c["decode_tokens_per_second"].get<double>(), c["full_decode_tokens_per_second"].get<double>(),
                c["speedup"].get<double>(), c["ideal_speedup_from_bytes"].get<double>(), (long long)full.promptTokens);
}

int runBench(const QStringList& args) {
    QCommandLineParser p;
    p.setApplicationDescription(
        "Measure image encode, prefill and decode speed and peak memory on a model, beside this machine's measured "
        "memory bandwidth and sgemm rate. Make a model with real shapes and random weights with "
        "make_bench_model (bench/README.md).");
    p.addHelpOption();
    p.addOptions({
        {"model", "llava-hf model folder (default: the embedded demo model).", "dir"},
        {"prompt-tokens", "Prompt length, image tokens included.", "n", "640"},
        {"decode-tokens", "Tokens to decode after the prefill.", "n", "32"},
        {"threads", "Threads for OpenMP and OpenBLAS (default: their defaults).", "n"},
        {"method", "Also compare decode under this KV policy with the full cache, from the same prefill "
                   "(e.g. prefixkv).", "name"},
        {"keep", "KV kept for --method, percent.", "percent", "20"},
        {"profile", "Also time every backend op and print where the image + prefill and the decode spend "
                    "their time (adds a clock read per op)."},
        {"json", "Print one JSON object."},
    });
    QCommandLineOption probe("sgemm-probe", "Internal: print sgemm GFLOP/s at m,n,k;... and exit.", "shapes");
    probe.setFlags(QCommandLineOption::HiddenFromHelp);
    p.addOption(probe);
    p.addOption(kvDtypeOptionSpec());
    p.addOption(weightsOptionSpec());
    if (const auto exit = parseArguments(p, args)) return *exit;
    try {
        const int promptTokens = intOption(p, "prompt-tokens", 1, 1 << 20);
        const int decodeTokens = intOption(p, "decode-tokens", 1, 1 << 20);
        if (p.isSet("threads")) pkvbench::setThreads(intOption(p, "threads", 1, 1024));
        if (p.isSet(probe)) return pkvbench::runSgemmProbe(p.value(probe).toStdString());
        bool demo = false;
        const std::string dir = modelPathOrDemo(p.value("model"), &demo);

        pkv::LlamaConfig text;
        {
            auto folder = pkv::ModelFolder::open(dir);  // the config, before any weight is touched
            text = folder->config().text;
        }
        if (!p.isSet("json")) std::fprintf(stderr, "[measuring memory bandwidth and sgemm ...]\n");
        pkvbench::Limits limits = pkvbench::measureLimitsInChild(
            {{promptTokens, text.hiddenSize, text.hiddenSize}, {promptTokens, text.intermediateSize, text.hiddenSize}});
        pkvbench::measureSgemmWithOwnCore(limits, "/proc/self/exe");

        if (!p.isSet("json")) std::fprintf(stderr, "[loading %s ...]\n", dir.c_str());
        auto t0 = Clock::now();
        pkv::LoadOptions load;
        load.device = pkv::DeviceChoice::Cpu;
        load.kvDtype = kvDtypeOption(p);
        load.weights = weightsOption(p);
        load.profileOps = p.isSet("profile");
        auto model = pkv::LlavaModel::load(dir, load);
        const double loadMs = msSince(t0);
        t0 = Clock::now();
        prefaultWeights(dir);
        const double prefaultMs = msSince(t0);

        const std::string prompt = promptOfLength(*model, promptTokens);
        const pkv::RgbImage image = syntheticImage(640, 480);
        if (!p.isSet("json")) std::fprintf(stderr, "[prefill and %d decode steps ...]\n", decodeTokens);
        pkv::Session session(model);
        // sgemm again just before and just after the image and prefill: the peak is the best of all
        // (as the decode is held to the higher of two triads), and the prefill is also given against
        // the mean of the two beside it, which tells the kernels' shortfall from the machine's moves.
        limits.gemmsBefore = pkvbench::measureSgemmAgain(limits, "/proc/self/exe", "before the prefill");
        session.prefill(prompt, &image);
        limits.gemmsAfter = pkvbench::measureSgemmAgain(limits, "/proc/self/exe", "after the prefill");
        pkv::OpProfile prefillOps;
        if (pkv::ProfilingBackend* profiler = model->opProfiler()) {
            prefillOps = profiler->profile();
            profiler->reset();
        }
        pkv::GenerateOptions gen;
        gen.maxNewTokens = decodeTokens + 1;  // the first token comes from the prefill's logits
        gen.stopAtEos = false;
        // The compressed run forks the same prefill before the full run decodes.
        std::unique_ptr<pkv::Session> compressed;
        if (p.isSet("method")) compressed = session.fork();
        session.generate(gen, nullptr);
        const pkv::SessionStats st = session.stats();
        const pkv::OpProfile decodeOps = model->opProfiler() ? model->opProfiler()->profile() : pkv::OpProfile();
        const nlohmann::json compression =
            compressed ? compareCompressed(*compressed, p.value("method").toStdString(),
                                           doubleOption(p, "keep", 0.1, 100), gen, st, *model)
                       : nlohmann::json();

        const pkvbench::DecoderCost cost = pkvbench::decoderCost(model->folder(), model->kvDtype());
        const double weightsOnDisk = double(model->folder().weightBytes());
        const bool inMemory = load.weights == pkv::WeightStorage::Memory;
        const double peakRss = peakRssBytes();
        // The bandwidth again, right after the decode: on a shared machine it moves by a factor of
        // 1.5 within minutes, so the decode is held to the higher of the two measurements. In this
        // process (libgomp's threads do not survive a fork), after peak RSS was read.
        const pkvbench::Limits after = pkvbench::measureLimits({}, limits.arrayBytes);
        const double triad = std::max(limits.triadGBps, after.triadGBps);
        // More steps from where the decode ended, each next to its own triad (context permitting).
        const int pairedSteps =
            int(std::min<int64_t>(decodeTokens, text.maxPositions - session.tokensSeen()));
        const PairedDecode paired =
            pairedSteps > 0 ? pairedDecode(session, pairedSteps, cost.weightBytesPerToken)
                            : PairedDecode{};
        const double prefillSeconds = st.prefillMs / 1000.0;
        const double prefillTps = double(st.promptTokens) / prefillSeconds;
        const double prefillGflops = prefillFlops(text, cost, st.promptTokens) / prefillSeconds / 1e9;
        const double decodeTps = st.decodeTokensPerSecond();
        const double boundTps = triad * 1e9 / cost.weightBytesPerToken;
        // The KV cache is read too: on average prompt + half the decoded tokens per step.
        const double kvBytes = cost.kvBytesPerCachedToken * (double(st.promptTokens) + decodeTokens / 2.0);
        const double boundWithKvTps = triad * 1e9 / (cost.weightBytesPerToken + kvBytes);

        auto gemmsJson = [](const std::vector<pkvbench::GemmRate>& rates) {
            nlohmann::json a = nlohmann::json::array();
            for (const pkvbench::GemmRate& g : rates) a.push_back({{"m", g.m}, {"n", g.n}, {"k", g.k}, {"gflops", g.gflops}});
            return a;
        };
        nlohmann::json j = {
            {"model", demo ? "demo" : dir},
            {"dtype", cost.dtype},
            {"kv_dtype", pkv::dtypeName(model->kvDtype())},
            {"weights", inMemory ? "memory" : "mapped"},
            {"threads", limits.threads},
            {"weight_bytes_on_disk", weightsOnDisk},
            {"limits", {{"triad_gbps", limits.triadGBps},
                        {"triad_gbps_after_decode", after.triadGBps},
                        {"triad_gbps_for_bound", triad},
                        {"triad_counts_write_allocate", false},
                        {"read_gbps", limits.readGBps},
                        {"array_bytes", limits.arrayBytes},
                        {"sgemm", gemmsJson(limits.gemms)},
                        {"sgemm_openblas_core", limits.gemmCore},
                        {"sgemm_own_core", gemmsJson(limits.gemmsOwnCore)},
                        {"sgemm_own_openblas_core", limits.gemmOwnCore},
                        {"sgemm_before_prefill", gemmsJson(limits.gemmsBefore)},
                        {"sgemm_after_prefill", gemmsJson(limits.gemmsAfter)},
                        {"sgemm_peak_gflops", limits.sgemmPeakGflops()}}},
            {"load_ms", loadMs},
            {"prefault_ms", prefaultMs},
            {"image_encode_ms", st.imageEncodeMs},
            {"prompt_tokens", st.promptTokens},
            {"prefill_ms", st.prefillMs},
            {"prefill_tokens_per_second", prefillTps},
            {"prefill_gflops", prefillGflops},
            {"prefill_ratio_to_sgemm_peak", prefillGflops / limits.sgemmPeakGflops()},
            {"prefill_ratio_to_sgemm_beside",
             limits.sgemmBesideGflops() > 0 ? prefillGflops / limits.sgemmBesideGflops() : 0.0},
            {"decode_steps", st.decodeSteps},
            {"decode_ms", st.decodeMs},
            {"decode_tokens_per_second", decodeTps},
            {"decode_weight_bytes_per_token", cost.weightBytesPerToken},
            {"decode_bound_tokens_per_second", boundTps},
            {"decode_ratio_to_bound", decodeTps / boundTps},
            {"decode_kv_bytes_per_token", kvBytes},
            {"decode_ratio_to_bound_with_kv", decodeTps / boundWithKvTps},
            {"paired_decode", {{"steps", paired.steps},
                               {"median_ratio_to_triad", paired.medianRatio},
                               {"median_triad_gbps", paired.medianTriadGBps},
                               {"median_weight_gbps", paired.medianStepGBps},
                               {"median_ratio_to_read", paired.medianRatioToRead},
                               {"median_read_gbps", paired.medianReadGBps}}},
            {"peak_rss_bytes", peakRss},
            {"peak_rss_ratio_to_weights", peakRss / weightsOnDisk},
        };
        if (!compression.is_null()) j["compression"] = compression;
        if (p.isSet("profile")) j["ops"] = {{"image_and_prefill", profileJson(prefillOps)}, {"decode", profileJson(decodeOps)}};
        if (p.isSet("json")) {
            std::printf("%s\n", j.dump(1).c_str());
            return Ok;
        }
        const double GB = 1e9;
        std::printf("Model       %s (%s, KV cache %s, %d layers, hidden %d, %d/%d heads, %.2f GB on disk, %s)\n",
                    demo ? "embedded demo model" : dir.c_str(), cost.dtype.c_str(), pkv::dtypeName(model->kvDtype()),
                    text.numLayers, text.hiddenSize,
                    text.numHeads, text.numKvHeads, weightsOnDisk / GB,
                    inMemory ? "weights read into memory" : "weights mapped from the files");
        std::printf("Threads     %d\n", limits.threads);
        std::printf("Bandwidth   triad %.1f GB/s (3 arrays of %lld MiB, write-allocate not counted), read-only %.1f GB/s\n",
                    limits.triadGBps, (long long)(limits.arrayBytes >> 20), limits.readGBps);
        std::printf("            after the decode: triad %.1f GB/s, read-only %.1f GB/s; the decode bound uses the higher "
                    "triad, %.1f GB/s\n",
                    after.triadGBps, after.readGBps, triad);
        // Who chose the kernels: the user (OPENBLAS_CORETYPE), prefixkv (OpenBLAS did not know the
        // CPU, engine/common/openblas_core.h), or OpenBLAS itself.
        const char* chosenBy = pkv::openBlasCorePinnedByUser() ? ", from OPENBLAS_CORETYPE"
                               : std::getenv("OPENBLAS_CORETYPE") ? ", chosen by prefixkv for this CPU"
                                                                  : "";
        for (const pkvbench::GemmRate& g : limits.gemms)
            std::printf("sgemm       M=%d N=%d K=%d: %.1f GFLOP/s (OpenBLAS, %s kernels%s)\n", g.m, g.n, g.k, g.gflops,
                        limits.gemmCore.c_str(), chosenBy);
        for (const pkvbench::GemmRate& g : limits.gemmsOwnCore)
            std::printf("            M=%d N=%d K=%d: %.1f GFLOP/s (without OPENBLAS_CORETYPE, as prefixkv runs: %s "
                        "kernels)\n",
                        g.m, g.n, g.k, g.gflops, limits.gemmOwnCore.c_str());
        for (size_t i = 0; i < limits.gemmsBefore.size() && i < limits.gemmsAfter.size(); ++i) {
            const pkvbench::GemmRate &b = limits.gemmsBefore[i], &a = limits.gemmsAfter[i];
            std::printf("            M=%d N=%d K=%d: %.1f GFLOP/s just before the prefill, %.1f just after\n", b.m, b.n,
                        b.k, b.gflops, a.gflops);
        }
        std::printf("            the sgemm peak: %.1f GFLOP/s, the best of these\n", limits.sgemmPeakGflops());
        std::printf("Load        %.0f ms, page-in of the weights %.0f ms (not timed below)\n", loadMs, prefaultMs);
        std::printf("Image       encode %.0f ms\n", st.imageEncodeMs);
        std::printf("Prefill     %lld tokens in %.0f ms: %.1f tok/s, %.1f GFLOP/s = %.0f%% of the sgemm peak\n",
                    (long long)st.promptTokens, st.prefillMs, prefillTps, prefillGflops,
                    100.0 * prefillGflops / limits.sgemmPeakGflops());
        if (limits.sgemmBesideGflops() > 0)
            std::printf("            %.0f%% of the mean of the sgemm just before and just after it (%.1f GFLOP/s)\n",
                        100.0 * prefillGflops / limits.sgemmBesideGflops(), limits.sgemmBesideGflops());
        std::printf("Decode      %lld tokens in %.0f ms: %.2f tok/s = %.0f%% of the bound %.2f tok/s "
                    "(%.3f GB of weights per token at the triad bandwidth)\n",
                    (long long)st.decodeSteps, st.decodeMs, decodeTps, 100.0 * decodeTps / boundTps, boundTps,
                    cost.weightBytesPerToken / GB);
        std::printf("            %.0f%% counting the %s KV cache reads too (%.3f GB per token)\n",
                    100.0 * decodeTps / boundWithKvTps, pkv::dtypeName(model->kvDtype()), kvBytes / GB);
        std::printf("            paired: %d more steps, each after its own triad: median %.0f%% of the bound "
                    "(weights read at %.1f GB/s, triad %.1f GB/s)\n",
                    paired.steps, 100.0 * paired.medianRatio, paired.medianStepGBps, paired.medianTriadGBps);
        std::printf("            the same steps against a read-only probe beside each triad: median %.0f%% "
                    "(read-only %.1f GB/s)\n",
                    100.0 * paired.medianRatioToRead, paired.medianReadGBps);
        std::printf("Peak RSS    %.2f GB = %.0f%% of the weights on disk\n", peakRss / GB,
                    100.0 * peakRss / weightsOnDisk);
        if (!compression.is_null()) printCompression(compression, st);
        if (p.isSet("profile")) {
            printProfile("image + prefill", prefillOps, st.imageEncodeMs + st.prefillMs);
            printProfile("decode", decodeOps, st.decodeMs);
        }
        return Ok;
    } catch (const pkv::Error& e) {
        return failWith(QString::fromStdString(e.what()));
    } catch (const std::runtime_error& e) {
        return failWith(QString::fromStdString(e.what()));
    } catch (const std::bad_alloc&) {
        return failWith("Out of memory: the model and its cache do not fit in this machine's memory.");
    }
}

}  // namespace pkvcli
