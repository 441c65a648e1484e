#pragma once
// The compression controls: KV kept (slider, 5-100%) or an absolute token budget, the method
// (and its faithful/fixed variant where it has one), PrefixKV's profile (online search or a conf
// file), and whether the full-cache answer runs beside the compressed one.
#include <QWidget>

#include "engine/kv/policy_factory.h"
#include "engine/session.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSlider;
class QSpinBox;
class QTimer;

namespace pkvui {

class CompressionPanel : public QWidget {
    Q_OBJECT
public:
    explicit CompressionPanel(QWidget* parent = nullptr);

    // Throws pkv::Error when the choice is incomplete (a profile picked but no file).
    pkv::PolicySpec spec() const;
    bool compareFull() const;
    // The reference's RoPE positions after compression (layer 0's length) or the true ones.
    pkv::PositionMode positionMode() const;
    // LLaVA-1.5's pad-to-square or the llava-hf processor's centre crop.
    pkv::ImageMode imageMode() const;
    int keptPercent() const;
    void setKeptPercent(int percent);
    void setMethod(const QString& method);
    void setCompareFull(bool on);
    void setProfileFile(const QString& path);
    QSlider* slider() const { return slider_; }

signals:
    // The budget (or method) changed and the user has stopped moving the slider.
    void policyEdited();

private:
    void refresh();

    QSlider* slider_;
    QLabel* keptLabel_;
    QCheckBox* tokenMode_;
    QSpinBox* tokens_;
    QComboBox* method_;
    QComboBox* variant_;
    QComboBox* profileMode_;
    QLineEdit* profilePath_;
    QPushButton* browse_;
    QCheckBox* compareFull_;
    QComboBox* positions_;
    QComboBox* imageMode_;
    QTimer* settle_;
};

}  // namespace pkvui
