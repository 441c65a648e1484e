#include "engine/session.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>

#include "engine/common/error.h"

namespace pkv {
namespace {

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

bool blank(const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

}  // namespace

const char* stopReasonName(StopReason r) {
    switch (r) {
        case StopReason::None: return "none";
        case StopReason::Eos: return "eos";
        case StopReason::MaxTokens: return "max_tokens";
        case StopReason::ContextFull: return "context_full";
        case StopReason::Cancelled: return "cancelled";
    }
    return "?";
}

Session::Session(std::shared_ptr<LlavaModel> model) : model_(std::move(model)) {}

void Session::reset() {
    cache_.reset();
    promptTokens_ = {};
    importance_.clear();
    window_.clear();
    windowRows_ = 0;
    imageBegin_ = imageEnd_ = -1;
    logits_.clear();
    promptLogits_.clear();
    generated_.clear();
    pending_ = -1;
    tokensSeen_ = 0;
    lastPosition_ = -1;
    stream_ = std::make_unique<StreamDetokenizer>(model_->tokenizer());
    decodeSteps_ = 0;
    stats_ = {};
}

void Session::prefill(const std::string& prompt, const RgbImage* image, ImageMode mode) {
    if (!image) return prefillPixels(prompt, nullptr);
    const std::vector<float> pixels = model_->preprocess(*image, mode);
    prefillPixels(prompt, &pixels);
}

void Session::prefillPixels(const std::string& prompt, const std::vector<float>* pixels) {
    cancel_.store(false);
    reset();
    if (blank(prompt)) throw Error("The prompt is empty: type an instruction.");
    const LlavaConfig& cfg = model_->config();
    PromptTokens tokens = tokenizePrompt(model_->tokenizer(), prompt, cfg.imageTokenIndex);
    const int64_t markers = int64_t(tokens.imagePositions.size());
    if (markers > 0 && !pixels) throw Error("The prompt has an <image> marker but no image was given.");
    if (markers == 0 && pixels) throw Error("An image was given but the prompt has no <image> marker to place it.");
    if (markers > 1)
        throw Error("The prompt has " + std::to_string(markers) + " <image> markers; one image per prompt is supported.");
    const int64_t imageTokens = markers * cfg.imageTokens();
    const int64_t n = int64_t(tokens.ids.size()) - markers + imageTokens;
    if (n + 1 > cfg.text.maxPositions)
        throw Error("The prompt needs " + std::to_string(n) + " tokens (" + std::to_string(imageTokens) +
                    " of them for the image) but the model's context holds " + std::to_string(cfg.text.maxPositions) +
                    "; shorten the instruction.");
    try {
        Tensor imageEmbeds;
        if (pixels) {
            const auto t0 = Clock::now();
            imageEmbeds = model_->encodeImage(*pixels);
            stats_.imageEncodeMs = msSince(t0);
            if (cancel_.load()) throw Cancelled();
        }
        runPrompt(tokens, pixels ? &imageEmbeds : nullptr);
    } catch (...) {
        const double encodeMs = stats_.imageEncodeMs;
        reset();
        stats_.imageEncodeMs = encodeMs;
        throw;
    }
}

// Embeds text pieces and splices the image embeddings at the marker, then one causal forward.
void Session::runPrompt(const PromptTokens& tokens, const Tensor* imageEmbeds) {
    const auto t0 = Clock::now();
    LlamaDecoder& dec = model_->decoder();
    Backend& be = model_->backend();
    const int imageId = model_->config().imageTokenIndex;
    const int64_t imageRows = imageEmbeds ? imageEmbeds->rows() : 0;
    const int64_t n = int64_t(tokens.ids.size()) - (imageEmbeds ? 1 : 0) + imageRows;

    Tensor x = be.alloc(n, dec.config().hiddenSize);
    int64_t row = 0;
    std::vector<int> text;
    auto flushText = [&] {
        if (text.empty()) return;
        be.writeRows(dec.embed(text), x, row);
        row += int64_t(text.size());
        text.clear();
    };
    int64_t imageBegin = -1;
    for (int id : tokens.ids) {
        if (id == imageId && imageEmbeds) {
            flushText();
            imageBegin = row;
            be.writeRows(*imageEmbeds, x, row);
            row += imageRows;
        } else {
            text.push_back(id);
        }
    }
    flushText();

    std::vector<int64_t> positions(static_cast<size_t>(n));
    std::iota(positions.begin(), positions.end(), 0);
    auto cache = dec.newCache();
    LlamaDecoder::AttentionRecord record;
    record.importance = true;
    const int64_t afterImage = imageBegin >= 0 ? n - (imageBegin + imageRows) : 0;
    record.windowRows = std::min(n, std::max(kPrefillWindowRows, afterImage));
    Tensor normed = dec.forward(std::move(x), positions, 0, *cache, &record, &cancel_);
    importance_ = std::move(record.perLayerImportance);
    window_ = std::move(record.perLayerWindow);
    windowRows_ = record.windowRows;

    const int64_t vocab = dec.config().vocabSize;
    if (keepAllLogits_) {
        Tensor all = dec.logits(normed, 0, n);
        promptLogits_.resize(size_t(n * vocab));
        be.download(all, promptLogits_.data());
        logits_.assign(promptLogits_.end() - vocab, promptLogits_.end());
    } else {
        Tensor last = dec.logits(normed, n - 1, 1);
        logits_.resize(size_t(vocab));
        be.download(last, logits_.data());
    }
    cache_ = std::move(cache);
    promptTokens_ = tokens;
    tokensSeen_ = n;
    stats_.promptTokens = n;
    stats_.imageTokens = imageRows;
    stats_.prefillMs = msSince(t0);

    imageBegin_ = imageBegin;
    imageEnd_ = imageBegin >= 0 ? imageBegin + imageRows : -1;
    // The first answer token is predicted from the full cache (spec 2.4); compression follows.
    if (policy_) policy_->afterPrefill(*cache_, prefillContext());
}

PrefillContext Session::prefillContext() const {
    PrefillContext ctx;
    ctx.promptLength = stats_.promptTokens;
    ctx.importance = &importance_;
    ctx.window = &window_;
    ctx.windowRows = windowRows_;
    ctx.imageBegin = imageBegin_;
    ctx.imageEnd = imageEnd_;
    return ctx;
}

void Session::applyPolicyToPrefill() {
    if (!policy_) return;
    if (!cache_ || pending_ >= 0 || !generated_.empty() || tokensSeen_ != stats_.promptTokens)
        throw Error("The KV policy can only compress a cache fresh from its prefill.");
    policy_->afterPrefill(*cache_, prefillContext());
}

int64_t Session::nextPosition() const {
    return positionMode_ == PositionMode::Absolute ? tokensSeen_ : cache_->length(0);
}

void Session::feed(int token) {
    if (!cache_) throw Error("There is nothing to continue: run a prefill first.");
    if (tokensSeen_ >= model_->config().text.maxPositions)
        throw Error("The model's context of " + std::to_string(model_->config().text.maxPositions) + " tokens is full.");
    const auto t0 = Clock::now();
    LlamaDecoder& dec = model_->decoder();
    const std::vector<int64_t> position{nextPosition()};
    lastPosition_ = position[0];
    LlamaDecoder::AttentionRecord record;
    record.importance = policy_ && policy_->wantsStepAttention();
    Tensor normed = dec.forward(dec.embed({token}), position, tokensSeen_, *cache_, &record, nullptr);
    Tensor out = dec.logits(normed, 0, 1);
    logits_.resize(size_t(dec.config().vocabSize));
    model_->backend().download(out, logits_.data());
    ++tokensSeen_;
    if (policy_) {
        StepContext ctx;
        ctx.tokensSeen = tokensSeen_;
        ctx.attention = record.importance ? &record.perLayerImportance : nullptr;
        policy_->afterStep(*cache_, ctx);
    }
    stats_.decodeMs += msSince(t0);
    ++decodeSteps_;
}

int Session::pickToken(const GenerateOptions& o) {
    if (o.temperature <= 0.f)  // first maximum, as torch.argmax
        return int(std::max_element(logits_.begin(), logits_.end()) - logits_.begin());
    const float maxLogit = *std::max_element(logits_.begin(), logits_.end());
    std::vector<std::pair<float, int>> probs(logits_.size());
    double sum = 0;
    for (size_t i = 0; i < logits_.size(); ++i) {
        const float p = std::exp((logits_[i] - maxLogit) / o.temperature);
        probs[i] = {p, int(i)};
        sum += p;
    }
    std::sort(probs.begin(), probs.end(), [](auto& a, auto& b) { return a.first > b.first; });
    // Nucleus: the smallest head of the distribution whose mass reaches top-p.
    double kept = 0;
    size_t count = 0;
    while (count < probs.size() && (count == 0 || kept < o.topP * sum)) kept += probs[count++].first;
    double u = std::uniform_real_distribution<double>(0.0, kept)(rng_);
    for (size_t i = 0; i < count; ++i) {
        u -= probs[i].first;
        if (u <= 0) return probs[i].second;
    }
    return probs[count - 1].second;
}

StopReason Session::generate(const GenerateOptions& options, const TokenCallback& onToken) {
    if (!cache_) throw Error("There is nothing to generate from: run a prefill first.");
    cancel_.store(false);
    // Seeded once per answer, so an answer generated in several calls (one token at a time, as
    // the GUI steps two sessions in turn) draws the same tokens as one call.
    if (options.temperature > 0.f && generated_.empty() && pending_ < 0) rng_.seed(options.seed);
    const int eos = model_->tokenizer().eosId();
    const int64_t maxPositions = model_->config().text.maxPositions;
    for (int i = 0; i < options.maxNewTokens; ++i) {
        if (cancel_.load()) return finish(StopReason::Cancelled, onToken);
        if (pending_ >= 0) {
            if (tokensSeen_ >= maxPositions) return finish(StopReason::ContextFull, onToken);
            feed(pending_);
            pending_ = -1;
        }
        const int token = pickToken(options);
        generated_.push_back(token);
        if (generated_.size() == 1)
            stats_.firstTokenMs = stats_.imageEncodeMs + stats_.prefillMs;
        if (onToken) onToken(token, stream_->push(token));
        if (options.stopAtEos && token == eos) return finish(StopReason::Eos, onToken);
        pending_ = token;
    }
    return finish(StopReason::MaxTokens, onToken);
}

// Text held back for an unfinished multi-byte character goes out when the answer stops.
StopReason Session::finish(StopReason reason, const TokenCallback& onToken) {
    const std::string rest = stream_->flush();
    if (onToken && !rest.empty()) onToken(-1, rest);
    return reason;
}

std::string Session::generatedText() const { return model_->tokenizer().decode(generated_); }

std::unique_ptr<Session> Session::fork() const {
    auto s = std::make_unique<Session>(model_);
    if (policy_) s->policy_ = policy_->clone();
    s->positionMode_ = positionMode_;
    if (cache_) s->cache_ = cache_->clone();
    s->promptTokens_ = promptTokens_;
    s->importance_ = importance_;
    s->window_ = window_;
    s->windowRows_ = windowRows_;
    s->imageBegin_ = imageBegin_;
    s->imageEnd_ = imageEnd_;
    s->logits_ = logits_;
    s->keepAllLogits_ = keepAllLogits_;
    s->generated_ = generated_;
    s->pending_ = pending_;
    s->tokensSeen_ = tokensSeen_;
    s->lastPosition_ = lastPosition_;
    s->rng_ = rng_;
    s->stats_ = stats_;
    if (stream_) s->stream_ = std::make_unique<StreamDetokenizer>(*stream_);
    s->decodeSteps_ = decodeSteps_;
    return s;
}

SessionStats Session::stats() const {
    SessionStats s = stats_;
    s.generatedTokens = int64_t(generated_.size());
    s.decodeSteps = decodeSteps_;
    if (cache_) {
        for (int l = 0; l < cache_->numLayers(); ++l) s.layerLengths.push_back(cache_->length(l));
        s.kvBytes = cache_->bytesUsed();
        s.kvBytesPerEntry = cache_->bytesPerEntry();
    }
    return s;
}

}  // namespace pkv
