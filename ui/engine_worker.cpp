#include "ui/engine_worker.h"

#include <tuple>

#include <new>

#include "engine/common/error.h"
#include "engine/common/openblas_core.h"
#include "engine/eval/perplexity.h"
#include "engine/eval/rouge.h"
#include "engine/io/model_folder.h"
#include "engine/tokenizer/prompt.h"
#include "ui/model_summary.h"

namespace pkvui {

void registerEngineTypes() {
    qRegisterMetaType<RunRequest>();
    qRegisterMetaType<PrefillInfo>();
    qRegisterMetaType<CompressionInfo>();
    qRegisterMetaType<StepUpdate>();
    qRegisterMetaType<SideResult>();
    qRegisterMetaType<Comparison>();
    qRegisterMetaType<ModelSummary>();
    qRegisterMetaType<pkv::PolicySpec>();
    qRegisterMetaType<BatchRequest>();
}

struct EngineWorker::Lane {
    Side side = Side::Compressed;
    std::unique_ptr<pkv::Session> session;
    std::unique_ptr<pkv::StreamDetokenizer> detok;
    std::string text;
    int steps = 0;
    bool done = false;
    pkv::StopReason reason = pkv::StopReason::None;
};

namespace {

QString q(const std::string& s) { return QString::fromStdString(s); }

std::vector<int> withoutEos(std::vector<int> ids, int eos) {
    if (!ids.empty() && ids.back() == eos) ids.pop_back();
    return ids;
}

}  // namespace

EngineWorker::EngineWorker(QObject* parent) : QObject(parent) { registerEngineTypes(); }
EngineWorker::~EngineWorker() = default;

void EngineWorker::armForRequest() {
    stop_.store(false);
    loadCancel_.store(false);
}

void EngineWorker::requestStop() {
    stop_.store(true);
    if (pkv::Session* s = active_.load()) s->requestCancel();
}

void EngineWorker::requestLoadCancel() { loadCancel_.store(true); }

void EngineWorker::loadModel(const QString& dir, bool demo, int device) {
    try {
        pkv::LoadOptions options;
        options.device = pkv::DeviceChoice(device);
        options.kvDtype = kvDtypeSetting();
        options.weights = weightStorageSetting();
        options.cancel = &loadCancel_;
        options.progress = [this](double fraction, const std::string& what) { emit loadProgress(fraction, q(what)); };
        auto model = pkv::LlavaModel::load(dir.toStdString(), options);
        // A new model invalidates the last run's prefill; the old model goes only on success.
        base_.reset();
        haveFull_ = false;
        model_ = std::move(model);
        ModelSummary s = summarizeFolder(model_->folder(), demo, model_->kvDtype());
        s.device = q(model_->backend().name());
        s.deviceReason = q(model_->deviceReason());
        s.blas = q(pkv::openBlasCoreDescription());
        s.weightsNote = q(model_->weightsNote());
        emit modelLoaded(s);
    } catch (const pkv::Cancelled&) {
        emit loadCancelled();
    } catch (const pkv::Error& e) {
        emit loadFailed(q(e.what()));
    } catch (const std::bad_alloc&) {
        emit loadFailed("Out of memory: the model does not fit in this machine's memory.");
    }
}

PrefillInfo EngineWorker::describePrefill() const {
    PrefillInfo info;
    const pkv::SessionStats st = base_->stats();
    const pkv::Tokenizer& tok = model_->tokenizer();
    const int imageId = model_->config().imageTokenIndex;
    info.promptTokens = st.promptTokens;
    std::tie(info.imageBegin, info.imageEnd) = base_->imageSpan();
    for (int id : base_->prompt().ids) {
        if (id == imageId && st.imageTokens > 0) {
            for (int64_t k = 0; k < st.imageTokens; ++k) info.tokenTexts << QString("<image %1>").arg(k);
        } else {
            info.tokenTexts << q(tok.kind(id) == pkv::Tokenizer::Kind::Piece ? tok.decode({id}) : tok.tokenText(id));
        }
    }
    info.importance = base_->importance();
    info.imageEncodeMs = st.imageEncodeMs;
    info.prefillMs = st.prefillMs;
    info.kvBytesPerEntry = st.kvBytesPerEntry;
    info.prefillCount = prefills_.load();
    return info;
}

void EngineWorker::run(const RunRequest& request) {
    if (!model_) {
        emit runFailed("No model is loaded yet: open a model folder or wait for the demo model.");
        return;
    }
    emit runStarted(request.compareFull, false);
    try {
        active_.store(nullptr);
        base_.reset();
        haveFull_ = false;
        const bool withImage = request.image != nullptr;
        const std::string prompt = pkv::applyChatTemplate(pkv::ChatTemplate::LlavaV1, request.instruction.toStdString(),
                                                          withImage, pkv::ImagePlacement::Before);
        auto base = std::make_unique<pkv::Session>(model_);
        base->setPositionMode(request.positionMode);
        active_.store(base.get());
        ++prefills_;
        base->prefill(prompt, request.image.get(), request.imageMode);
        active_.store(nullptr);
        if (stop_.load()) throw pkv::Cancelled();
        base_ = std::move(base);
        last_ = request;
        emit prefillDone(describePrefill());
        decode(request.policy, request.compareFull);
    } catch (const pkv::Cancelled&) {
        active_.store(nullptr);
        emit runFinished(true);
    } catch (const pkv::Error& e) {
        active_.store(nullptr);
        emit runFailed(q(e.what()));
    } catch (const std::bad_alloc&) {
        active_.store(nullptr);
        emit runFailed("Out of memory while answering: try a smaller image or fewer new tokens.");
    }
}

void EngineWorker::rerunCompressed(const pkv::PolicySpec& policy) {
    if (!base_) {
        emit runFailed("There is no previous answer to re-run: press Generate first.");
        return;
    }
    emit runStarted(false, true);
    try {
        last_.policy = policy;
        decode(policy, false);
    } catch (const pkv::Cancelled&) {
        emit runFinished(true);
    } catch (const pkv::Error& e) {
        emit runFailed(q(e.what()));
    } catch (const std::bad_alloc&) {
        emit runFailed("Out of memory while answering: try a smaller budget or fewer new tokens.");
    }
}

void EngineWorker::decode(const pkv::PolicySpec& policy, bool withFull) {
    const int layers = model_->config().text.numLayers;
    Lane comp;
    comp.side = Side::Compressed;
    comp.session = base_->fork();
    comp.session->setPolicy(pkv::makePolicy(policy, layers));
    comp.session->applyPolicyToPrefill();
    comp.detok = std::make_unique<pkv::StreamDetokenizer>(model_->tokenizer());
    CompressionInfo ci;
    ci.policy = q(pkv::describePolicy(policy));
    ci.layerBudget = comp.session->stats().layerLengths;
    ci.promptTokens = comp.session->stats().promptTokens;
    emit compressed(ci);

    Lane full;
    full.side = Side::Full;
    full.done = !withFull;
    if (withFull) {
        full.session = base_->fork();
        full.detok = std::make_unique<pkv::StreamDetokenizer>(model_->tokenizer());
    }
    bool stopped = false;
    while (!comp.done || !full.done) {
        if (stop_.load()) {
            stopped = true;
            break;
        }
        if (!comp.done) step(comp);
        if (stop_.load()) {
            stopped = true;
            break;
        }
        if (!full.done) step(full);
    }
    if (stopped) {
        if (!comp.done) comp.reason = pkv::StopReason::Cancelled;
        if (withFull && !full.done) full.reason = pkv::StopReason::Cancelled;
    }
    finishLane(comp);
    if (withFull) finishLane(full);
    if (!stopped) {
        if (withFull) {
            lastFull_.ids = full.session->generated();
            lastFull_.text = q(full.text);
            haveFull_ = true;
        }
        if (haveFull_) compare(lastFull_.ids, lastFull_.text, q(comp.text));
    }
    emit runFinished(stopped);
}

bool EngineWorker::step(Lane& lane) {
    pkv::GenerateOptions o;
    o.maxNewTokens = 1;
    o.stopAtEos = last_.stopAtEos;
    o.temperature = last_.temperature;
    o.topP = last_.topP;
    o.seed = last_.seed;
    const int eos = model_->tokenizer().eosId();
    int id = -1;
    std::string piece;
    // One token per call: the session keeps its pending token between calls, so the sequence is
    // the one a single generate() would produce. The text comes from this lane's own stream,
    // since each call ends the session's.
    const pkv::StopReason r = lane.session->generate(o, [&](int token, const std::string&) {
        if (token < 0) return;
        id = token;
        if (!(o.stopAtEos && token == eos)) piece = lane.detok->push(token);
    });
    if (id >= 0) {
        ++steps_;
        StepUpdate u;
        u.side = lane.side;
        u.step = lane.steps++;
        u.tokenId = id;
        u.text = q(piece);
        u.tokenText = q(model_->tokenizer().decode({id}));
        lane.text += piece;
        const pkv::SessionStats st = lane.session->stats();
        u.layerLengths = st.layerLengths;
        if (lane.side == Side::Compressed) {
            const pkv::KvCache* cache = lane.session->cache();
            for (int l = 0; l < cache->numLayers(); ++l) u.kept.push_back(cache->tokenIndices(l));
        }
        u.tokensSeen = lane.session->tokensSeen();
        u.kvBytes = st.kvBytes;
        u.tokensPerSecond = st.decodeTokensPerSecond();
        u.firstTokenMs = st.firstTokenMs;
        emit stepped(u);
    }
    if (r == pkv::StopReason::Eos || r == pkv::StopReason::ContextFull) {
        lane.done = true;
        lane.reason = r;
    } else if (lane.steps >= last_.maxNewTokens) {
        lane.done = true;
        lane.reason = pkv::StopReason::MaxTokens;
    }
    return id >= 0;
}

void EngineWorker::finishLane(Lane& lane) {
    const std::string rest = lane.detok->flush();
    if (!rest.empty()) {
        lane.text += rest;
        StepUpdate u;
        u.side = lane.side;
        u.step = -1;  // text only, no token
        u.text = q(rest);
        emit stepped(u);
    }
    SideResult r;
    r.side = lane.side;
    r.text = q(lane.text);
    r.ids = lane.session->generated();
    r.reason = lane.reason;
    r.stats = lane.session->stats();
    emit sideFinished(r);
}

void EngineWorker::compare(const std::vector<int>& fullIds, const QString& fullText, const QString& compressedText) {
    Comparison c;
    QStringList notes;
    try {
        c.rougeReference = pkv::rougeLReference(compressedText.toStdString(), fullText.toStdString()).f;
        c.rougeTextbook = pkv::rougeLTextbook(compressedText.toStdString(), fullText.toStdString()).f;
    } catch (const pkv::Error& e) {
        notes << QString("ROUGE-L: %1").arg(q(e.what()));
    }
    const std::vector<int> answer = withoutEos(fullIds, model_->tokenizer().eosId());
    if (answer.empty()) {
        notes << "PPL: the full-cache answer is empty, there is nothing to score.";
    } else {
        // The full answer scored teacher-forced, once under the compressed cache and once under
        // the full one, each from a fresh fork of the same prefill.
        auto comp = base_->fork();
        comp->setPolicy(pkv::makePolicy(last_.policy, model_->config().text.numLayers));
        comp->applyPolicyToPrefill();
        pkv::PerplexityPool pc, pf;
        pc.add(pkv::teacherForcedNll(*comp, answer, &stop_));
        auto full = base_->fork();
        pf.add(pkv::teacherForcedNll(*full, answer, &stop_));
        c.pplCompressed = pc.perplexity();
        c.pplFull = pf.perplexity();
        c.scoredTokens = pc.tokens();
    }
    c.valid = true;
    c.note = notes.join(' ');
    emit comparisonReady(c);
}

void EngineWorker::runBatch(const BatchRequest& request) {
    if (!model_) {
        emit batchFailed("No model is loaded yet: open a model folder first.");
        return;
    }
    try {
        const pkv::Dataset data = pkv::loadDataset(request.datasetFile.toStdString(), request.imageDir.toStdString(), true);
        pkv::EvalOptions options;
        options.policies = request.policies;
        options.maxSamples = request.maxSamples;
        options.maxNewTokens = request.maxNewTokens;
        options.cancel = &stop_;
        std::string lastStage;
        int lastSample = -1;
        options.onProgress = [&](const pkv::EvalProgress& p) {
            emit batchProgress(p.done, p.total, p.etaSeconds, q(p.stage));
            if (p.sample != lastSample || p.stage != lastStage) {
                lastSample = p.sample;
                lastStage = p.stage;
                if (!p.stage.empty())
                    emit batchLog(QString("sample %1/%2: %3").arg(p.sample + 1).arg(p.samples).arg(q(p.stage)));
            }
        };
        const pkv::EvalReport report = pkv::runEvaluation(model_, data, request.outDir.toStdString(), options);
        emit batchLog(QString("%1 results written, %2 already there; %3 prefills")
                          .arg(report.resultsWritten).arg(report.resultsSkipped).arg(report.prefills));
        emit batchFinished(report.cancelled, request.outDir);
    } catch (const pkv::Cancelled&) {
        emit batchFinished(true, request.outDir);
    } catch (const pkv::Error& e) {
        emit batchFailed(q(e.what()));
    } catch (const std::bad_alloc&) {
        emit batchFailed("Out of memory during the evaluation.");
    }
}

}  // namespace pkvui
