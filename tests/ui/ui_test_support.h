#pragma once
// What the GUI tests share: the tiny fixture model, a prompt built as the worker builds it, and a
// plain engine run to compare the worker's streams with.
#include <QSignalSpy>
#include <QThread>
#include <QTest>
#include <functional>

#include "common/paths.h"
#include "engine/kv/policy_factory.h"
#include "engine/session.h"
#include "engine/tokenizer/prompt.h"
#include "ui/engine_worker.h"

namespace uitest {

inline QString tinyModelDir() { return pkvtest::fixturesDir() + "/models/tiny-gqa-f32"; }
// An engine worker on its own thread, as the window runs it; deleted when the thread finishes.
inline pkvui::EngineWorker* startWorker(QThread& thread) {
    pkvui::registerEngineTypes();
    auto* worker = new pkvui::EngineWorker;
    worker->moveToThread(&thread);
    QObject::connect(&thread, &QThread::finished, worker, &QObject::deleteLater);
    thread.start();
    return worker;
}

inline QString fixtureImagePath() { return pkvtest::fixturesDir() + "/images/model_input.png"; }

// A run of the engine without the worker: the policy set before the prefill (so the Session
// compresses inside prefill), greedy, recording every layer's cache length at every token.
struct DirectRun {
    std::vector<int> ids;
    std::vector<std::vector<int64_t>> lengths;  // [step][layer]
};

inline DirectRun runDirect(const std::shared_ptr<pkv::LlavaModel>& model, const std::string& instruction,
                           const pkv::RgbImage* image, const pkv::PolicySpec* policy, int maxNew, bool stopAtEos) {
    pkv::Session s(model);
    if (policy) s.setPolicy(pkv::makePolicy(*policy, model->config().text.numLayers));
    s.prefill(pkv::applyChatTemplate(pkv::ChatTemplate::LlavaV1, instruction, image != nullptr), image);
    pkv::GenerateOptions o;
    o.maxNewTokens = maxNew;
    o.stopAtEos = stopAtEos;
    DirectRun r;
    s.generate(o, [&](int id, const std::string&) {
        if (id < 0) return;
        std::vector<int64_t> l;
        for (int k = 0; k < s.cache()->numLayers(); ++k) l.push_back(s.cache()->length(k));
        r.lengths.push_back(l);
    });
    r.ids = s.generated();
    return r;
}

inline pkv::PolicySpec prefixKv(double keep) {
    pkv::PolicySpec p;
    p.method = "prefixkv";
    p.budget = pkv::Budget::keptPercent(keep);
    return p;
}

}  // namespace uitest
