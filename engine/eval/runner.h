#pragma once
// The batch evaluation: policies x samples, as the reference's eval_ppl.py and eval_rouge.py
// measure them (spec 4.2, 4.3), resumable and shardable.
//
// Per sample: the full-cache greedy generation (the ROUGE reference; its text keeps "</s>",
// spec 1.5) is made once and cached in reference.jsonl. Per (sample, policy): one prefill with the
// policy; the session is forked; one copy generates greedily (ROUGE-L against the reference
// generation), the other scores the dataset's answer teacher-forced (PPL). Results go to the
// folder's files (see results.h) one line at a time; a rerun skips what is there.
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/kv/policy_factory.h"
#include "engine/session.h"

namespace pkv {

// A short stable name for a policy, used as its key in result files and trace names:
// "full", "prefixkv_20", "h2o-fixed_10", "streaming_128tok", "prefixkv_profile-<file stem>".
std::string policyKey(const PolicySpec& spec);

struct EvalProgress {
    int done = 0;            // (sample, policy) pairs finished, those found in the folder included
    int total = 0;
    int sample = 0;          // position of the current sample in this run (0-based) ...
    int samples = 0;         // ... out of this many
    std::string stage;       // what runs now: "reference" or a policy description
    double elapsedSeconds = 0;
    double etaSeconds = -1;  // -1 until something has been measured
};

struct EvalOptions {
    std::vector<PolicySpec> policies;
    int maxSamples = 0;                  // the first n of the dataset (before sharding); 0 = all
    int shardIndex = 0, shardCount = 1;  // take the samples with index % shardCount == shardIndex
    int maxNewTokens = 1024;             // for the reference and the compressed generation
    PositionMode positionMode = PositionMode::Absolute;
    ImageMode imageMode = ImageMode::Pad;
    std::function<void(const EvalProgress&)> onProgress;
    const std::atomic<bool>* cancel = nullptr;  // checked between tokens
};

struct EvalReport {
    int resultsWritten = 0;
    int resultsSkipped = 0;       // already in results.jsonl
    int referencesGenerated = 0;
    int referencesReused = 0;     // found in reference.jsonl
    int prefills = 0;             // model prefills run (reference and policy ones)
    bool cancelled = false;
};

// Runs (or resumes) an evaluation into outDir, creating it. Throws pkv::Error: settings that
// differ from the folder's run.json, a bad shard, an unknown policy, a sample that does not fit.
// A cancel returns with cancelled = true; what finished is on disk.
EvalReport runEvaluation(std::shared_ptr<LlavaModel> model, const Dataset& data, const std::string& outDir,
                         const EvalOptions& options);

// Joins shard folders (same settings) into outDir: results and references in sample order,
// traces copied, summary written. Throws pkv::Error when the settings differ or two shards hold
// different results for the same (sample, policy).
void mergeEvaluations(const std::vector<std::string>& shardDirs, const std::string& outDir);

// Python's str.strip() for ASCII whitespace (the reference strips decoded generations); Unicode
// spaces at the ends, which LLaMA decoding does not produce, are kept.
std::string stripWhitespace(const std::string& text);

}  // namespace pkv
