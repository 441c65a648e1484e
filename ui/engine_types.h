#pragma once
// The values that travel between the GUI thread and the engine worker through queued signals.
// Each is a plain copyable struct; nothing here points into engine state the worker may change.
#include <QMetaType>
#include <QString>
#include <QStringList>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/io/image.h"
#include "engine/kv/policy_factory.h"
#include "engine/session.h"

namespace pkvui {

enum class Side { Compressed = 0, Full = 1 };

struct RunRequest {
    QString instruction;
    std::shared_ptr<const pkv::RgbImage> image;  // null: a text-only question
    QString imageName;
    pkv::PolicySpec policy;
    bool compareFull = true;  // also stream the full-cache answer from the same prefill
    int maxNewTokens = 128;
    bool stopAtEos = true;
    float temperature = 0.f;  // 0: greedy; both sides draw from the same seed
    float topP = 1.f;
    quint64 seed = 0;
    pkv::PositionMode positionMode = pkv::PositionMode::Absolute;
    pkv::ImageMode imageMode = pkv::ImageMode::Pad;
};

// What the prompt looks like along the token axis, sent once per prefill.
struct PrefillInfo {
    int64_t promptTokens = 0;
    int64_t imageBegin = -1, imageEnd = -1;    // image rows [begin, end), -1 without an image
    QStringList tokenTexts;                    // one label per prompt row
    std::vector<std::vector<float>> importance;  // [layer][promptTokens]
    double imageEncodeMs = 0;
    double prefillMs = 0;
    int64_t kvBytesPerEntry = 0;
    int prefillCount = 0;                      // prefills run by the worker so far
};

// The compressed fork right after its policy compressed the prefill.
struct CompressionInfo {
    QString policy;                      // describePolicy()
    std::vector<int64_t> layerBudget;    // entries each layer kept
    int64_t promptTokens = 0;
};

// One generated token of one side, with the cache it left behind.
struct StepUpdate {
    Side side = Side::Compressed;
    int step = 0;                        // 0 = the first answer token
    int tokenId = -1;
    QString text;                        // text this token completes (may be empty)
    QString tokenText;                   // the token on its own, for axis labels
    std::vector<int64_t> layerLengths;
    std::vector<std::vector<int64_t>> kept;  // tokenIndices per layer (compressed side only)
    int64_t tokensSeen = 0;
    int64_t kvBytes = 0;
    double tokensPerSecond = 0;
    double firstTokenMs = 0;
};

struct SideResult {
    Side side = Side::Compressed;
    QString text;
    std::vector<int> ids;
    pkv::StopReason reason = pkv::StopReason::None;
    pkv::SessionStats stats;
};

struct Comparison {
    bool valid = false;
    QString note;                        // why a value is missing
    double rougeReference = 0, rougeTextbook = 0;
    double pplCompressed = 0, pplFull = 0;
    int64_t scoredTokens = 0;
};

struct ModelSummary {
    QString dir;
    bool demo = false;
    QString device, deviceReason;
    QString blas;  // which OpenBLAS kernels the CPU backend runs, and who chose them
    int layers = 0, heads = 0, kvHeads = 0, imageTokens = 0, context = 0;
    int64_t weightBytes = 0;
    int64_t kvBytesPerToken = 0;
    QString kvDtype;  // "F32" or "F16": what the cache stores
    bool weightsInMemory = false;  // read into the process (WeightStorage::Memory), else mapped
    QString weightsNote;           // why they are not where the setting asked ("" when they are)
    int64_t estimatedBytes = 0;
};

void registerEngineTypes();

}  // namespace pkvui

Q_DECLARE_METATYPE(pkvui::RunRequest)
Q_DECLARE_METATYPE(pkvui::PrefillInfo)
Q_DECLARE_METATYPE(pkvui::CompressionInfo)
Q_DECLARE_METATYPE(pkvui::StepUpdate)
Q_DECLARE_METATYPE(pkvui::SideResult)
Q_DECLARE_METATYPE(pkvui::Comparison)
Q_DECLARE_METATYPE(pkvui::ModelSummary)
Q_DECLARE_METATYPE(pkv::PolicySpec)
