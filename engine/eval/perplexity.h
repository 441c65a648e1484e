#pragma once
// Perplexity of a given answer, teacher-forced, as the reference evaluation measures it
// (spec 4.2): the first answer token is scored from the prefill's logits (full cache), the policy
// compresses, then each answer token is fed and the next one scored, the policy running after
// every step. Samples pool their tokens: PPL = exp(total NLL / total tokens).
#include <atomic>
#include <cstdint>
#include <vector>

#include "engine/session.h"

namespace pkv {

// -log softmax(logits)[target], in double.
double tokenNll(const std::vector<float>& logits, int target);

// Scores `answer` (tokenizer.encode(answer): no BOS, no EOS) on a session that has just been
// prefilled, with its policy (if any) already set. Feeds answer[0 .. n-2]; the session is left
// after those feeds. Throws pkv::Error when the session has no prefill or has generated already,
// the answer is empty, or prompt + answer does not fit the context; pkv::Cancelled when `cancel`
// is set (checked between tokens).
std::vector<double> teacherForcedNll(Session& session, const std::vector<int>& answer,
                                     const std::atomic<bool>* cancel = nullptr);

// Micro-averaged perplexity over all tokens of all samples added.
class PerplexityPool {
public:
    void add(const std::vector<double>& nll);
    void add(double nllSum, int64_t tokens);
    double nllSum() const { return sum_; }
    int64_t tokens() const { return tokens_; }
    // exp(mean NLL); NaN when nothing was added.
    double perplexity() const;

private:
    double sum_ = 0;
    int64_t tokens_ = 0;
};

}  // namespace pkv
