#pragma once
// How much KV cache to keep. Users speak of the paper's budget, "KV kept b%", or give an
// absolute number of tokens per layer. The reference code speaks of the evicted fraction
// r = 1 - b (its --ratio, spec 0.1). Everything in engine/kv works with r.
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>

#include "engine/common/error.h"

namespace pkv {

class Budget {
public:
    // b in (0, 100]. r is computed as (100 - b) / 100, not 1 - b/100: for a whole b this gives
    // the double the reference gets from the literal (b = 70 gives 0.3, not 0.30000000000000004).
    // That matters because r * L * N is the search target and the profile file name.
    static Budget keptPercent(double b) {
        if (!std::isfinite(b) || b <= 0.0 || b > 100.0)
            throw Error("The KV budget must be a percentage kept in (0, 100], not " + format(b) + ".");
        return Budget(Kind::Fraction, (100.0 - b) / 100.0, 0);
    }
    // The reference's --ratio: the fraction evicted, r in [0, 1).
    static Budget fromEvictedFraction(double r) {
        if (!std::isfinite(r) || r < 0.0 || r >= 1.0)
            throw Error("The evicted fraction must be in [0, 1), not " + format(r) + ".");
        return Budget(Kind::Fraction, r, 0);
    }
    // On average `tokens` entries kept per layer, whatever the prompt length.
    static Budget keptTokens(int64_t tokens) {
        if (tokens < 1)
            throw Error("The KV budget must keep at least 1 token per layer, not " + std::to_string(tokens) + ".");
        return Budget(Kind::Tokens, 0.0, tokens);
    }

    bool isTokenCount() const { return kind_ == Kind::Tokens; }
    int64_t tokens() const { return tokens_; }
    // r for a prompt of N tokens; an absolute budget at least as large as N evicts nothing.
    double evictedFraction(int64_t promptLength) const {
        if (kind_ == Kind::Fraction) return r_;
        if (promptLength <= tokens_) return 0.0;
        return double(promptLength - tokens_) / double(promptLength);
    }
    // Budget as a person reads it: "50% kept" or "128 tokens kept".
    std::string describe() const {
        if (kind_ == Kind::Tokens) return std::to_string(tokens_) + " tokens kept";
        return format(100.0 * (1.0 - r_)) + "% kept";
    }

private:
    enum class Kind { Fraction, Tokens };
    Budget(Kind k, double r, int64_t tokens) : kind_(k), r_(r), tokens_(tokens) {}
    static std::string format(double v) {
        std::ostringstream s;
        s << v;
        return s.str();
    }

    Kind kind_;
    double r_;
    int64_t tokens_;
};

}  // namespace pkv
