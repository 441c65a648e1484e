#pragma once
// The questions asked in this session, with both answers and their readouts, exportable as JSON
// (for scripts) and Markdown (for notes and reports).
#include <QDateTime>
#include <QString>
#include <vector>

namespace pkvui {

struct HistoryEntry {
    QDateTime when;
    QString model, image, instruction, policy;
    QString compressedAnswer, fullAnswer;  // fullAnswer empty when the full side did not run
    double pplCompressed = -1, pplFull = -1, rougeL = -1;
    double kvMibKept = 0, kvMibFull = 0;
};

class History {
public:
    void add(const HistoryEntry& e) { entries_.push_back(e); }
    void clear() { entries_.clear(); }
    const std::vector<HistoryEntry>& entries() const { return entries_; }

    QByteArray toJson() const;
    QString toMarkdown() const;
    // Writes JSON or Markdown by the file's suffix (.json, else Markdown); false when it cannot.
    bool exportTo(const QString& path, QString* error) const;

private:
    std::vector<HistoryEntry> entries_;
};

}  // namespace pkvui
