#pragma once
// PrefixKV profiles in the reference's formats (spec 2.3):
//  - a conf file, confs/prefixkv_<model>_<r>.json: one JSON array of L per-layer EVICTED
//    fractions f_l in [0, 1];
//  - a sample log, samples/prefixkv_<model>_<r>.jsonl: one such array per line, one line per
//    calibration sample, written by an online run.
// The reference does not ship the step from samples to conf; the shipped confs fit a per-layer
// arithmetic mean of the sample rows, so that is what aggregateProfile computes.
#include <string>
#include <vector>

namespace pkv {

// Reads a conf file. expectedLayers < 0 accepts any non-empty length. Throws pkv::Error naming
// the file (and the entry) when it cannot be read, is not a JSON array of numbers, has the wrong
// number of layers, or holds a value outside [0, 1].
std::vector<double> readProfile(const std::string& path, int expectedLayers = -1);
// Writes a conf file (one line, doubles that read back exactly). Throws pkv::Error when the
// file cannot be written or a value is outside [0, 1].
void writeProfile(const std::string& path, const std::vector<double>& fractions);

// Appends one sample line to a .jsonl log, creating it if needed.
void appendProfileSample(const std::string& path, const std::vector<double>& fractions);
// Reads every line of a .jsonl log (blank lines skipped); errors name the file and line.
std::vector<std::vector<double>> readProfileSamples(const std::string& path, int expectedLayers = -1);

// Per-layer arithmetic mean of sample rows (summed in row order). Throws pkv::Error when there
// are no rows or they differ in length.
std::vector<double> aggregateProfile(const std::vector<std::vector<double>>& samples);

// The reference's conf name for a model folder name and evicted fraction: the ratio as Python's
// str(float) writes it, e.g. ("llava-v1.5-7b", 0.8) -> "prefixkv_llava-v1.5-7b_0.8.json".
std::string referenceProfileName(const std::string& modelName, double evictedFraction);

}  // namespace pkv
