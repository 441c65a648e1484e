#include "ui/model_summary.h"

#include <QSettings>

namespace pkvui {

pkv::KvDtypeChoice kvDtypeSetting() {
    pkv::KvDtypeChoice c = pkv::KvDtypeChoice::Auto;
    pkv::parseKvDtypeChoice(QSettings().value("kvDtype", "auto").toString().toStdString(), c);
    return c;
}

pkv::WeightStorage weightStorageSetting() {
    pkv::WeightStorage w = pkv::WeightStorage::Mapped;
    pkv::parseWeightStorage(QSettings().value("weights", "mapped").toString().toStdString(), w);
    return w;
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
    // The same estimate as `prefixkv info`.
    const pkv::MemoryEstimate memory = pkv::estimateMemory(folder, kvDtype);
    s.kvDtype = pkv::dtypeName(kvDtype);
    s.weightsInMemory = folder.weightsInMemory();
    s.kvBytesPerToken = int64_t(memory.kvBytesPerToken);
    s.estimatedBytes = int64_t(memory.typicalRunBytes);
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
    lines << QString("Weights %1 (%2); KV cache %3 per token (%4)")
                 .arg(formatBytes(double(s.weightBytes)), s.weightsInMemory ? "read into memory" : "mapped from their files",
                      formatBytes(double(s.kvBytesPerToken)), s.kvDtype);
    lines << QString("Estimated memory for a typical run: %1").arg(formatBytes(double(s.estimatedBytes)));
    return lines.join('\n');
}

}  // namespace pkvui
