#pragma once
// The engine's one thread. The worker owns the model and every session; requests arrive as
// queued slot calls, results leave as signals. Only requestStop(), requestLoadCancel() and the
// counters may be touched from another thread.
//
// A run prefills once without a policy (the "base" session, kept for re-runs), then forks it:
// the compressed fork gets the policy and compresses its copy of the prefill, the full fork keeps
// everything, and the two are stepped in turn, one token each, so both panes fill together.
#include <QObject>
#include <atomic>
#include <memory>

#include "engine/eval/runner.h"
#include "engine/model/llava.h"
#include "engine/session.h"
#include "engine/tokenizer/stream_detokenizer.h"
#include "ui/engine_types.h"

namespace pkvui {

struct BatchRequest {
    QString datasetFile, imageDir, outDir;
    std::vector<pkv::PolicySpec> policies;
    int maxSamples = 0;
    int maxNewTokens = 64;
};

class EngineWorker : public QObject {
    Q_OBJECT
public:
    explicit EngineWorker(QObject* parent = nullptr);
    ~EngineWorker() override;

    // Thread-safe. Clears both flags; the GUI calls it before it queues a request, so a Stop or
    // Cancel pressed before the worker picks the request up is still honoured.
    void armForRequest();
    // Thread-safe: stop the current run (within one token) or the current batch.
    void requestStop();
    void requestLoadCancel();
    int prefillCount() const { return prefills_.load(); }
    int stepsTaken() const { return steps_.load(); }

public slots:
    void loadModel(const QString& dir, bool demo, int device);
    void run(const pkvui::RunRequest& request);
    // Re-decodes the compressed side of the last run with another policy, from the kept prefill.
    void rerunCompressed(const pkv::PolicySpec& policy);
    void runBatch(const pkvui::BatchRequest& request);

signals:
    void loadProgress(double fraction, const QString& what);
    void modelLoaded(const pkvui::ModelSummary& summary);
    void loadFailed(const QString& sentence);
    void loadCancelled();

    void runStarted(bool compareFull, bool reusedPrefill);
    void prefillDone(const pkvui::PrefillInfo& info);
    void compressed(const pkvui::CompressionInfo& info);
    void stepped(const pkvui::StepUpdate& update);
    void sideFinished(const pkvui::SideResult& result);
    void comparisonReady(const pkvui::Comparison& comparison);
    void runFinished(bool stopped);
    void runFailed(const QString& sentence);

    void batchProgress(int done, int total, double etaSeconds, const QString& stage);
    void batchLog(const QString& line);
    void batchFinished(bool cancelled, const QString& outDir);
    void batchFailed(const QString& sentence);

private:
    struct Lane;
    void decode(const pkv::PolicySpec& policy, bool withFull);
    bool step(Lane& lane);
    void finishLane(Lane& lane);
    void compare(const std::vector<int>& fullIds, const QString& fullText, const QString& compressedText);
    PrefillInfo describePrefill() const;

    std::shared_ptr<pkv::LlavaModel> model_;
    std::unique_ptr<pkv::Session> base_;  // the uncompressed prefill of the last run
    RunRequest last_;
    SideResult lastFull_;
    bool haveFull_ = false;
    std::atomic<bool> stop_{false};
    std::atomic<bool> loadCancel_{false};
    std::atomic<int> prefills_{0};
    std::atomic<int> steps_{0};
    std::atomic<pkv::Session*> active_{nullptr};  // the session a prefill is running on
};

}  // namespace pkvui

Q_DECLARE_METATYPE(pkvui::BatchRequest)
