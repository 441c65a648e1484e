#include "engine/kv/budget_search.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <functional>
#include <string>

#include "engine/common/error.h"

namespace pkv {

void checkImportance(const std::vector<std::vector<float>>& importance, int64_t promptLength) {
    for (size_t l = 0; l < importance.size(); ++l) {
        const auto& layer = importance[l];
        if (int64_t(layer.size()) != promptLength)
            throw Error("The token importance of layer " + std::to_string(l) + " has " + std::to_string(layer.size()) +
                        " values for a prompt of " + std::to_string(promptLength) + " tokens.");
        for (size_t j = 0; j < layer.size(); ++j)
            if (!std::isfinite(layer[j]) || layer[j] < 0.f)
                throw Error("The token importance of layer " + std::to_string(l) + " at token " + std::to_string(j) +
                            " is " + std::to_string(layer[j]) + ", not a finite non-negative number.");
    }
}

std::vector<double> retentionCurve(const std::vector<float>& importance) {
    std::vector<double> sorted(importance.begin(), importance.end());
    std::sort(sorted.begin(), sorted.end(), std::greater<double>());
    double total = 0;
    for (double v : sorted) total += v;
    if (total == 0.0) {
        std::fill(sorted.begin(), sorted.end(), 1.0);
        total = double(sorted.size());
    }
    std::vector<double> curve(sorted.size());
    double running = 0;
    for (size_t k = 0; k < sorted.size(); ++k) {
        running += sorted[k] / total;
        curve[k] = running;
    }
    return curve;
}

int64_t evictCountAt(const std::vector<double>& curve, double threshold) {
    const int64_t n = int64_t(curve.size());
    const int64_t first = std::lower_bound(curve.begin(), curve.end(), threshold) - curve.begin();
    return std::max<int64_t>(0, n - (first + 1) - (kPrefixStartSize + kPrefixProtectSize));
}

int64_t maxEvictCount(int64_t promptLength) {
    return std::max<int64_t>(0, promptLength - kPrefixStartSize - kPrefixProtectSize);
}

std::vector<int64_t> rescaleCounts(const std::vector<int64_t>& counts, double target, int64_t maxPerLayer) {
    int64_t sum = 0;
    for (int64_t e : counts) sum += e;
    std::vector<int64_t> out(counts.size(), 0);
    if (sum == 0) return out;
    for (size_t l = 0; l < counts.size(); ++l)
        out[l] = std::min(maxPerLayer, int64_t(std::floor(double(counts[l]) * target / double(sum))));
    return out;
}

BudgetSearchResult searchPrefixBudgets(const std::vector<std::vector<float>>& importance, double evictedFraction,
                                       int maxIterations) {
    const int64_t layers = int64_t(importance.size());
    const int64_t n = layers > 0 ? int64_t(importance[0].size()) : 0;
    checkImportance(importance, n);
    if (!(evictedFraction >= 0.0 && evictedFraction <= 1.0))
        throw Error("The evicted fraction must be in [0, 1], not " + std::to_string(evictedFraction) + ".");

    std::vector<std::vector<double>> curves;
    for (const auto& layer : importance) curves.push_back(retentionCurve(layer));
    auto countsAt = [&](double p) {
        std::vector<int64_t> e;
        for (const auto& c : curves) e.push_back(evictCountAt(c, p));
        return e;
    };

    BudgetSearchResult result;
    // Same association as the reference's r * L * N, so the target is the same double.
    result.target = evictedFraction * double(layers) * double(n);
    double lo = 0.0, hi = 1.0, p = 0.0;
    while (lo < hi && result.iterations < maxIterations) {
        p = (lo + hi) / 2;
        ++result.iterations;
        int64_t evicted = 0;
        for (int64_t e : countsAt(p)) evicted += e;
        const double gap = double(evicted) - result.target;
        if (std::abs(gap) < kSearchTolerance) break;
        if (gap < 0)
            hi = p;  // a lower threshold keeps shorter prefixes, so it evicts more
        else
            lo = p;
    }
    result.threshold = p;
    result.evictAtThreshold = countsAt(p);
    result.evict = rescaleCounts(result.evictAtThreshold, result.target, maxEvictCount(n));
    return result;
}

int64_t roundHalfEven(double x) {
    // nearbyint rounds in the current mode; set it explicitly rather than trust the caller's.
    const int saved = std::fegetround();
    std::fesetround(FE_TONEAREST);
    const double r = std::nearbyint(x);
    std::fesetround(saved);
    return int64_t(r);
}

std::vector<int64_t> countsFromFractions(const std::vector<double>& fractions, int64_t promptLength) {
    std::vector<int64_t> counts;
    for (double f : fractions)
        counts.push_back(std::clamp<int64_t>(roundHalfEven(f * double(promptLength)), 0, maxEvictCount(promptLength)));
    return counts;
}

}  // namespace pkv
