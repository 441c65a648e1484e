#pragma once
// Heatmap (a): one row per layer, one column per decode step, colour = the fraction of the tokens
// seen so far that the layer's cache still holds after the step (yellow: all, purple: none).
// Updated as steps arrive; the lengths themselves are kept for hover and tests.
#include <QWidget>
#include <cstdint>
#include <vector>

namespace pkvui {

class LayerStepHeatmap : public QWidget {
    Q_OBJECT
public:
    explicit LayerStepHeatmap(QWidget* parent = nullptr);

    void reset(int layers);
    void addStep(const std::vector<int64_t>& layerLengths, int64_t tokensSeen);
    int steps() const { return int(columns_.size()); }
    const std::vector<int64_t>& column(int step) const { return columns_.at(size_t(step)); }
    bool exportPng(const QString& path);

    QSize sizeHint() const override { return {420, 160}; }

protected:
    void paintEvent(QPaintEvent*) override;
    bool event(QEvent* e) override;

private:
    QRect plotRect() const;
    int layers_ = 0;
    std::vector<std::vector<int64_t>> columns_;
    std::vector<int64_t> seen_;
};

// Blue (small) to yellow (large) for t in [0, 1].
QColor heatColour(double t);

}  // namespace pkvui
