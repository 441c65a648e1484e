#include "ui/main_window.h"

#include <QApplication>
#include <QClipboard>
#include <QFileDialog>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QListWidget>
#include <QMenuBar>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QShortcut>
#include <QDoubleSpinBox>
#include <QSpinBox>
#include <QSplitter>
#include <QStatusBar>
#include <QTabWidget>
#include <QTextEdit>
#include <QVBoxLayout>

#include "app/cli/demo_model.h"
#include "engine/common/error.h"
#include "ui/batch_dialog.h"
#include "ui/budget_chart.h"
#include "ui/compression_panel.h"
#include "ui/engine_worker.h"
#include "ui/image_view.h"
#include "ui/kept_map_widget.h"
#include "ui/layer_step_heatmap.h"
#include "ui/metrics_panel.h"
#include "ui/model_manager.h"
#include "ui/word_diff.h"

namespace pkvui {

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent), worker_(new EngineWorker) {
    registerEngineTypes();
    worker_->moveToThread(&thread_);
    connect(&thread_, &QThread::finished, worker_, &QObject::deleteLater);
    buildUi();
    buildMenus();
    connectWorker();
    thread_.start();
}

MainWindow::~MainWindow() {
    // A run or load in flight sees its flag at the next token or tensor, then the thread ends.
    worker_->requestStop();
    worker_->requestLoadCancel();
    thread_.quit();
    thread_.wait();
}

