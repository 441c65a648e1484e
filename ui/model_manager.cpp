#include "ui/model_manager.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QProgressBar>
#include <QPushButton>
#include <QSettings>
#include <QStandardPaths>
#include <QVBoxLayout>
#include <algorithm>

#include "engine/common/error.h"
#include "engine/io/model_folder.h"
#include "engine/model/llava.h"
#include "ui/hub_downloader.h"
#include "ui/model_summary.h"

namespace pkvui {

QStringList ModelManagerDialog::recentModels() { return QSettings().value("recentModels").toStringList(); }

void ModelManagerDialog::rememberModel(const QString& dir) {
    QStringList l = recentModels();
    l.removeAll(dir);
    l.prepend(dir);
    while (l.size() > 8) l.removeLast();
    QSettings().setValue("recentModels", l);
}

ModelManagerDialog::ModelManagerDialog(QWidget* parent) : QDialog(parent) {
    setWindowTitle("Models");
    resize(620, 520);
    auto* open = new QPushButton("Open model folder…");
    auto* demo = new QPushButton("Embedded demo model");
    recent_ = new QListWidget;
    recent_->setMaximumHeight(110);
    summary_ = new QLabel;
    summary_->setObjectName("modelSummary");
    summary_->setWordWrap(true);
    summary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    error_ = new QLabel;
    error_->setObjectName("modelError");
    error_->setWordWrap(true);
    error_->setStyleSheet("color:#c62828");
    device_ = new QComboBox;
    device_->addItems({"Auto (CUDA when usable)", "CPU", "CUDA"});
    // Kept in the settings; the worker reads it when it loads a model.
    kvDtype_ = new QComboBox;
    kvDtype_->setObjectName("kvDtype");
    kvDtype_->addItem("Auto (f16 for f16/bf16 weights)", "auto");
    kvDtype_->addItem("f32 (exact)", "f32");
    kvDtype_->addItem("f16 (half the memory)", "f16");
    kvDtype_->setCurrentIndex(std::max(0, kvDtype_->findData(QSettings().value("kvDtype", "auto"))));
    weights_ = new QComboBox;
    weights_->setObjectName("weights");
    weights_->addItem("Mapped from the files (instant)", "mapped");
    weights_->addItem("Read into memory (faster decode in some VMs)", "memory");
    weights_->setCurrentIndex(std::max(0, weights_->findData(QSettings().value("weights", "mapped"))));
    weights_->setToolTip("Mapped weights load at once and share the page cache with other programs. Read into "
                         "memory, they take seconds per GB to load and need their size free, and decode can be "
                         "faster where the page cache reads slower than a program's own memory (measured in a KVM "
                         "guest: 11%).");
    load_ = new QPushButton("Load");
    load_->setEnabled(false);

    hubModel_ = new QComboBox;
    for (const KnownModel& m : knownHubModels()) hubModel_->addItem(m.repo + " — " + m.description, m.repo);
    hubDest_ = new QLineEdit(QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + "/models");
    download_ = new QPushButton("Download");
    cancelDownload_ = new QPushButton("Cancel");
    cancelDownload_->setEnabled(false);
    downloadBar_ = new QProgressBar;
    downloadStatus_ = new QLabel;
    downloadStatus_->setWordWrap(true);
    downloader_ = new HubDownloader(this);

    auto* top = new QHBoxLayout;
    top->addWidget(open);
    top->addWidget(demo);
    top->addStretch();
    auto* hub = new QGroupBox("Download from the Hugging Face hub (resumable, sha256-checked)");
    auto* hubLayout = new QVBoxLayout(hub);
    hubLayout->addWidget(hubModel_);
    auto* destRow = new QHBoxLayout;
    destRow->addWidget(new QLabel("Into"));
    destRow->addWidget(hubDest_, 1);
    destRow->addWidget(download_);
    destRow->addWidget(cancelDownload_);
    hubLayout->addLayout(destRow);
    hubLayout->addWidget(downloadBar_);
    hubLayout->addWidget(downloadStatus_);
    auto* bottom = new QHBoxLayout;
    bottom->addWidget(new QLabel("Device"));
    bottom->addWidget(device_);
    bottom->addWidget(new QLabel("KV cache"));
    bottom->addWidget(kvDtype_);
    bottom->addWidget(new QLabel("Weights"));
    bottom->addWidget(weights_);
    bottom->addStretch();
    auto* close = new QPushButton("Close");
    bottom->addWidget(load_);
    bottom->addWidget(close);
    auto* v = new QVBoxLayout(this);
    v->addLayout(top);
    v->addWidget(new QLabel("Recent models"));
    v->addWidget(recent_);
    v->addWidget(summary_, 1);
    v->addWidget(error_);
    v->addWidget(hub);
    v->addLayout(bottom);

    connect(open, &QPushButton::clicked, this, [this] {
        const QString d = QFileDialog::getExistingDirectory(this, "llava-hf model folder");
        if (!d.isEmpty()) inspect(d);
    });
    connect(demo, &QPushButton::clicked, this, [this] {
        emit loadRequested({}, true, device_->currentIndex());
        accept();
    });
    connect(recent_, &QListWidget::currentTextChanged, this, [this](const QString& d) {
        if (!d.isEmpty()) inspect(d);
    });
    connect(load_, &QPushButton::clicked, this, [this] {
        rememberModel(candidate_);
        emit loadRequested(candidate_, false, device_->currentIndex());
        accept();
    });
    connect(close, &QPushButton::clicked, this, &QDialog::reject);
    connect(kvDtype_, &QComboBox::currentIndexChanged, this, [this] {
        QSettings().setValue("kvDtype", kvDtype_->currentData());
        // The estimate follows the choice (a copy: inspect() starts by clearing candidate_).
        if (!candidate_.isEmpty()) inspect(QString(candidate_));
    });
    connect(weights_, &QComboBox::currentIndexChanged, this, [this] {
        QSettings().setValue("weights", weights_->currentData());
        if (!candidate_.isEmpty()) inspect(QString(candidate_));
    });
    connect(download_, &QPushButton::clicked, this, [this] {
        const QString repo = hubModel_->currentData().toString();
        const QString dest = hubDest_->text() + "/" + repo.section('/', 1);
        download_->setEnabled(false);
        cancelDownload_->setEnabled(true);
        downloadStatus_->setText("Listing " + repo + "…");
        downloader_->start(repo, dest);
    });
    connect(cancelDownload_, &QPushButton::clicked, downloader_, &HubDownloader::cancel);
    connect(downloader_, &HubDownloader::progress, this, [this](qint64 done, qint64 total, const QString& file) {
        downloadBar_->setRange(0, 1000);
        downloadBar_->setValue(total > 0 ? int(1000.0 * double(done) / double(total)) : 0);
        downloadStatus_->setText(QString("%1 — %2 of %3").arg(file, formatBytes(double(done)), formatBytes(double(total))));
    });
    auto done = [this] {
        download_->setEnabled(true);
        cancelDownload_->setEnabled(false);
    };
    connect(downloader_, &HubDownloader::finished, this, [this, done](const QString& dir) {
        done();
        downloadStatus_->setText("Downloaded into " + dir + ".");
        inspect(dir);
    });
    connect(downloader_, &HubDownloader::failed, this, [this, done](const QString& s) {
        done();
        downloadStatus_->setText(s);
    });
    connect(downloader_, &HubDownloader::cancelled, this, [this, done] {
        done();
        downloadStatus_->setText("Download cancelled; the partial files stay and the next download resumes them.");
    });
    refreshRecent();
}

void ModelManagerDialog::refreshRecent() {
    recent_->clear();
    recent_->addItems(recentModels());
}

bool ModelManagerDialog::inspect(const QString& dir) {
    candidate_.clear();
    load_->setEnabled(false);
    try {
        auto folder = pkv::ModelFolder::open(dir.toStdString());
        // The cache dtype a load would resolve to: f16 needs the cpu backend (the device's cache is f32).
        const bool onCuda = device_->currentIndex() == int(pkv::DeviceChoice::Cuda);
        const pkv::DType kv = pkv::preferredKvDtype(kvDtypeSetting(), pkv::decoderWeightDtype(*folder), !onCuda);
        ModelSummary s = summarizeFolder(*folder, false, kv);
        s.weightsInMemory = weightStorageSetting() == pkv::WeightStorage::Memory;  // where a load would put them
        summary_->setText(describeSummary(s));
        error_->clear();
        candidate_ = dir;
        load_->setEnabled(true);
        return true;
    } catch (const pkv::Error& e) {
        summary_->clear();
        error_->setText(QString::fromStdString(e.what()));
        return false;
    }
}

QString ModelManagerDialog::summaryText() const { return summary_->text(); }
QString ModelManagerDialog::errorText() const { return error_->text(); }

}  // namespace pkvui
