#include "ui/kept_map_widget.h"

#include <QHelpEvent>
#include <QImage>
#include <QPainter>
#include <QToolTip>

namespace pkvui {
namespace {

QColor segmentColour(KeptMapWidget::Segment s) {
    switch (s) {
        case KeptMapWidget::Segment::System: return QColor(120, 144, 156);
        case KeptMapWidget::Segment::Image: return QColor(38, 166, 154);
        case KeptMapWidget::Segment::Instruction: return QColor(255, 167, 38);
        case KeptMapWidget::Segment::Answer: return QColor(102, 187, 106);
    }
    return Qt::gray;
}

const char* segmentName(KeptMapWidget::Segment s) {
    switch (s) {
        case KeptMapWidget::Segment::System: return "system prompt";
        case KeptMapWidget::Segment::Image: return "image";
        case KeptMapWidget::Segment::Instruction: return "instruction";
        case KeptMapWidget::Segment::Answer: return "answer";
    }
    return "";
}

}  // namespace

KeptMapWidget::KeptMapWidget(QWidget* parent) : QWidget(parent) {
    setMouseTracking(true);
    setMinimumHeight(100);
}

void KeptMapWidget::setPrefill(const PrefillInfo& info) {
    prefill_ = info;
    labels_ = info.tokenTexts;
    positions_ = info.promptTokens;
    kept_.assign(info.importance.size(), std::vector<bool>(size_t(positions_), true));
    update();
}

void KeptMapWidget::setKept(const std::vector<std::vector<int64_t>>& kept, int64_t tokensSeen) {
    positions_ = std::max(positions_, tokensSeen);
    kept_.assign(kept.size(), std::vector<bool>(size_t(positions_), false));
    for (size_t l = 0; l < kept.size(); ++l)
        for (int64_t t : kept[l])
            if (t >= 0 && t < positions_) kept_[l][size_t(t)] = true;
    update();
}

void KeptMapWidget::setStep(const std::vector<std::vector<int64_t>>& kept, int64_t tokensSeen, const QString& tokenText) {
    // The step's token is the next position; it enters the cache when the following step feeds it.
    while (labels_.size() < tokensSeen) labels_ << QString();
    labels_ << tokenText;
    setKept(kept, tokensSeen);
}

bool KeptMapWidget::isKept(int layer, int64_t position) const {
    if (layer < 0 || size_t(layer) >= kept_.size() || position < 0 || position >= positions_) return false;
    return kept_[size_t(layer)][size_t(position)];
}

KeptMapWidget::Segment KeptMapWidget::segmentOf(int64_t position) const {
    if (position >= prefill_.promptTokens) return Segment::Answer;
    if (prefill_.imageBegin < 0) return Segment::Instruction;
    if (position < prefill_.imageBegin) return Segment::System;
    if (position < prefill_.imageEnd) return Segment::Image;
    return Segment::Instruction;
}

QString KeptMapWidget::describeCell(int layer, int64_t position) const {
    if (layer < 0 || size_t(layer) >= kept_.size() || position < 0 || position >= positions_) return {};
    QString s = QString("layer %1, position %2 (%3)\ntoken: \"%4\"")
                    .arg(layer).arg(position).arg(segmentName(segmentOf(position)), labels_.value(position));
    const auto& imp = prefill_.importance;
    if (size_t(layer) < imp.size() && position < int64_t(imp[size_t(layer)].size()))
        s += QString("\nimportance: %1").arg(double(imp[size_t(layer)][size_t(position)]), 0, 'g', 4);
    s += isKept(layer, position) ? "\nkept" : "\nevicted";
    return s;
}

QRect KeptMapWidget::plotRect() const { return rect().adjusted(34, 4, -4, -30); }

bool KeptMapWidget::cellAt(const QPoint& p, int* layer, int64_t* position) const {
    const QRect r = plotRect();
    if (kept_.empty() || positions_ == 0 || !r.contains(p)) return false;
    *layer = int(double(p.y() - r.top()) * double(kept_.size()) / double(r.height()));
    *position = int64_t(double(p.x() - r.left()) * double(positions_) / double(r.width()));
    return true;
}

void KeptMapWidget::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.fillRect(rect(), palette().base());
    const QRect r = plotRect();
    QFont f = font();
    f.setPointSizeF(f.pointSizeF() * 0.8);
    p.setFont(f);
    p.setPen(palette().text().color());
    if (kept_.empty() || positions_ == 0) {
        p.drawText(r, Qt::AlignCenter, "kept / evicted tokens per layer appear here");
        return;
    }
    p.drawText(QRect(0, r.top(), 30, 14), Qt::AlignRight, "L0");
    p.drawText(QRect(0, r.bottom() - 14, 30, 14), Qt::AlignRight, QString("L%1").arg(kept_.size() - 1));
    // One pixel per cell, scaled: cheap for 32 layers x thousands of tokens.
    QImage img(int(positions_), int(kept_.size()), QImage::Format_RGB32);
    const QColor evicted(45, 45, 52);
    for (size_t l = 0; l < kept_.size(); ++l)
        for (int64_t t = 0; t < positions_; ++t)
            img.setPixelColor(int(t), int(l), kept_[l][size_t(t)] ? segmentColour(segmentOf(t)) : evicted);
    p.drawImage(r, img);
    // The segment band along the token axis.
    const QRect band(r.left(), r.bottom() + 3, r.width(), 8);
    int64_t start = 0;
    for (int64_t t = 1; t <= positions_; ++t) {
        if (t < positions_ && segmentOf(t) == segmentOf(start)) continue;
        const double x0 = band.left() + double(start) * band.width() / double(positions_);
        const double x1 = band.left() + double(t) * band.width() / double(positions_);
        p.fillRect(QRectF(x0, band.top(), x1 - x0, band.height()), segmentColour(segmentOf(start)));
        if (x1 - x0 > 40)
            p.drawText(QRectF(x0, band.bottom() + 1, x1 - x0, 14), Qt::AlignHCenter, segmentName(segmentOf(start)));
        start = t;
    }
}

bool KeptMapWidget::event(QEvent* e) {
    if (e->type() == QEvent::ToolTip) {
        auto* he = static_cast<QHelpEvent*>(e);
        int layer = 0;
        int64_t pos = 0;
        if (cellAt(he->pos(), &layer, &pos)) QToolTip::showText(he->globalPos(), describeCell(layer, pos));
        else QToolTip::hideText();
        return true;
    }
    return QWidget::event(e);
}

bool KeptMapWidget::exportPng(const QString& path) { return grab().save(path, "PNG"); }

}  // namespace pkvui
