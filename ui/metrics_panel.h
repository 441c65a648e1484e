#pragma once
// The readouts: device (and why), weights and KV memory, image encode time, time to first token,
// decode speed of both sides, and the quality cost (PPL of the full answer under the compressed
// cache, ROUGE-L of the compressed answer against the full one).
#include <QWidget>
#include <map>

#include "ui/engine_types.h"

class QLabel;
class QFormLayout;

namespace pkvui {

class MetricsPanel : public QWidget {
    Q_OBJECT
public:
    explicit MetricsPanel(QWidget* parent = nullptr);

    void setModel(const ModelSummary& s);
    void startRun(bool compareFull);
    void setPrefill(const PrefillInfo& info);
    void addStep(const StepUpdate& u);
    void setComparison(const Comparison& c);
    QString value(const QString& key) const;

    double keptMib() const { return keptBytes_ / double(1 << 20); }
    double fullMib() const;

private:
    QLabel* row(const QString& key, const QString& title);
    void set(const QString& key, const QString& text, const QString& tip = {});

    QFormLayout* form_;
    std::map<QString, QLabel*> labels_;
    int64_t bytesPerEntry_ = 0;
    int layers_ = 0;
    int64_t keptBytes_ = 0, fullBytes_ = 0, tokensSeen_ = 0;
};

}  // namespace pkvui
