#include "ui/compression_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSlider>
#include <QSpinBox>
#include <QTimer>

#include "engine/common/error.h"

namespace pkvui {

CompressionPanel::CompressionPanel(QWidget* parent) : QWidget(parent) {
    slider_ = new QSlider(Qt::Horizontal);
    slider_->setRange(5, 100);
    slider_->setValue(20);
    slider_->setObjectName("keptSlider");
    keptLabel_ = new QLabel;
    keptLabel_->setObjectName("keptLabel");
    keptLabel_->setMinimumWidth(170);
    tokenMode_ = new QCheckBox("Absolute budget");
    tokenMode_->setToolTip("Keep on average this many tokens per layer, whatever the prompt length");
    tokens_ = new QSpinBox;
    tokens_->setRange(1, 1 << 20);
    tokens_->setValue(128);
    tokens_->setSuffix(" tokens/layer");
    method_ = new QComboBox;
    method_->setObjectName("method");
    for (const std::string& m : pkv::knownMethods())
        if (m != "full") method_->addItem(QString::fromStdString(m));
    variant_ = new QComboBox;
    variant_->addItems({"faithful", "fixed"});
    variant_->setToolTip("faithful: the reference's argsort behaviour; fixed: the intended selection");
    profileMode_ = new QComboBox;
    profileMode_->addItems({"Online search", "Profile file"});
    profilePath_ = new QLineEdit;
    profilePath_->setPlaceholderText("prefixkv_<model>_<r>.json");
    browse_ = new QPushButton("…");
    compareFull_ = new QCheckBox("Full cache beside");
    compareFull_->setObjectName("compareFull");
    compareFull_->setChecked(true);
    compareFull_->setToolTip("Also answer with the full cache, from the same prefill, for comparison");

    positions_ = new QComboBox;
    positions_->setObjectName("positionMode");
    positions_->addItems({"true positions", "faithful (layer-0 length)"});
    positions_->setToolTip("RoPE position of each new token once layers are compressed: its true index, or "
                           "layer 0's cache length as the reference code gives it (for reproducing the paper)");
    imageMode_ = new QComboBox;
    imageMode_->setObjectName("imageMode");
    imageMode_->addItems({"pad to square", "centre crop"});
    imageMode_->setToolTip("pad: LLaVA-1.5 and the reference evaluation; crop: the llava-hf processor");

    auto* budgetRow = new QHBoxLayout;
    budgetRow->addWidget(slider_, 1);
    budgetRow->addWidget(keptLabel_);
    auto* tokenRow = new QHBoxLayout;
    tokenRow->addWidget(tokenMode_);
    tokenRow->addWidget(tokens_);
    tokenRow->addStretch();
    auto* methodRow = new QHBoxLayout;
    methodRow->addWidget(method_, 1);
    methodRow->addWidget(variant_);
    auto* profileRow = new QHBoxLayout;
    profileRow->addWidget(profileMode_);
    profileRow->addWidget(profilePath_, 1);
    profileRow->addWidget(browse_);
    auto* form = new QFormLayout(this);
    form->setContentsMargins(0, 0, 0, 0);
    form->addRow("KV kept", budgetRow);
    form->addRow("", tokenRow);
    form->addRow("Method", methodRow);
    form->addRow("Profile", profileRow);
    form->addRow("RoPE", positions_);
    form->addRow("Image", imageMode_);
    form->addRow("", compareFull_);

    // Re-running on every slider tick would queue many runs; wait until the hand rests.
    settle_ = new QTimer(this);
    settle_->setSingleShot(true);
    settle_->setInterval(350);
    connect(settle_, &QTimer::timeout, this, &CompressionPanel::policyEdited);
    connect(slider_, &QSlider::valueChanged, this, [this] {
        refresh();
        settle_->start();
    });
    connect(tokens_, &QSpinBox::valueChanged, this, [this] { settle_->start(); });
    connect(tokenMode_, &QCheckBox::toggled, this, [this] {
        refresh();
        settle_->start();
    });
    connect(method_, &QComboBox::currentTextChanged, this, [this] {
        refresh();
        settle_->start();
    });
    connect(variant_, &QComboBox::currentIndexChanged, this, [this] { settle_->start(); });
    connect(profileMode_, &QComboBox::currentIndexChanged, this, [this] { refresh(); });
    connect(browse_, &QPushButton::clicked, this, [this] {
        const QString f = QFileDialog::getOpenFileName(this, "PrefixKV profile", {}, "Profiles (*.json);;All files (*)");
        if (!f.isEmpty()) setProfileFile(f);
    });
    refresh();
}

void CompressionPanel::refresh() {
    const int b = slider_->value();
    keptLabel_->setText(QString("%1% kept · %2% evicted").arg(b).arg(100 - b));
    const bool tokens = tokenMode_->isChecked();
    slider_->setEnabled(!tokens);
    tokens_->setEnabled(tokens);
    variant_->setEnabled(pkv::methodHasVariants(method_->currentText().toStdString()));
    const bool prefix = method_->currentText() == "prefixkv";
    profileMode_->setEnabled(prefix);
    const bool file = prefix && profileMode_->currentIndex() == 1;
    profilePath_->setEnabled(file);
    browse_->setEnabled(file);
}

pkv::PolicySpec CompressionPanel::spec() const {
    pkv::PolicySpec s;
    s.method = method_->currentText().toStdString();
    s.faithful = variant_->currentText() == "faithful";
    s.budget = tokenMode_->isChecked() ? pkv::Budget::keptTokens(tokens_->value())
                                       : pkv::Budget::keptPercent(slider_->value());
    if (s.method == "prefixkv" && profileMode_->currentIndex() == 1) {
        if (profilePath_->text().trimmed().isEmpty())
            throw pkv::Error("Choose a PrefixKV profile file, or switch the profile to Online search.");
        s.profilePath = profilePath_->text().trimmed().toStdString();
    }
    return s;
}

bool CompressionPanel::compareFull() const { return compareFull_->isChecked(); }
int CompressionPanel::keptPercent() const { return slider_->value(); }
void CompressionPanel::setKeptPercent(int percent) { slider_->setValue(percent); }
void CompressionPanel::setMethod(const QString& method) { method_->setCurrentText(method); }
void CompressionPanel::setCompareFull(bool on) { compareFull_->setChecked(on); }

void CompressionPanel::setProfileFile(const QString& path) {
    profileMode_->setCurrentIndex(1);
    profilePath_->setText(path);
    refresh();
    settle_->start();
}

}  // namespace pkvui

namespace pkvui {

pkv::PositionMode CompressionPanel::positionMode() const {
    return positions_->currentIndex() == 0 ? pkv::PositionMode::Absolute : pkv::PositionMode::LayerZeroLength;
}

pkv::ImageMode CompressionPanel::imageMode() const {
    return imageMode_->currentIndex() == 0 ? pkv::ImageMode::Pad : pkv::ImageMode::Crop;
}

}  // namespace pkvui
