#include "engine/eval/results.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "engine/common/error.h"

namespace pkv {
namespace {

std::string readAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("Cannot read " + path + ".");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string csvNumber(const nlohmann::json& v) {
    if (v.is_null()) return "";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.10g", v.get<double>());
    return buf;
}

std::string csvText(const std::string& s) {
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

}  // namespace

std::vector<nlohmann::json> readJsonLines(const std::string& path) {
    std::vector<nlohmann::json> out;
    if (!std::filesystem::exists(path)) return out;
    const std::string text = readAll(path);
    size_t start = 0, line = 1;
    while (start < text.size()) {
        const size_t end = text.find('\n', start);
        if (end == std::string::npos) break;  // torn by a kill during the write
        const std::string row = text.substr(start, end - start);
        if (row.find_first_not_of(" \t\r") != std::string::npos) {
            try {
                out.push_back(nlohmann::json::parse(row));
            } catch (const nlohmann::json::parse_error&) {
                throw Error(path + ", line " + std::to_string(line) + ", is not valid JSON.");
            }
        }
        start = end + 1;
        ++line;
    }
    return out;
}

void repairJsonLines(const std::string& path) {
    if (!std::filesystem::exists(path)) return;
    const std::string text = readAll(path);
    if (text.empty() || text.back() == '\n') return;
    const size_t keep = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    std::filesystem::resize_file(path, keep);
}

void appendJsonLine(const std::string& path, const nlohmann::json& line) {
    std::ofstream out(path, std::ios::binary | std::ios::app);
    out << line.dump() << '\n';
    out.flush();
    out.close();
    if (!out) throw Error("Cannot write to " + path + " (is the disk full?).");
}

void writeFileAtomically(const std::string& path, const std::string& content) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << content;
        out.close();
        if (!out) throw Error("Cannot write " + tmp + " (is the disk full?).");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw Error("Cannot replace " + path + ": " + ec.message() + ".");
}

nlohmann::json readJsonFile(const std::string& path) {
    try {
        return nlohmann::json::parse(readAll(path));
    } catch (const nlohmann::json::parse_error&) {
        throw Error(path + " is not valid JSON.");
    }
}

nlohmann::json summarizeResults(const std::vector<nlohmann::json>& results, const std::vector<std::string>& policyKeys) {
    struct Acc {
        nlohmann::json first;
        int samples = 0;
        double nll = 0, rouge = 0, textbook = 0, mib = 0, kept = 0;
        int64_t tokens = 0;
    };
    std::map<std::string, Acc> acc;
    for (const nlohmann::json& r : results) {
        Acc& a = acc[r.at("policy_key").get<std::string>()];
        if (a.samples == 0) a.first = r;
        ++a.samples;
        a.nll += r.at("nll_sum").get<double>();
        a.tokens += r.at("answer_tokens").get<int64_t>();
        a.rouge += r.at("rouge_l").at("f").get<double>();
        a.textbook += r.at("rouge_l_textbook").at("f").get<double>();
        a.mib += r.at("kv_mib").get<double>();
        a.kept += r.at("kept_fraction").get<double>();
    }
    nlohmann::json out = nlohmann::json::array();
    for (const std::string& key : policyKeys) {
        const auto it = acc.find(key);
        if (it == acc.end()) continue;
        const Acc& a = it->second;
        const double n = double(a.samples);
        out.push_back({{"key", key},
                       {"method", a.first.at("method")},
                       {"policy", a.first.at("policy")},
                       {"keep_percent", a.first.at("keep_percent")},
                       {"samples", a.samples},
                       {"answer_tokens", a.tokens},
                       {"ppl", a.tokens > 0 ? std::exp(a.nll / double(a.tokens)) : 0.0},
                       {"rouge_l", a.rouge / n},
                       {"rouge_l_textbook", a.textbook / n},
                       {"kv_mib", a.mib / n},
                       {"kept_fraction", a.kept / n}});
    }
    return out;
}

void writeSummary(const std::string& dir) {
    const std::filesystem::path d(dir);
    const nlohmann::json run = readJsonFile((d / "run.json").string());
    const nlohmann::json summary = summarizeResults(readJsonLines((d / "results.jsonl").string()),
                                                    run.at("policies").get<std::vector<std::string>>());
    writeFileAtomically((d / "summary.json").string(), summary.dump(1) + "\n");
    std::string csv = "key,method,policy,keep_percent,samples,answer_tokens,ppl,rouge_l,rouge_l_textbook,kv_mib,kept_fraction\n";
    for (const nlohmann::json& s : summary) {
        csv += csvText(s["key"]) + "," + csvText(s["method"]) + "," + csvText(s["policy"]) + "," +
               csvNumber(s["keep_percent"]) + "," + std::to_string(s["samples"].get<int>()) + "," +
               std::to_string(s["answer_tokens"].get<int64_t>()) + "," + csvNumber(s["ppl"]) + "," +
               csvNumber(s["rouge_l"]) + "," + csvNumber(s["rouge_l_textbook"]) + "," + csvNumber(s["kv_mib"]) + "," +
               csvNumber(s["kept_fraction"]) + "\n";
    }
    writeFileAtomically((d / "summary.csv").string(), csv);
}

}  // namespace pkv