void MainWindow::buildUi() {
    setWindowTitle("PrefixKV Studio");
    resize(1380, 860);

    image_ = new ImageView;
    imageInfo_ = new QLabel("No image: the question will be text only.");
    imageInfo_->setWordWrap(true);
    instruction_ = new QPlainTextEdit;
    instruction_->setPlaceholderText("Ask about the image… (Ctrl+Enter to generate)");
    instruction_->setMaximumHeight(90);
    generate_ = new QPushButton("Generate");
    generate_->setObjectName("generate");
    generate_->setDefault(true);
    stop_ = new QPushButton("Stop");
    stop_->setObjectName("stop");
    stop_->setEnabled(false);
    maxNew_ = new QSpinBox;
    maxNew_->setRange(1, 4096);
    maxNew_->setValue(128);
    maxNew_->setPrefix("max ");
    maxNew_->setSuffix(" tokens");
    temperature_ = new QDoubleSpinBox;
    temperature_->setObjectName("temperature");
    temperature_->setRange(0.0, 2.0);
    temperature_->setSingleStep(0.1);
    temperature_->setPrefix("temperature ");
    temperature_->setToolTip("0 decodes greedily (as the reference evaluation does); above 0 samples");
    topP_ = new QDoubleSpinBox;
    topP_->setObjectName("topP");
    topP_->setRange(0.05, 1.0);
    topP_->setSingleStep(0.05);
    topP_->setValue(1.0);
    topP_->setPrefix("top-p ");
    seed_ = new QSpinBox;
    seed_->setObjectName("seed");
    seed_->setRange(0, 1 << 30);
    seed_->setPrefix("seed ");
    seed_->setToolTip("Both answers draw from this seed, so they differ only by the cache");
    compression_ = new CompressionPanel;
    modelLabel_ = new QLabel("No model");
    modelLabel_->setObjectName("modelLabel");
    modelLabel_->setWordWrap(true);
    loadBar_ = new QProgressBar;
    loadBar_->setRange(0, 1000);
    loadBar_->setVisible(false);
    cancelLoad_ = new QPushButton("Cancel loading");
    cancelLoad_->setVisible(false);
    message_ = new QLabel;
    message_->setObjectName("message");
    message_->setWordWrap(true);

    auto* left = new QWidget;
    auto* lv = new QVBoxLayout(left);
    auto* modelBox = new QGroupBox("Model");
    auto* mv = new QVBoxLayout(modelBox);
    mv->addWidget(modelLabel_);
    auto* loadRow = new QHBoxLayout;
    loadRow->addWidget(loadBar_, 1);
    loadRow->addWidget(cancelLoad_);
    mv->addLayout(loadRow);
    lv->addWidget(modelBox);
    lv->addWidget(image_, 1);
    lv->addWidget(imageInfo_);
    lv->addWidget(instruction_);
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(generate_);
    buttons->addWidget(stop_);
    buttons->addWidget(maxNew_);
    lv->addLayout(buttons);
    auto* sampling = new QHBoxLayout;
    sampling->addWidget(temperature_);
    sampling->addWidget(topP_);
    sampling->addWidget(seed_);
    lv->addLayout(sampling);
    auto* compBox = new QGroupBox("Compression");
    auto* cv = new QVBoxLayout(compBox);
    cv->addWidget(compression_);
    lv->addWidget(compBox);
    lv->addWidget(message_);

    compressedTitle_ = new QLabel("<b>Compressed</b>");
    fullTitle_ = new QLabel("<b>Full cache</b>");
    compressedPane_ = new QTextEdit;
    compressedPane_->setObjectName("compressedPane");
    compressedPane_->setReadOnly(true);
    fullPane_ = new QTextEdit;
    fullPane_->setObjectName("fullPane");
    fullPane_->setReadOnly(true);
    auto* panes = new QWidget;
    auto* pg = new QHBoxLayout(panes);
    pg->setContentsMargins(0, 0, 0, 0);
    for (auto [title, pane] : {std::pair{compressedTitle_, compressedPane_}, std::pair{fullTitle_, fullPane_}}) {
        auto* col = new QVBoxLayout;
        col->addWidget(title);
        col->addWidget(pane);
        pg->addLayout(col);
    }

    stepHeatmap_ = new LayerStepHeatmap;
    keptMap_ = new KeptMapWidget;
    budget_ = new BudgetChart;
    auto* maps = new QTabWidget;
    maps->addTab(stepHeatmap_, "Cache length per layer × step");
    maps->addTab(keptMap_, "Kept tokens per layer");
    maps->addTab(budget_, "Per-layer budget");
    auto* exportMaps = new QPushButton("Export PNG…");
    maps->setCornerWidget(exportMaps);
    connect(exportMaps, &QPushButton::clicked, this, &MainWindow::exportHeatmaps);

    auto* centre = new QSplitter(Qt::Vertical);
    centre->addWidget(panes);
    centre->addWidget(maps);
    centre->setStretchFactor(0, 3);
    centre->setStretchFactor(1, 2);

    metrics_ = new MetricsPanel;
    historyList_ = new QListWidget;
    auto* right = new QWidget;
    auto* rv = new QVBoxLayout(right);
    auto* metricsBox = new QGroupBox("Readouts");
    auto* mb = new QVBoxLayout(metricsBox);
    mb->addWidget(metrics_);
    rv->addWidget(metricsBox);
    auto* historyBox = new QGroupBox("History");
    auto* hb = new QVBoxLayout(historyBox);
    hb->addWidget(historyList_);
    rv->addWidget(historyBox, 1);

    auto* split = new QSplitter(Qt::Horizontal);
    split->addWidget(left);
    split->addWidget(centre);
    split->addWidget(right);
    split->setStretchFactor(0, 2);
    split->setStretchFactor(1, 5);
    split->setStretchFactor(2, 2);
    split->setSizes({330, 760, 290});
    setCentralWidget(split);

    connect(generate_, &QPushButton::clicked, this, &MainWindow::generate);
    connect(stop_, &QPushButton::clicked, this, &MainWindow::stop);
    connect(cancelLoad_, &QPushButton::clicked, this, &MainWindow::cancelLoad);
    for (auto key : {Qt::Key_Return, Qt::Key_Enter}) {
        auto* sc = new QShortcut(QKeySequence(Qt::CTRL | key), this);
        connect(sc, &QShortcut::activated, this, &MainWindow::generate);
    }
    connect(image_, &ImageView::imageChanged, this, [this](const QString& d) {
        imageInfo_->setText(d.isEmpty() ? "No image: the question will be text only." : d);
        message_->clear();
    });
    connect(image_, &ImageView::imageRejected, this, [this](const QString& s) { showMessage(s, true); });
    connect(compression_, &CompressionPanel::policyEdited, this, [this] {
        if (!hasRun_ || !hasModel_) return;
        if (busy_) rerunPending_ = true;
        else rerunCompressed();
    });
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu("&File");
    file->addAction("Open &image…", QKeySequence::Open, this, [this] {
        const QString f = QFileDialog::getOpenFileName(this, "Image", {}, "Images (*.png *.jpg *.jpeg *.bmp *.webp *.tif *.tiff);;All files (*)");
        if (!f.isEmpty()) image_->loadFile(f);
    });
    file->addAction("&Paste image", QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_V), this,
                    [this] { image_->takeMimeData(QApplication::clipboard()->mimeData()); });
    file->addAction("&Clear image", this, [this] { image_->clearImage(); });
    file->addSeparator();
    file->addAction("&Models…", this, [this] {
        auto* d = new ModelManagerDialog(this);
        d->setAttribute(Qt::WA_DeleteOnClose);
        connect(d, &ModelManagerDialog::loadRequested, this, [this](const QString& dir, bool demo, int device) {
            if (demo) loadDemoModel();
            else loadModel(dir, false, device);
        });
        d->open();
    });
    file->addAction("&Batch evaluation…", this, &MainWindow::openBatchDialog);
    file->addSeparator();
    file->addAction("Export &history…", this, &MainWindow::exportHistory);
    file->addAction("Export &heatmaps…", this, &MainWindow::exportHeatmaps);
    file->addSeparator();
    file->addAction("&Quit", QKeySequence::Quit, this, &QWidget::close);
}

