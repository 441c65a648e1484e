#include "ui/metrics_panel.h"

#include <QFormLayout>
#include <QLabel>

#include "ui/model_summary.h"

namespace pkvui {
namespace {

QString mib(double bytes) { return QString::number(bytes / double(1 << 20), 'f', 2) + " MiB"; }

}  // namespace

MetricsPanel::MetricsPanel(QWidget* parent) : QWidget(parent) {
    form_ = new QFormLayout(this);
    form_->setContentsMargins(0, 0, 0, 0);
    row("device", "Device");
    row("weights", "Weights");
    row("imageMs", "Image encode");
    row("firstToken", "First token");
    row("speedCompressed", "Speed (compressed)");
    row("speedFull", "Speed (full)");
    row("kv", "KV memory");
    row("ppl", "PPL of full answer");
    row("rouge", "ROUGE-L");
}

QLabel* MetricsPanel::row(const QString& key, const QString& title) {
    auto* l = new QLabel("—");
    l->setObjectName("metric_" + key);
    l->setTextInteractionFlags(Qt::TextSelectableByMouse);
    l->setWordWrap(true);
    form_->addRow(title, l);
    labels_[key] = l;
    return l;
}

void MetricsPanel::set(const QString& key, const QString& text, const QString& tip) {
    labels_.at(key)->setText(text);
    labels_.at(key)->setToolTip(tip);
}

QString MetricsPanel::value(const QString& key) const { return labels_.at(key)->text(); }

void MetricsPanel::setModel(const ModelSummary& s) {
    // The reason matters most when the GPU was expected and not used.
    set("device", s.device + (s.device == "cpu" && !s.deviceReason.isEmpty() ? " — " + s.deviceReason : ""),
        s.device == "cpu" && !s.blas.isEmpty() ? s.deviceReason + "\n" + s.blas + "." : s.deviceReason);
    set("weights", formatBytes(double(s.weightBytes)));
    layers_ = s.layers;
}

void MetricsPanel::startRun(bool compareFull) {
    for (const char* k : {"firstToken", "speedCompressed", "speedFull", "ppl", "rouge"}) set(k, "—");
    if (!compareFull) set("speedFull", "not run");
    keptBytes_ = fullBytes_ = 0;
}

void MetricsPanel::setPrefill(const PrefillInfo& info) {
    set("imageMs", info.imageEncodeMs > 0 ? QString("%1 ms").arg(info.imageEncodeMs, 0, 'f', 1) : "no image");
    bytesPerEntry_ = info.kvBytesPerEntry;
}

double MetricsPanel::fullMib() const {
    // Without the full side running, the full cache is what every layer would hold.
    const double full = fullBytes_ > 0 ? double(fullBytes_) : double(tokensSeen_) * layers_ * double(bytesPerEntry_);
    return full / double(1 << 20);
}

void MetricsPanel::addStep(const StepUpdate& u) {
    if (u.step < 0) return;
    if (u.step == 0) set("firstToken", QString("%1 ms").arg(u.firstTokenMs, 0, 'f', 1));
    const QString speed = u.step == 0 ? QString("first token") : QString("%1 tok/s").arg(u.tokensPerSecond, 0, 'f', 1);
    if (u.side == Side::Compressed) {
        set("speedCompressed", speed);
        keptBytes_ = u.kvBytes;
        tokensSeen_ = u.tokensSeen;
        QStringList perLayer;
        for (size_t l = 0; l < u.layerLengths.size(); ++l)
            perLayer << QString("layer %1: %2 entries, %3").arg(l).arg(u.layerLengths[l])
                            .arg(mib(double(u.layerLengths[l] * bytesPerEntry_)));
        const double full = fullMib();
        set("kv", QString("%1 kept of %2 MiB (%3%)")
                      .arg(mib(double(keptBytes_)))
                      .arg(full, 0, 'f', 2)
                      .arg(full > 0 ? 100.0 * keptMib() / full : 100.0, 0, 'f', 0),
            perLayer.join('\n'));
    } else {
        set("speedFull", speed);
        fullBytes_ = u.kvBytes;
    }
}

void MetricsPanel::setComparison(const Comparison& c) {
    if (c.scoredTokens > 0)
        set("ppl", QString("%1 compressed · %2 full").arg(c.pplCompressed, 0, 'f', 3).arg(c.pplFull, 0, 'f', 3),
            QString("%1 tokens of the full-cache answer, teacher-forced").arg(c.scoredTokens));
    else
        set("ppl", "n/a", c.note);
    if (c.note.contains("ROUGE")) set("rouge", "n/a", c.note);
    else set("rouge", QString("%1 (textbook %2)").arg(c.rougeReference, 0, 'f', 4).arg(c.rougeTextbook, 0, 'f', 4),
             "ROUGE-L F of the compressed answer against the full-cache one: the reference's rouge package, and Lin's definition");
}

}  // namespace pkvui
