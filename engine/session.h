#pragma once
// The public API of the engine: one conversation turn over a loaded model. A session is
// synchronous and confined to one thread; only requestCancel() may be called from another.
//
//   auto model = LlavaModel::load(dir);
//   Session s(model);
//   s.prefill(prompt, &image);               // image encode + prompt forward
//   s.generate(options, onToken);            // streams tokens until EOS / max / cancel
//   auto full = s.fork();                    // an independent copy of the state and cache
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/io/image.h"
#include "engine/kv/policy.h"
#include "engine/model/llava.h"
#include "engine/tokenizer/prompt.h"
#include "engine/tokenizer/stream_detokenizer.h"

namespace pkv {

// The RoPE position given to each new token once layers hold fewer entries than tokens seen.
enum class PositionMode {
    Absolute,         // the token's true index in the sequence (default)
    LayerZeroLength,  // the reference's behaviour: layer 0's cache length (spec 1.7)
};

struct GenerateOptions {
    int maxNewTokens = 256;
    bool stopAtEos = true;
    float temperature = 0.f;  // 0 = greedy
    float topP = 1.f;
    uint64_t seed = 0;        // applied when an answer starts; later calls continue its stream
};

enum class StopReason { None, Eos, MaxTokens, ContextFull, Cancelled };
const char* stopReasonName(StopReason r);

struct SessionStats {
    int64_t promptTokens = 0;      // N, image tokens included
    int64_t imageTokens = 0;
    int64_t generatedTokens = 0;
    double imageEncodeMs = 0;
    double prefillMs = 0;          // language-model forward over the prompt
    double firstTokenMs = 0;       // from prefill start to the first generated token
    double decodeMs = 0;           // time spent in decode forwards
    int64_t decodeSteps = 0;       // decode forwards run (the first token needs none)
    double decodeTokensPerSecond() const { return decodeMs > 0 ? 1000.0 * double(decodeSteps) / decodeMs : 0; }
    std::vector<int64_t> layerLengths;
    int64_t kvBytes = 0;
    int64_t kvBytesPerEntry = 0;
};

// Called once per generated token with the text it completes (possibly ""), and once more with
// id -1 when the answer stops while a multi-byte character is still held back.
using TokenCallback = std::function<void(int id, const std::string& text)>;

class Session {
public:
    explicit Session(std::shared_ptr<LlavaModel> model);

    LlavaModel& model() { return *model_; }
    void setPolicy(std::unique_ptr<KvPolicy> policy) { policy_ = std::move(policy); }
    // Compresses a cache fresh from its prefill with the policy set since: the side-by-side view
    // prefills once without a policy, forks, and compresses only the fork. Throws pkv::Error once
    // anything was generated.
    void applyPolicyToPrefill();
    KvPolicy* policy() { return policy_.get(); }
    void setPositionMode(PositionMode m) { positionMode_ = m; }

    // Tokenises `prompt` (already in its chat template; "<image>" marks where the image goes),
    // encodes the image and runs the prompt forward. Throws pkv::Error: empty prompt, marker
    // without image or image without marker, prompt longer than the context; pkv::Cancelled.
    // A failed or cancelled prefill leaves the session empty.
    void prefill(const std::string& prompt, const RgbImage* image, ImageMode mode = ImageMode::Pad);
    // The same from already preprocessed pixels (CHW), or none for a text-only prompt.
    void prefillPixels(const std::string& prompt, const std::vector<float>* pixels);

    // Generates until EOS (if asked), maxNewTokens, the context limit, or cancel.
    StopReason generate(const GenerateOptions& options, const TokenCallback& onToken);
    // Feeds one given token (teacher forcing) and returns nothing; logits() then predicts the next.
    void feed(int token);
    // Next-token logits after the last prefill/feed.
    const std::vector<float>& logits() const { return logits_; }
    // All-position logits of the last prefill, when requested before it (tests, PPL).
    void keepAllPromptLogits(bool keep) { keepAllLogits_ = keep; }
    const std::vector<float>& promptLogits() const { return promptLogits_; }

    std::unique_ptr<Session> fork() const;
    void requestCancel() { cancel_.store(true); }
    void clearCancel() { cancel_.store(false); }
    const std::atomic<bool>& cancelFlag() const { return cancel_; }

    bool hasPrefill() const { return cache_ != nullptr; }
    const PromptTokens& prompt() const { return promptTokens_; }
    const std::vector<int>& generated() const { return generated_; }
    std::string generatedText() const;
    const std::vector<std::vector<float>>& importance() const { return importance_; }
    const std::vector<std::vector<float>>& attentionWindow() const { return window_; }
    int64_t attentionWindowRows() const { return windowRows_; }
    // Rows [first, second) of the prompt that hold the image embeddings; (-1, -1) without an image.
    std::pair<int64_t, int64_t> imageSpan() const { return {imageBegin_, imageEnd_}; }
    const KvCache* cache() const { return cache_.get(); }
    SessionStats stats() const;
    int64_t tokensSeen() const { return tokensSeen_; }
    // The RoPE position the last fed token was given (see PositionMode); -1 before any feed.
    int64_t lastPosition() const { return lastPosition_; }

private:
    int pickToken(const GenerateOptions& o);
    StopReason finish(StopReason reason, const TokenCallback& onToken);
    void runPrompt(const PromptTokens& tokens, const Tensor* imageEmbeds);
    int64_t nextPosition() const;
    PrefillContext prefillContext() const;
    void reset();

    std::shared_ptr<LlavaModel> model_;
    std::unique_ptr<KvPolicy> policy_;
    PositionMode positionMode_ = PositionMode::Absolute;
    std::unique_ptr<KvCache> cache_;
    PromptTokens promptTokens_;
    std::vector<std::vector<float>> importance_;
    std::vector<std::vector<float>> window_;  // [layer][windowRows x N], see PrefillContext
    int64_t windowRows_ = 0;
    int64_t imageBegin_ = -1, imageEnd_ = -1;  // image rows [begin, end) of the prompt
    std::vector<float> logits_, promptLogits_;
    bool keepAllLogits_ = false;
    std::vector<int> generated_;
    int pending_ = -1;            // a generated token not yet fed to the model
    int64_t tokensSeen_ = 0;      // T: prompt tokens + fed tokens
    int64_t lastPosition_ = -1;
    std::mt19937_64 rng_;
    std::atomic<bool> cancel_{false};
    SessionStats stats_;
    std::unique_ptr<StreamDetokenizer> stream_;  // text of the answer as tokens arrive
    int64_t decodeSteps_ = 0;
};

}  // namespace pkv
