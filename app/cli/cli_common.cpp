#include "app/cli/cli_common.h"

#include <cstdio>

#include "app/cli/demo_model.h"
#include "engine/common/error.h"

namespace pkvcli {

std::string modelPathOrDemo(const QString& given, bool* isDemo) {
    *isDemo = given.isEmpty();
    return given.isEmpty() ? extractDemoModel() : given.toStdString();
}

pkv::DeviceChoice parseDevice(const QString& text) {
    if (text == "auto") return pkv::DeviceChoice::Auto;
    if (text == "cpu") return pkv::DeviceChoice::Cpu;
    if (text == "cuda") return pkv::DeviceChoice::Cuda;
    throw pkv::Error("--device must be auto, cpu or cuda, not \"" + text.toStdString() + "\".");
}

QCommandLineOption kvDtypeOptionSpec() {
    return {"kv-dtype", "KV cache entries: auto (f16 for f16/bf16 weights, as PyTorch keeps them), f32 (exact) or f16.",
            "type", "auto"};
}

pkv::KvDtypeChoice kvDtypeOption(const QCommandLineParser& p) {
    pkv::KvDtypeChoice c = pkv::KvDtypeChoice::Auto;
    if (!pkv::parseKvDtypeChoice(p.value("kv-dtype").toStdString(), c))
        throw pkv::Error("--kv-dtype must be auto, f32 or f16, not \"" + p.value("kv-dtype").toStdString() + "\".");
    return c;
}

QCommandLineOption weightsOptionSpec() {
    return {"weights",
            "Where the weights live: mapped (from their files; instant, shared with other processes) or memory (read "
            "into this process first; decode can be faster in virtual machines).",
            "where", "mapped"};
}

pkv::WeightStorage weightsOption(const QCommandLineParser& p) {
    pkv::WeightStorage w = pkv::WeightStorage::Mapped;
    if (!pkv::parseWeightStorage(p.value("weights").toStdString(), w))
        throw pkv::Error("--weights must be mapped or memory, not \"" + p.value("weights").toStdString() + "\".");
    return w;
}

int failWith(const QString& sentence) {
    std::fprintf(stderr, "prefixkv: %s\n", qPrintable(sentence));
    return UserError;
}

int runGuarded(const std::function<int()>& body) {
    try {
        return body();
    } catch (const pkv::Cancelled&) {
        std::fprintf(stderr, "prefixkv: cancelled.\n");
        return Interrupted;
    } catch (const pkv::Error& e) {
        return failWith(QString::fromStdString(e.what()));
    } catch (const std::bad_alloc&) {
        return failWith("Out of memory: the model and its cache do not fit in this machine's memory.");
    }
}

std::optional<int> parseArguments(QCommandLineParser& p, const QStringList& args) {
    if (!p.parse(args)) return failWith(p.errorText());
    if (p.isSet("help")) {
        std::fputs(qPrintable(p.helpText()), stdout);
        return Ok;
    }
    return std::nullopt;
}

void requireOptions(const QCommandLineParser& p, std::initializer_list<const char*> names) {
    for (const char* name : names)
        if (!p.isSet(name)) throw pkv::Error(std::string("Give --") + name + ".");
}

// The value of a two-way option, or an error naming the option and both accepted words.
static bool choice(const QCommandLineParser& p, const QString& name, const char* first, const char* second) {
    const QString v = p.value(name);
    if (v != first && v != second)
        throw pkv::Error("--" + name.toStdString() + " must be " + first + " or " + second + ", not \"" +
                         v.toStdString() + "\".");
    return v == first;
}

pkv::ImageMode imageModeOption(const QCommandLineParser& p) {
    return choice(p, "image-mode", "pad", "crop") ? pkv::ImageMode::Pad : pkv::ImageMode::Crop;
}

pkv::PositionMode positionModeOption(const QCommandLineParser& p) {
    return choice(p, "position-mode", "true", "faithful") ? pkv::PositionMode::Absolute
                                                          : pkv::PositionMode::LayerZeroLength;
}

bool faithfulOption(const QCommandLineParser& p) { return choice(p, "variant", "faithful", "fixed"); }

int intOption(const QCommandLineParser& p, const QString& name, int lo, int hi) {
    bool ok = false;
    const int v = p.value(name).toInt(&ok);
    if (!ok || v < lo || v > hi)
        throw pkv::Error("--" + name.toStdString() + " must be a whole number from " + std::to_string(lo) + " to " +
                         std::to_string(hi) + ", not \"" + p.value(name).toStdString() + "\".");
    return v;
}

double doubleOption(const QCommandLineParser& p, const QString& name, double lo, double hi) {
    bool ok = false;
    const double v = p.value(name).toDouble(&ok);
    if (!ok || v < lo || v > hi)
        throw pkv::Error("--" + name.toStdString() + " must be a number from " + QString::number(lo).toStdString() +
                         " to " + QString::number(hi).toStdString() + ", not \"" + p.value(name).toStdString() + "\".");
    return v;
}

}  // namespace pkvcli
