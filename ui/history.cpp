#include "ui/history.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

namespace pkvui {
namespace {

QJsonValue number(double v) { return v < 0 ? QJsonValue() : QJsonValue(v); }
QString cell(double v, int digits) { return v < 0 ? QString("—") : QString::number(v, 'f', digits); }

}  // namespace

QByteArray History::toJson() const {
    QJsonArray a;
    for (const HistoryEntry& e : entries_) {
        a.append(QJsonObject{{"time", e.when.toString(Qt::ISODate)},
                             {"model", e.model},
                             {"image", e.image},
                             {"instruction", e.instruction},
                             {"policy", e.policy},
                             {"compressed_answer", e.compressedAnswer},
                             {"full_answer", e.fullAnswer.isEmpty() ? QJsonValue() : QJsonValue(e.fullAnswer)},
                             {"ppl_compressed", number(e.pplCompressed)},
                             {"ppl_full", number(e.pplFull)},
                             {"rouge_l", number(e.rougeL)},
                             {"kv_mib_kept", e.kvMibKept},
                             {"kv_mib_full", e.kvMibFull}});
    }
    return QJsonDocument(a).toJson(QJsonDocument::Indented);
}

QString History::toMarkdown() const {
    QString md = "# PrefixKV Studio session\n";
    int n = 0;
    for (const HistoryEntry& e : entries_) {
        md += QString("\n## %1. %2\n\n").arg(++n).arg(e.instruction.simplified());
        md += QString("- Time: %1\n- Model: %2\n- Image: %3\n- Policy: %4\n")
                  .arg(e.when.toString(Qt::ISODate), e.model, e.image.isEmpty() ? "none" : e.image, e.policy);
        md += QString("- PPL (compressed / full): %1 / %2\n- ROUGE-L: %3\n- KV cache: %4 MiB kept of %5 MiB\n")
                  .arg(cell(e.pplCompressed, 3), cell(e.pplFull, 3), cell(e.rougeL, 4))
                  .arg(e.kvMibKept, 0, 'f', 2).arg(e.kvMibFull, 0, 'f', 2);
        md += "\n**Compressed answer**\n\n> " + QString(e.compressedAnswer).replace("\n", "\n> ") + "\n";
        if (!e.fullAnswer.isEmpty())
            md += "\n**Full-cache answer**\n\n> " + QString(e.fullAnswer).replace("\n", "\n> ") + "\n";
    }
    return md;
}

bool History::exportTo(const QString& path, QString* error) const {
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate)) {
        if (error) *error = "Cannot write " + path + ": " + f.errorString() + ".";
        return false;
    }
    f.write(path.endsWith(".json", Qt::CaseInsensitive) ? toJson() : toMarkdown().toUtf8());
    return true;
}

}  // namespace pkvui
