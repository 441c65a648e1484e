#include "engine/eval/runner.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "engine/common/error.h"
#include "engine/eval/perplexity.h"
#include "engine/eval/results.h"
#include "engine/eval/rouge.h"

namespace pkv {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kRun = "run.json";
const char* kReference = "reference.jsonl";
const char* kResults = "results.jsonl";
const char* kTraces = "traces";

std::string formatNumber(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

const char* positionModeName(PositionMode m) { return m == PositionMode::Absolute ? "true" : "faithful"; }

json keepPercent(const PolicySpec& spec) {
    if (spec.method == "full" || !spec.profilePath.empty() || spec.budget.isTokenCount()) return nullptr;
    return 100.0 - 100.0 * spec.budget.evictedFraction(1);  // the inverse of Budget::keptPercent, so 20 stays 20
}

// The settings a rerun or a merged shard must share; policies and shard may differ.
json runSettings(const LlavaModel& model, const Dataset& data, const EvalOptions& o) {
    return {{"model", fs::path(model.folder().dir()).filename().string()},
            {"dataset", fs::path(data.file).filename().string()},
            {"dataset_kind", datasetKindName(data.kind)},
            {"dataset_items", data.samples.size()},
            {"max_new_tokens", o.maxNewTokens},
            {"position_mode", positionModeName(o.positionMode)},
            {"image_mode", o.imageMode == ImageMode::Pad ? "pad" : "crop"},
            // The cache's precision moves PPL and can move answers: runs in one folder share it.
            {"kv_dtype", dtypeName(model.kvDtype())}};
}

json settingsOf(const json& run) {
    json s = run;
    s.erase("policies");
    s.erase("shard");
    // Folders written before the cache could be f16 held f32 entries.
    if (!s.contains("kv_dtype")) s["kv_dtype"] = "F32";
    return s;
}

std::string differingSetting(const json& a, const json& b) {
    for (auto it = a.begin(); it != a.end(); ++it)
        if (!b.contains(it.key()) || b[it.key()] != it.value()) return it.key();
    for (auto it = b.begin(); it != b.end(); ++it)
        if (!a.contains(it.key())) return it.key();
    return {};
}

// Creates or checks run.json; returns the policy keys in summary order (earlier runs' first).
std::vector<std::string> openRun(const fs::path& dir, const json& settings, const std::vector<std::string>& keys,
                                 const std::string& shard) {
    std::vector<std::string> all;
    const fs::path path = dir / kRun;
    if (fs::exists(path)) {
        const json old = readJsonFile(path.string());
        const std::string diff = differingSetting(settingsOf(old), settings);
        if (!diff.empty())
            throw Error(dir.string() + " holds an evaluation with another " + diff + " (" + settingsOf(old).value(diff, json()).dump() +
                        " there, " + settings.value(diff, json()).dump() + " now); use a new --out folder.");
        if (old.value("shard", "") != shard)
            throw Error(dir.string() + " holds shard " + old.value("shard", "") + ", not " + shard + "; use a new --out folder.");
        all = old.at("policies").get<std::vector<std::string>>();
    }
    for (const std::string& k : keys)
        if (std::find(all.begin(), all.end(), k) == all.end()) all.push_back(k);
    json run = settings;
    run["policies"] = all;
    run["shard"] = shard;
    writeFileAtomically(path.string(), run.dump(1) + "\n");
    return all;
}

std::string resultKey(int64_t sample, const std::string& policy) { return std::to_string(sample) + "|" + policy; }

std::string traceName(int64_t sample, const std::string& policy) {
    return "s" + std::to_string(sample) + "_" + policy + ".json";
}

// The per-step record of one compressed generation: every layer's length, and how many tokens
// the model had seen, after the prefill and after each decode step.
struct Trace {
    std::vector<std::vector<int64_t>> lengths;
    std::vector<int64_t> tokensSeen;
    std::vector<int64_t> bytes;

    void record(const Session& s) {
        const SessionStats st = s.stats();
        lengths.push_back(st.layerLengths);
        tokensSeen.push_back(s.tokensSeen());
        bytes.push_back(st.kvBytes);
    }
    double meanMiB() const {
        double sum = 0;
        for (int64_t b : bytes) sum += double(b);
        return sum / double(bytes.size()) / double(1 << 20);
    }
    // Mean over the record of (entries held) / (layers x tokens seen).
    double meanKeptFraction() const {
        double sum = 0;
        for (size_t i = 0; i < lengths.size(); ++i) {
            int64_t held = 0;
            for (int64_t l : lengths[i]) held += l;
            sum += double(held) / (double(lengths[i].size()) * double(tokensSeen[i]));
        }
        return sum / double(lengths.size());
    }
};

class Runner {
public:
    Runner(std::shared_ptr<LlavaModel> model, const Dataset& data, const fs::path& dir, const EvalOptions& o)
        : model_(std::move(model)), data_(data), dir_(dir), o_(o), start_(std::chrono::steady_clock::now()) {}

    EvalReport run() {
        if (o_.shardCount < 1 || o_.shardIndex < 0 || o_.shardIndex >= o_.shardCount)
            throw Error("The shard must be K/N with 0 <= K < N, not " + std::to_string(o_.shardIndex) + "/" +
                        std::to_string(o_.shardCount) + ".");
        if (o_.policies.empty()) throw Error("No method to evaluate was given.");
        if (o_.maxNewTokens < 1) throw Error("The number of new tokens must be at least 1.");
        std::vector<std::string> keys;
        for (const PolicySpec& p : o_.policies) {
            makePolicy(p, 1);  // reject an unknown method or unreadable profile before any work
            keys.push_back(policyKey(p));
        }
        fs::create_directories(dir_ / kTraces);
        openRun(dir_, runSettings(*model_, data_, o_), keys,
                std::to_string(o_.shardIndex) + "/" + std::to_string(o_.shardCount));
        repairJsonLines((dir_ / kResults).string());
        repairJsonLines((dir_ / kReference).string());
        for (const json& r : readJsonLines((dir_ / kResults).string()))
            finished_.insert(resultKey(r.at("sample"), r.at("policy_key")));
        for (const json& r : readJsonLines((dir_ / kReference).string())) references_[r.at("sample")] = r;

        const int64_t limit = o_.maxSamples > 0 ? std::min<int64_t>(o_.maxSamples, data_.samples.size())
                                                 : int64_t(data_.samples.size());
        for (int64_t i = 0; i < limit; ++i)
            if (i % o_.shardCount == o_.shardIndex) mine_.push_back(i);
        progress_.total = int(mine_.size() * o_.policies.size());
        progress_.samples = int(mine_.size());

        for (size_t k = 0; k < mine_.size() && !report_.cancelled; ++k) {
            progress_.sample = int(k);
            try {
                runSample(mine_[k]);
            } catch (const Error& e) {
                throw Error(data_.file + ", item " + data_.samples[size_t(mine_[k])].id + ": " + e.what());
            }
        }
        writeSummary(dir_.string());
        return report_;
    }

private:
    bool cancelRequested() const { return o_.cancel && o_.cancel->load(); }

    void tell(const std::string& stage) {
        progress_.stage = stage;
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        progress_.elapsedSeconds = elapsed;
        const int ran = progress_.done - report_.resultsSkipped;
        progress_.etaSeconds = ran > 0 ? elapsed / ran * (progress_.total - progress_.done) : -1;
        if (o_.onProgress) o_.onProgress(progress_);
    }

    void runSample(int64_t index) {
        std::vector<size_t> todo;
        for (size_t p = 0; p < o_.policies.size(); ++p) {
            if (finished_.count(resultKey(index, policyKey(o_.policies[p])))) {
                ++report_.resultsSkipped;
                ++progress_.done;
            } else {
                todo.push_back(p);
            }
        }
        if (todo.empty()) return tell("skipped");
        const EvalSample& sample = data_.samples[size_t(index)];
        const std::vector<float> pixels = model_->preprocess(decodeImageFile(data_.imagePath(size_t(index))), o_.imageMode);
        const json* reference = referenceFor(index, sample, pixels);
        if (!reference) return;
        for (size_t p : todo) {
            tell(describePolicy(o_.policies[p]));
            if (!runPolicy(index, sample, pixels, *reference, o_.policies[p])) return;
            ++progress_.done;
            tell(describePolicy(o_.policies[p]));
        }
    }

    // Greedy generation until EOS or the budget, stopping at a cancel; false when cancelled.
    bool generate(Session& s, Trace* trace) {
        GenerateOptions g;
        g.maxNewTokens = o_.maxNewTokens;
        const StopReason r = s.generate(g, [&](int id, const std::string&) {
            if (id < 0) return;
            if (trace) trace->record(s);
            if (cancelRequested()) s.requestCancel();
        });
        lastStop_ = r;
        if (r == StopReason::Cancelled) report_.cancelled = true;
        return r != StopReason::Cancelled;
    }

    const json* referenceFor(int64_t index, const EvalSample& sample, const std::vector<float>& pixels) {
        const auto it = references_.find(index);
        if (it != references_.end()) {
            ++report_.referencesReused;
            return &it->second;
        }
        tell("reference");
        if (cancelRequested()) {
            report_.cancelled = true;
            return nullptr;
        }
        Session s(model_);
        s.prefillPixels(sample.prompt, &pixels);
        ++report_.prefills;
        if (!generate(s, nullptr)) return nullptr;
        json line = {{"sample", index},
                     {"id", sample.id},
                     {"text", stripWhitespace(s.generatedText())},
                     {"token_ids", s.generated()},
                     {"stop_reason", stopReasonName(lastStop_)}};
        appendJsonLine((dir_ / kReference).string(), line);
        ++report_.referencesGenerated;
        return &(references_[index] = std::move(line));
    }

    bool runPolicy(int64_t index, const EvalSample& sample, const std::vector<float>& pixels, const json& reference,
                   const PolicySpec& spec) {
        if (cancelRequested()) {
            report_.cancelled = true;
            return false;
        }
        const std::string key = policyKey(spec);
        Session s(model_);
        s.setPositionMode(o_.positionMode);
        s.setPolicy(makePolicy(spec, model_->config().text.numLayers));
        s.prefillPixels(sample.prompt, &pixels);
        ++report_.prefills;
        std::unique_ptr<Session> scorer = s.fork();

        Trace trace;
        if (!generate(s, &trace)) return false;
        const std::string hypothesis = stripWhitespace(s.generatedText());
        const std::string referenceText = reference.at("text");
        json rouge = {{"f", 0.0}, {"p", 0.0}, {"r", 0.0}};
        std::string rougeNote;
        try {
            const RougeScore r = rougeLReference(hypothesis, referenceText);
            rouge = {{"f", r.f}, {"p", r.p}, {"r", r.r}};
        } catch (const Error& e) {
            rougeNote = e.what();  // scored 0: the reference's scorer would have stopped here
        }
        const RougeScore textbook = rougeLTextbook(hypothesis, referenceText);

        const std::vector<int> answer = model_->tokenizer().encode(sample.answer);
        std::vector<double> nll;
        try {
            nll = teacherForcedNll(*scorer, answer, o_.cancel);
        } catch (const Cancelled&) {
            report_.cancelled = true;
            return false;
        }
        PerplexityPool pool;
        pool.add(nll);

        const std::string trace_file = traceName(index, key);
        writeFileAtomically((dir_ / kTraces / trace_file).string(),
                            json({{"sample", index},
                                  {"id", sample.id},
                                  {"policy_key", key},
                                  {"prompt_tokens", s.stats().promptTokens},
                                  {"tokens_seen", trace.tokensSeen},
                                  {"layer_lengths", trace.lengths}})
                                    .dump() + "\n");
        json line = {{"sample", index},
                     {"id", sample.id},
                     {"policy_key", key},
                     {"method", spec.method},
                     {"policy", describePolicy(spec)},
                     {"keep_percent", keepPercent(spec)},
                     {"prompt_tokens", s.stats().promptTokens},
                     {"hypothesis", hypothesis},
                     {"generated_tokens", s.generated().size()},
                     {"stop_reason", stopReasonName(lastStop_)},
                     {"rouge_l", rouge},
                     {"rouge_l_textbook", {{"f", textbook.f}, {"p", textbook.p}, {"r", textbook.r}}},
                     {"answer_tokens", answer.size()},
                     {"nll_sum", pool.nllSum()},
                     {"ppl", pool.perplexity()},
                     {"kv_mib", trace.meanMiB()},
                     {"kept_fraction", trace.meanKeptFraction()},
                     {"final_layer_lengths", trace.lengths.back()},
                     {"trace", std::string(kTraces) + "/" + trace_file}};
        if (!rougeNote.empty()) line["rouge_l_note"] = rougeNote;
        appendJsonLine((dir_ / kResults).string(), line);
        ++report_.resultsWritten;
        return true;
    }

    std::shared_ptr<LlavaModel> model_;
    const Dataset& data_;
    fs::path dir_;
    const EvalOptions& o_;
    std::chrono::steady_clock::time_point start_;
    std::set<std::string> finished_;
    std::map<int64_t, json> references_;
    std::vector<int64_t> mine_;
    EvalProgress progress_;
    EvalReport report_;
    StopReason lastStop_ = StopReason::None;
};

}  // namespace

std::string policyKey(const PolicySpec& spec) {
    if (spec.method == "full") return "full";
    std::string key = spec.method;
    if (methodHasVariants(spec.method)) key += spec.faithful ? "" : "-fixed";
    if (!spec.profilePath.empty()) return key + "_profile-" + fs::path(spec.profilePath).stem().string();
    if (spec.budget.isTokenCount()) return key + "_" + std::to_string(spec.budget.tokens()) + "tok";
    return key + "_" + formatNumber(100.0 * (1.0 - spec.budget.evictedFraction(1)));
}

std::string stripWhitespace(const std::string& text) {
    const char* space = " \t\n\v\f\r\x1c\x1d\x1e\x1f";
    const size_t b = text.find_first_not_of(space);
    if (b == std::string::npos) return {};
    return text.substr(b, text.find_last_not_of(space) - b + 1);
}

EvalReport runEvaluation(std::shared_ptr<LlavaModel> model, const Dataset& data, const std::string& outDir,
                         const EvalOptions& options) {
    return Runner(std::move(model), data, fs::path(outDir), options).run();
}

void mergeEvaluations(const std::vector<std::string>& shardDirs, const std::string& outDir) {
    if (shardDirs.empty()) throw Error("Name at least one shard folder to merge.");
    json settings;
    std::vector<std::string> policies;
    std::map<std::pair<int64_t, size_t>, json> results;  // (sample, policy rank) -> line
    std::map<int64_t, json> references;
    const fs::path out(outDir);
    fs::create_directories(out / kTraces);
    for (const std::string& dirName : shardDirs) {
        const fs::path dir(dirName);
        if (!fs::exists(dir / kRun)) throw Error(dirName + " is not an evaluation folder: it has no run.json.");
        const json run = readJsonFile((dir / kRun).string());
        if (settings.is_null()) settings = settingsOf(run);
        const std::string diff = differingSetting(settings, settingsOf(run));
        if (!diff.empty()) throw Error(dirName + " was run with another " + diff + " than " + shardDirs[0] + ".");
        for (const std::string& k : run.at("policies").get<std::vector<std::string>>())
            if (std::find(policies.begin(), policies.end(), k) == policies.end()) policies.push_back(k);
        for (const json& r : readJsonLines((dir / kResults).string())) {
            const auto rank = size_t(std::find(policies.begin(), policies.end(), r.at("policy_key").get<std::string>()) -
                                     policies.begin());
            const auto slot = std::make_pair(r.at("sample").get<int64_t>(), rank);
            const auto it = results.find(slot);
            if (it != results.end() && it->second != r)
                throw Error("Sample " + std::to_string(slot.first) + " with " + r.at("policy_key").get<std::string>() +
                            " has different results in two shards (the last one is " + dirName + ").");
            results[slot] = r;
            const fs::path trace = dir / r.at("trace").get<std::string>();
            if (fs::exists(trace)) fs::copy_file(trace, out / r.at("trace").get<std::string>(), fs::copy_options::overwrite_existing);
        }
        for (const json& r : readJsonLines((dir / kReference).string())) references[r.at("sample")] = r;
    }
    json run = settings;
    run["policies"] = policies;
    run["shard"] = "merged";
    writeFileAtomically((out / kRun).string(), run.dump(1) + "\n");
    std::string lines;
    for (const auto& [slot, r] : results) lines += r.dump() + "\n";
    writeFileAtomically((out / kResults).string(), lines);
    lines.clear();
    for (const auto& [sample, r] : references) lines += r.dump() + "\n";
    writeFileAtomically((out / kReference).string(), lines);
    writeSummary(out.string());
}

}  // namespace pkv
