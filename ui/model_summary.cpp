#include "ui/model_summary.h"

#include <QSettings>

namespace pkvui {

pkv::KvDtypeChoice kvDtypeSetting() {
    pkv::KvDtypeChoice c = pkv::KvDtypeChoice::Auto;
    pkv::parseKvDtypeChoice(QSettings().value("kvDtype", "auto").toString().toStdString(), c);
    return c;
}

ModelSummary summarizeFolder(const pkv::ModelFolder& folder, bool demo, pkv::DType kvDtype) {
    const pkv::LlavaConfig& c = folder.config();
    const pkv::LlamaConfig& t = c.text;
    ModelSummary s;
    s.dir = QString::fromStdString(folder.dir());
    s.demo = demo;
    s.layers = t.numLayers;
    s.heads = t.numHeads;
    s.kvHeads = t.numKvHeads;
    s.imageTokens = c.imageTokens();
    s.context = t.maxPositions;
    s.weightBytes = int64_t(folder.weightBytes());
    // As `prefixkv info`: keys and values per KV head per layer; a typical prompt of the image
    // plus 64 text tokens, 512 new tokens, and the prefill's widest activations.
    s.kvDtype = pkv::dtypeName(kvDtype);
    s.kvBytesPerToken = int64_t(t.numLayers) * 2 * t.numKvHeads * t.headDim * int64_t(pkv::dtypeSize(kvDtype));
    const int64_t typicalPrompt = c.imageTokens() + 64;
    const double scratch = double(typicalPrompt) * (3.0 * t.intermediateSize + 6.0 * t.hiddenSize) * 4;
    s.estimatedBytes = int64_t(double(s.weightBytes) + double(s.kvBytesPerToken) * double(typicalPrompt + 512) + scratch);
    return s;
}

QString formatBytes(double bytes) {
    if (bytes >= double(1ll << 30)) return QString::number(bytes / double(1ll << 30), 'f', 2) + " GiB";
    if (bytes >= double(1 << 20)) return QString::number(bytes / double(1 << 20), 'f', 2) + " MiB";
    if (bytes >= 1024) return QString::number(bytes / 1024.0, 'f', 1) + " KiB";
    return QString::number(qint64(bytes)) + " B";
}

QString describeSummary(const ModelSummary& s) {
    QStringList lines;
    lines << (s.demo ? QStringLiteral("Embedded demo model (tiny random weights: answers are meaningless)")
                     : s.dir);
    lines << QString("LLaMA, %1 layers, %2 heads (%3 KV heads%4), context %5; %6 image tokens")
                 .arg(s.layers).arg(s.heads).arg(s.kvHeads).arg(s.kvHeads < s.heads ? ", GQA" : "")
                 .arg(s.context).arg(s.imageTokens);
    lines << QString("Weights %1 (memory-mapped); KV cache %2 per token (%3)")
                 .arg(formatBytes(double(s.weightBytes)), formatBytes(double(s.kvBytesPerToken)), s.kvDtype);
    lines << QString("Estimated memory for a typical run: %1").arg(formatBytes(double(s.estimatedBytes)));
    return lines.join('\n');
}

}  // namespace pkvui
