#pragma once
// The offline step of PrefixKV (spec 2.3): run the online search on calibration samples and
// average the per-layer evicted fractions into a profile (the reference's conf file).
#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/kv/budget.h"
#include "engine/session.h"

namespace pkv {

// One row of per-layer evicted fractions f_l = e_l / N per sample, in dataset order: the line the
// reference's --profile run appends to its samples/*.jsonl. maxSamples 0 = all. onSample(i, n) is
// called before each sample. Throws pkv::Cancelled when `cancel` is set between samples.
std::vector<std::vector<double>> profileSamples(std::shared_ptr<LlavaModel> model, const Dataset& data,
                                                const Budget& budget, int maxSamples, ImageMode mode,
                                                const std::function<void(int, int)>& onSample = {},
                                                const std::atomic<bool>* cancel = nullptr);

}  // namespace pkv
