#pragma once
// PrefixKV's per-layer budgets (spec 2.2): every layer keeps the shortest top-ranked prefix of
// its tokens that holds a share p of its attention mass, with one threshold p for all layers,
// found by bisection so that the layers together evict about r * L * N entries.
//
// Pure functions on importance vectors ([layer][token], spec 2.1), so they can be checked by
// hand. The protected tokens are s = 1 (BOS) and q = 1 (the last prompt token), as in the
// reference's evaluation scripts.
#include <cstdint>
#include <vector>

namespace pkv {

inline constexpr int64_t kPrefixStartSize = 1;    // s: leading tokens always kept
inline constexpr int64_t kPrefixProtectSize = 1;  // q: trailing prompt tokens always kept
inline constexpr double kSearchTolerance = 5.0;   // stop when |E - target| < 5 entries
// The reference bisects until it hits the tolerance; when the target cannot be reached (r so
// large that every layer saturates) its floats shrink to nothing over ~1000 halvings. 100 is
// far beyond the 20-50 iterations a reachable target needs.
inline constexpr int kSearchMaxIterations = 100;

// Throws pkv::Error unless every layer has `promptLength` finite, non-negative values; names
// the layer and token of the first bad one.
void checkImportance(const std::vector<std::vector<float>>& importance, int64_t promptLength);

// The layer's retention curve: C[k] = share of the mass held by its k+1 largest values.
// Computed in double: the total summed in descending order, then a running sum of value/total,
// a fixed order that tests/fixtures/prefixkv_reference.py repeats bit for bit. An all-zero
// layer has no mass to share; it is treated as uniform (C[k] = (k+1)/N) and not divided by 0.
std::vector<double> retentionCurve(const std::vector<float>& importance);

// e_l(p) = max(0, N - (k+1) - (s+q)) with k the first index where C[k] >= p (N when none).
// The protected tokens are subtracted even when they lie in the prefix, as in the reference.
int64_t evictCountAt(const std::vector<double>& curve, double threshold);

// The most entries a layer of N tokens can evict: every candidate in [s, N - q).
int64_t maxEvictCount(int64_t promptLength);

// Rescales counts so they sum to `target` (e * target / sum, in double), floors them, and clips
// each to `maxPerLayer`. A zero sum gives zero counts (the reference would divide by zero;
// the sum is zero only when the target is below the tolerance anyway). The clip matters only
// when the target is unreachable and the rescale would evict more than the candidates.
std::vector<int64_t> rescaleCounts(const std::vector<int64_t>& counts, double target, int64_t maxPerLayer);

struct BudgetSearchResult {
    double target = 0;                        // r * L * N
    double threshold = 0;                     // p at the last bisection step
    int iterations = 0;
    std::vector<int64_t> evictAtThreshold;    // e_l(p)
    std::vector<int64_t> evict;               // after the rescale: what is evicted
};

// The whole online search of spec 2.2 for an evicted fraction r in [0, 1].
BudgetSearchResult searchPrefixBudgets(const std::vector<std::vector<float>>& importance, double evictedFraction,
                                       int maxIterations = kSearchMaxIterations);

// numpy's round(): to the nearest integer, halves to even (2.5 -> 2, 3.5 -> 4).
int64_t roundHalfEven(double x);

// The profile path (spec 2.3): e_l = round_half_even(f_l * N), clipped to the candidates.
std::vector<int64_t> countsFromFractions(const std::vector<double>& fractions, int64_t promptLength);

}  // namespace pkv