void MainWindow::connectWorker() {
    connect(this, &MainWindow::requestLoad, worker_, &EngineWorker::loadModel);
    connect(this, &MainWindow::requestRun, worker_, &EngineWorker::run);
    connect(this, &MainWindow::requestRerun, worker_, &EngineWorker::rerunCompressed);
    connect(this, &MainWindow::requestBatch, worker_, &EngineWorker::runBatch);

    connect(worker_, &EngineWorker::loadProgress, this, [this](double f, const QString& what) {
        loadBar_->setValue(int(f * 1000));
        loadBar_->setFormat(QString("%1% %2").arg(int(f * 100)).arg(what));
    });
    auto loadEnded = [this] {
        loading_ = false;
        loadBar_->setVisible(false);
        cancelLoad_->setVisible(false);
        setBusy(false);
    };
    connect(worker_, &EngineWorker::modelLoaded, this, [this, loadEnded](const ModelSummary& s) {
        loadEnded();
        model_ = s;
        hasModel_ = true;
        hasRun_ = false;
        modelLabel_->setText(s.demo ? "<b>Demo model</b> — tiny random weights, answers are meaningless. "
                                      "Open a llava-hf folder under File → Models."
                                    : QString("<b>%1</b>").arg(s.dir.toHtmlEscaped()));
        metrics_->setModel(s);
        stepHeatmap_->reset(s.layers);
        showMessage(QString("Model loaded on %1; KV cache in %2; weights %3.")
                            .arg(s.device, s.kvDtype, s.weightsInMemory ? "read into memory" : "mapped from their files") +
                        (s.weightsNote.isEmpty() ? QString() : " " + s.weightsNote),
                    false);
    });
    connect(worker_, &EngineWorker::loadFailed, this, [this, loadEnded](const QString& s) {
        loadEnded();
        showMessage("The model could not be loaded: " + s + (hasModel_ ? " The previous model stays loaded." : ""), true);
    });
    connect(worker_, &EngineWorker::loadCancelled, this, [this, loadEnded] {
        loadEnded();
        showMessage(QString("Loading cancelled.") + (hasModel_ ? " The previous model stays loaded." : ""), false);
    });

    connect(worker_, &EngineWorker::runStarted, this, [this](bool compareFull, bool reused) {
        metrics_->startRun(compareFull || (reused && fullRan_));
        compressedPane_->clear();
        compressedText_.clear();
        if (!reused) {
            fullPane_->clear();
            fullText_.clear();
            fullRan_ = compareFull;
            fullPane_->setPlaceholderText(compareFull ? "" : "The full-cache answer is off (Compression → Full cache beside).");
        } else if (fullRan_) {
            fullPane_->setPlainText(fullText_);  // drop the old highlighting; the text stays
        }
        stepHeatmap_->reset(model_.layers);
    });
    connect(worker_, &EngineWorker::prefillDone, this, [this](const PrefillInfo& info) {
        keptMap_->setPrefill(info);
        metrics_->setPrefill(info);
    });
    connect(worker_, &EngineWorker::compressed, this, [this](const CompressionInfo& c) {
        budget_->setBudget(c.layerBudget, c.promptTokens, c.policy);
        compressedTitle_->setText("<b>Compressed</b> — " + c.policy.toHtmlEscaped());
    });
    connect(worker_, &EngineWorker::stepped, this, &MainWindow::onStep);
    connect(worker_, &EngineWorker::comparisonReady, this, [this](const Comparison& c) {
        comparison_ = c;
        metrics_->setComparison(c);
    });
    connect(worker_, &EngineWorker::runFinished, this, &MainWindow::onRunFinished);
    connect(worker_, &EngineWorker::runFailed, this, [this](const QString& s) {
        setBusy(false);
        showMessage(s, true);
        emit runCompleted();
    });
}

