#pragma once
// Heatmap (b): one row per layer, one column per token of the sequence (prompt, then generated),
// coloured where the layer's cache still holds that token and dark where it was evicted. A band
// under the map marks the system prompt, the image tokens, the instruction and the answer; hovering
// names the layer, position, token, its prefill importance and whether it is kept.
#include <QStringList>
#include <QWidget>
#include <cstdint>
#include <vector>

#include "ui/engine_types.h"

namespace pkvui {

class KeptMapWidget : public QWidget {
    Q_OBJECT
public:
    enum class Segment { System, Image, Instruction, Answer };

    explicit KeptMapWidget(QWidget* parent = nullptr);

    void setPrefill(const PrefillInfo& info);
    // A step of the compressed side: its cache (tokenIndices per layer) and the token it added.
    void setStep(const std::vector<std::vector<int64_t>>& kept, int64_t tokensSeen, const QString& tokenText);
    // The cache right after the policy compressed the prefill.
    void setKept(const std::vector<std::vector<int64_t>>& kept, int64_t tokensSeen);

    int64_t positions() const { return positions_; }
    bool isKept(int layer, int64_t position) const;
    Segment segmentOf(int64_t position) const;
    QString tokenText(int64_t position) const { return labels_.value(position); }
    // The hover text for a cell; empty outside the map.
    QString describeCell(int layer, int64_t position) const;
    bool exportPng(const QString& path);

    QSize sizeHint() const override { return {420, 170}; }

protected:
    void paintEvent(QPaintEvent*) override;
    bool event(QEvent* e) override;

private:
    QRect plotRect() const;
    bool cellAt(const QPoint& p, int* layer, int64_t* position) const;

    PrefillInfo prefill_;
    QStringList labels_;
    std::vector<std::vector<bool>> kept_;  // [layer][position]
    int64_t positions_ = 0;
};

}  // namespace pkvui
