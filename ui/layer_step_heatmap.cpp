#include "ui/layer_step_heatmap.h"

#include <QHelpEvent>
#include <QPainter>
#include <QToolTip>
#include <algorithm>

namespace pkvui {

QColor heatColour(double t) {
    t = std::clamp(t, 0.0, 1.0);
    // A short viridis-like ramp, readable on light and dark themes.
    static const QColor stops[] = {QColor(68, 1, 84), QColor(59, 82, 139), QColor(33, 145, 140),
                                   QColor(94, 201, 98), QColor(253, 231, 37)};
    const double x = t * 4.0;
    const int i = std::min(3, int(x));
    const double f = x - i;
    const QColor& a = stops[i];
    const QColor& b = stops[i + 1];
    return QColor(int(a.red() + f * (b.red() - a.red())), int(a.green() + f * (b.green() - a.green())),
                  int(a.blue() + f * (b.blue() - a.blue())));
}

LayerStepHeatmap::LayerStepHeatmap(QWidget* parent) : QWidget(parent) {
    setMouseTracking(true);
    setMinimumHeight(90);
}

void LayerStepHeatmap::reset(int layers) {
    layers_ = layers;
    columns_.clear();
    seen_.clear();
    update();
}

void LayerStepHeatmap::addStep(const std::vector<int64_t>& layerLengths, int64_t tokensSeen) {
    if (layers_ == 0) layers_ = int(layerLengths.size());
    columns_.push_back(layerLengths);
    seen_.push_back(std::max<int64_t>(1, tokensSeen));
    update();
}

QRect LayerStepHeatmap::plotRect() const { return rect().adjusted(34, 4, -70, -16); }

void LayerStepHeatmap::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.fillRect(rect(), palette().base());
    const QRect r = plotRect();
    p.setPen(palette().text().color());
    QFont f = font();
    f.setPointSizeF(f.pointSizeF() * 0.8);
    p.setFont(f);
    p.drawText(QRect(0, r.top(), 30, 14), Qt::AlignRight, "L0");
    p.drawText(QRect(0, r.bottom() - 14, 30, 14), Qt::AlignRight, QString("L%1").arg(std::max(0, layers_ - 1)));
    p.drawText(QRect(r.left(), r.bottom() + 2, r.width(), 14), Qt::AlignLeft,
               columns_.empty() ? QString("decode steps: colour = share of the sequence each layer keeps")
                                : QString("decode step 0 … %1").arg(columns_.size() - 1));
    // Legend: the colour ramp from none kept to all kept.
    const QRect legend(r.right() + 14, r.top(), 12, r.height());
    for (int y = 0; y < legend.height(); ++y)
        p.fillRect(QRect(legend.left(), legend.top() + y, legend.width(), 1), heatColour(1.0 - double(y) / legend.height()));
    p.drawText(QRect(legend.right() + 3, legend.top(), 50, 14), Qt::AlignLeft, "100%");
    p.drawText(QRect(legend.right() + 3, legend.bottom() - 14, 50, 14), Qt::AlignLeft, "0%");
    if (columns_.empty() || layers_ == 0) return;
    const double cw = double(r.width()) / double(std::max<size_t>(columns_.size(), 32));
    const double ch = double(r.height()) / layers_;
    for (size_t s = 0; s < columns_.size(); ++s)
        for (int l = 0; l < layers_ && l < int(columns_[s].size()); ++l)
            p.fillRect(QRectF(r.left() + s * cw, r.top() + l * ch, std::max(cw, 1.0), std::max(ch, 1.0)),
                       heatColour(double(columns_[s][size_t(l)]) / double(seen_[s])));
}

bool LayerStepHeatmap::event(QEvent* e) {
    if (e->type() == QEvent::ToolTip && !columns_.empty() && layers_ > 0) {
        auto* he = static_cast<QHelpEvent*>(e);
        const QRect r = plotRect();
        const double cw = double(r.width()) / double(std::max<size_t>(columns_.size(), 32));
        const int s = int((he->pos().x() - r.left()) / cw);
        const int l = int(double(he->pos().y() - r.top()) / (double(r.height()) / layers_));
        if (s >= 0 && size_t(s) < columns_.size() && l >= 0 && l < layers_) {
            QToolTip::showText(he->globalPos(), QString("layer %1, step %2: %3 of %4 tokens in the cache")
                                                    .arg(l).arg(s).arg(columns_[size_t(s)][size_t(l)]).arg(seen_[size_t(s)]));
        } else {
            QToolTip::hideText();
        }
        return true;
    }
    return QWidget::event(e);
}

bool LayerStepHeatmap::exportPng(const QString& path) { return grab().save(path, "PNG"); }

}  // namespace pkvui