void MainWindow::showMessage(const QString& text, bool error) {
    message_->setStyleSheet(error ? "color:#c62828" : "");
    message_->setText(text);
    statusBar()->showMessage(text, 8000);
}

void MainWindow::setBusy(bool busy) {
    busy_ = busy;
    generate_->setEnabled(!busy);
    stop_->setEnabled(busy && !loading_);
}

void MainWindow::setInstruction(const QString& text) { instruction_->setPlainText(text); }
void MainWindow::setMaxNewTokens(int n) { maxNew_->setValue(n); }
QString MainWindow::compressedText() const { return compressedText_; }
QString MainWindow::fullText() const { return fullText_; }
QString MainWindow::message() const { return message_->text(); }

void MainWindow::loadModel(const QString& dir, bool demo, int device) {
    if (busy_) {
        showMessage("Wait for the current answer to finish (or press Stop) before loading a model.", true);
        return;
    }
    loading_ = true;
    setBusy(true);
    loadBar_->setValue(0);
    loadBar_->setVisible(true);
    cancelLoad_->setVisible(true);
    showMessage(demo ? "Loading the embedded demo model…" : "Loading " + dir + "…", false);
    worker_->armForRequest();
    emit requestLoad(dir, demo, device);
}

void MainWindow::loadDemoModel() {
    try {
        loadModel(QString::fromStdString(pkvcli::extractDemoModel()), true);
    } catch (const pkv::Error& e) {
        showMessage(QString::fromStdString(e.what()), true);
    }
}

void MainWindow::cancelLoad() { worker_->requestLoadCancel(); }

void MainWindow::generate() {
    if (busy_) return;
    if (!hasModel_) {
        showMessage(loading_ ? "The model is still loading." : "Load a model first (File → Models).", true);
        return;
    }
    RunRequest r;
    r.instruction = instruction_->toPlainText().trimmed();
    if (r.instruction.isEmpty()) {
        showMessage("Type an instruction first.", true);
        return;
    }
    try {
        r.policy = compression_->spec();
    } catch (const pkv::Error& e) {
        showMessage(QString::fromStdString(e.what()), true);
        return;
    }
    r.image = image_->image();
    r.imageName = image_->name();
    r.compareFull = compression_->compareFull();
    r.positionMode = compression_->positionMode();
    r.imageMode = compression_->imageMode();
    r.maxNewTokens = maxNew_->value();
    r.temperature = float(temperature_->value());
    r.topP = float(topP_->value());
    r.seed = quint64(seed_->value());
    lastRequest_ = r;
    hasRun_ = true;
    rerunPending_ = false;
    message_->clear();
    setBusy(true);
    worker_->armForRequest();
    emit requestRun(r);
}

