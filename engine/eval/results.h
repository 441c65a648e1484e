#pragma once
// The files of an evaluation folder, written so that a run killed at any moment loses at most the
// (sample, policy) in flight:
//   run.json        the settings; a rerun must match them (policies may be added)
//   reference.jsonl one full-cache greedy generation per sample, reused by every policy and rerun
//   results.jsonl   one line per finished (sample, policy), appended, flushed and closed per line
//   traces/         per (sample, policy): every layer's kept length after prefill and each step
//   summary.json, summary.csv   per policy: pooled PPL, mean ROUGE-L, mean KV kept
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pkv {

// Reads a JSON-lines file; a missing file is empty. A last line without its newline is what a
// kill during the write leaves: it is ignored (and cut off by repairJsonLines). Any other line
// that does not parse throws pkv::Error naming the file and line.
std::vector<nlohmann::json> readJsonLines(const std::string& path);
// Cuts a torn last line (no newline at the end) so that appends start on a fresh line.
void repairJsonLines(const std::string& path);
// Appends one line and closes the file, so the line is on disk before the next piece of work.
void appendJsonLine(const std::string& path, const nlohmann::json& line);
// Writes a whole file through a temporary name and a rename: readers never see half a file.
void writeFileAtomically(const std::string& path, const std::string& content);
nlohmann::json readJsonFile(const std::string& path);

// Per-policy aggregates of result lines, in the order of `policyKeys` (keys without results are
// left out). Each entry: key, method, policy, keep_percent, samples, ppl (pooled over tokens),
// answer_tokens, rouge_l and rouge_l_textbook (means of the per-sample F), kv_mib and
// kept_fraction (means of the per-sample means).
nlohmann::json summarizeResults(const std::vector<nlohmann::json>& results, const std::vector<std::string>& policyKeys);
// summary.json and summary.csv in `dir` from its results.jsonl and run.json.
void writeSummary(const std::string& dir);

}  // namespace pkv
