#include "engine/kv/profile.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/common/error.h"

namespace pkv {
namespace {

std::string number(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
}

// `where` names the file (and line) for the person reading the error.
std::vector<double> parseFractions(const std::string& text, const std::string& where, int expectedLayers) {
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_array() || j.empty())
        throw Error(where + " is not a JSON array of per-layer evicted fractions.");
    if (expectedLayers >= 0 && int(j.size()) != expectedLayers)
        throw Error(where + " has " + std::to_string(j.size()) + " per-layer fractions, but the model has " +
                    std::to_string(expectedLayers) + " layers.");
    std::vector<double> fractions;
    for (size_t l = 0; l < j.size(); ++l) {
        if (!j[l].is_number())
            throw Error(where + ": entry " + std::to_string(l) + " (" + j[l].dump() + ") is not a number.");
        const double f = j[l].get<double>();
        if (!(f >= 0.0 && f <= 1.0))
            throw Error(where + ": entry " + std::to_string(l) + " is " + number(f) + ", outside [0, 1].");
        fractions.push_back(f);
    }
    return fractions;
}

std::string readAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("Cannot read the PrefixKV profile " + path + ".");
    std::ostringstream s;
    s << in.rdbuf();
    if (in.bad()) throw Error("Cannot read the PrefixKV profile " + path + ".");
    return s.str();
}

// One line; nlohmann writes the shortest digits that read back to the same double.
std::string line(const std::vector<double>& fractions, const std::string& path) {
    for (size_t l = 0; l < fractions.size(); ++l)
        if (!(fractions[l] >= 0.0 && fractions[l] <= 1.0))
            throw Error("Cannot write " + path + ": entry " + std::to_string(l) + " is " + number(fractions[l]) +
                        ", outside [0, 1].");
    return nlohmann::json(fractions).dump() + "\n";
}

void write(const std::string& path, const std::string& text, std::ios::openmode mode) {
    std::ofstream out(path, std::ios::binary | mode);
    out << text;
    out.flush();
    if (!out) throw Error("Cannot write the PrefixKV profile " + path + ".");
}

}  // namespace

std::vector<double> readProfile(const std::string& path, int expectedLayers) {
    return parseFractions(readAll(path), "The PrefixKV profile " + path, expectedLayers);
}

void writeProfile(const std::string& path, const std::vector<double>& fractions) {
    write(path, line(fractions, path), std::ios::trunc);
}

void appendProfileSample(const std::string& path, const std::vector<double>& fractions) {
    write(path, line(fractions, path), std::ios::app);
}

std::vector<std::vector<double>> readProfileSamples(const std::string& path, int expectedLayers) {
    std::istringstream text(readAll(path));
    std::vector<std::vector<double>> rows;
    std::string row;
    for (int lineNo = 1; std::getline(text, row); ++lineNo) {
        if (row.find_first_not_of(" \t\r") == std::string::npos) continue;
        rows.push_back(parseFractions(row, "Line " + std::to_string(lineNo) + " of " + path, expectedLayers));
    }
    return rows;
}

std::vector<double> aggregateProfile(const std::vector<std::vector<double>>& samples) {
    if (samples.empty()) throw Error("There are no profile samples to aggregate.");
    std::vector<double> mean(samples[0].size(), 0.0);
    for (size_t s = 0; s < samples.size(); ++s) {
        if (samples[s].size() != mean.size())
            throw Error("Profile sample " + std::to_string(s) + " has " + std::to_string(samples[s].size()) +
                        " layers, but sample 0 has " + std::to_string(mean.size()) + ".");
        for (size_t l = 0; l < mean.size(); ++l) mean[l] += samples[s][l];
    }
    for (double& m : mean) m /= double(samples.size());
    return mean;
}

std::string referenceProfileName(const std::string& modelName, double evictedFraction) {
    // Python's str(float): shortest round-trip digits, scientific below 1e-4, always a point.
    char buf[64];
    const bool tiny = evictedFraction != 0.0 && std::abs(evictedFraction) < 1e-4;
    const auto end = std::to_chars(buf, buf + sizeof buf, evictedFraction,
                                   tiny ? std::chars_format::scientific : std::chars_format::fixed).ptr;
    std::string ratio(buf, end);
    if (!tiny && ratio.find('.') == std::string::npos) ratio += ".0";
    return "prefixkv_" + modelName + "_" + ratio + ".json";
}

}  // namespace pkv