void MainWindow::rerunCompressed() {
    rerunPending_ = false;
    try {
        lastRequest_.policy = compression_->spec();
    } catch (const pkv::Error& e) {
        showMessage(QString::fromStdString(e.what()), true);
        return;
    }
    setBusy(true);
    worker_->armForRequest();
    emit requestRerun(lastRequest_.policy);
}

void MainWindow::stop() { worker_->requestStop(); }

void MainWindow::onStep(const StepUpdate& u) {
    QTextEdit* pane = u.side == Side::Compressed ? compressedPane_ : fullPane_;
    (u.side == Side::Compressed ? compressedText_ : fullText_) += u.text;
    pane->moveCursor(QTextCursor::End);
    pane->insertPlainText(u.text);
    if (u.step >= 0 && u.side == Side::Compressed) {
        stepHeatmap_->addStep(u.layerLengths, u.tokensSeen);
        keptMap_->setStep(u.kept, u.tokensSeen, u.tokenText);
    }
    metrics_->addStep(u);
}

void MainWindow::onRunFinished(bool stopped) {
    setBusy(false);
    if (stopped) {
        showMessage("Stopped.", false);
    } else {
        if (fullRan_) highlightDifferences();
        recordHistory();
    }
    emit runCompleted();
    if (rerunPending_ && !stopped) rerunCompressed();
}

void MainWindow::highlightDifferences() {
    const WordDiff d = diffWords(compressedText_, fullText_);
    compressedPane_->setHtml(highlightedHtml(d.leftWords, d.leftDiffers));
    fullPane_->setHtml(highlightedHtml(d.rightWords, d.rightDiffers));
}

void MainWindow::recordHistory() {
    HistoryEntry e;
    e.when = QDateTime::currentDateTime();
    e.model = model_.demo ? "demo" : model_.dir;
    e.image = lastRequest_.imageName;
    e.instruction = lastRequest_.instruction;
    e.policy = QString::fromStdString(pkv::describePolicy(lastRequest_.policy));
    e.compressedAnswer = compressedText_;
    if (fullRan_) e.fullAnswer = fullText_;
    if (comparison_.valid && comparison_.scoredTokens > 0) {
        e.pplCompressed = comparison_.pplCompressed;
        e.pplFull = comparison_.pplFull;
    }
    if (comparison_.valid && !comparison_.note.contains("ROUGE")) e.rougeL = comparison_.rougeReference;
    e.kvMibKept = metrics_->keptMib();
    e.kvMibFull = metrics_->fullMib();
    comparison_ = {};
    history_.add(e);
    historyList_->addItem(QString("%1 — %2").arg(e.instruction.left(50), e.policy));
}

void MainWindow::exportHeatmaps() {
    const QString dir = QFileDialog::getExistingDirectory(this, "Export heatmaps into");
    if (dir.isEmpty()) return;
    const bool ok = stepHeatmap_->exportPng(dir + "/cache_length_heatmap.png") &&
                    keptMap_->exportPng(dir + "/kept_tokens_heatmap.png");
    showMessage(ok ? "Heatmaps written to " + dir + "." : "Cannot write the heatmaps into " + dir + ".", !ok);
}

void MainWindow::exportHistory() {
    const QString f = QFileDialog::getSaveFileName(this, "Export history", "prefixkv-history.md",
                                                   "Markdown (*.md);;JSON (*.json)");
    if (f.isEmpty()) return;
    QString error;
    if (history_.exportTo(f, &error)) showMessage("History written to " + f + ".", false);
    else showMessage(error, true);
}

void MainWindow::openBatchDialog() {
    auto* d = new BatchDialog(worker_, this);
    d->setAttribute(Qt::WA_DeleteOnClose);
    d->show();
}

}  // namespace pkvui
