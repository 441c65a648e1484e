#include "engine/eval/perplexity.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "engine/common/error.h"

namespace pkv {

double tokenNll(const std::vector<float>& logits, int target) {
    if (target < 0 || size_t(target) >= logits.size())
        throw Error("Token id " + std::to_string(target) + " is outside the model's vocabulary of " +
                    std::to_string(logits.size()) + ".");
    const double maxLogit = double(*std::max_element(logits.begin(), logits.end()));
    double sum = 0;
    for (float v : logits) sum += std::exp(double(v) - maxLogit);
    return -(double(logits[size_t(target)]) - maxLogit - std::log(sum));
}

std::vector<double> teacherForcedNll(Session& session, const std::vector<int>& answer, const std::atomic<bool>* cancel) {
    if (!session.hasPrefill()) throw Error("There is nothing to score: run a prefill first.");
    if (!session.generated().empty() || session.tokensSeen() != session.stats().promptTokens)
        throw Error("Teacher-forced scoring needs a session fresh from its prefill.");
    if (answer.empty()) throw Error("The answer to score is empty.");
    const int64_t context = session.model().config().text.maxPositions;
    const int64_t needed = session.tokensSeen() + int64_t(answer.size()) - 1;
    if (needed > context)
        throw Error("The prompt and the answer need " + std::to_string(needed) + " positions but the model's context holds " +
                    std::to_string(context) + ".");
    std::vector<double> nll;
    nll.reserve(answer.size());
    nll.push_back(tokenNll(session.logits(), answer[0]));
    for (size_t k = 1; k < answer.size(); ++k) {
        if (cancel && cancel->load()) throw Cancelled();
        session.feed(answer[k - 1]);
        nll.push_back(tokenNll(session.logits(), answer[k]));
    }
    return nll;
}

void PerplexityPool::add(const std::vector<double>& nll) {
    for (double v : nll) sum_ += v;
    tokens_ += int64_t(nll.size());
}

void PerplexityPool::add(double nllSum, int64_t tokens) {
    sum_ += nllSum;
    tokens_ += tokens;
}

double PerplexityPool::perplexity() const {
    return tokens_ > 0 ? std::exp(sum_ / double(tokens_)) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace pkv
