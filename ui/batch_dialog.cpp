#include "ui/batch_dialog.h"

#include <QChart>
#include <QChartView>
#include <QDir>
#include <QFile>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QLineSeries>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QSplitter>
#include <QTabWidget>
#include <QTableWidget>
#include <QValueAxis>
#include <QVBoxLayout>
#include <map>

#include "engine/common/error.h"
#include "engine/eval/results.h"

namespace pkvui {
namespace {

QHBoxLayout* withBrowse(QLineEdit* edit, QWidget* parent, bool folder) {
    auto* row = new QHBoxLayout;
    auto* b = new QPushButton("…");
    row->addWidget(edit, 1);
    row->addWidget(b);
    QObject::connect(b, &QPushButton::clicked, parent, [edit, parent, folder] {
        const QString p = folder ? QFileDialog::getExistingDirectory(parent, "Folder", edit->text())
                                 : QFileDialog::getOpenFileName(parent, "Dataset file", edit->text(), "JSON (*.json);;All files (*)");
        if (!p.isEmpty()) edit->setText(p);
    });
    return row;
}

QString formatEta(double seconds) {
    if (seconds < 0) return "ETA —";
    const int s = int(seconds + 0.5);
    return s >= 3600 ? QString("ETA %1 h %2 min").arg(s / 3600).arg((s % 3600) / 60)
                     : QString("ETA %1 min %2 s").arg(s / 60).arg(s % 60);
}

QString numberCell(const nlohmann::json& v, int digits) {
    return v.is_number() ? QString::number(v.get<double>(), 'f', digits) : QString("—");
}

}  // namespace

BatchDialog::BatchDialog(EngineWorker* worker, QWidget* parent) : QDialog(parent), worker_(worker) {
    setWindowTitle("Batch evaluation");
    resize(1100, 760);
    datasetFile_ = new QLineEdit;
    datasetFile_->setPlaceholderText("mm-vet.json or detail_1k.json");
    imageDir_ = new QLineEdit;
    methods_ = new QListWidget;
    for (const std::string& m : pkv::knownMethods()) {
        auto* item = new QListWidgetItem(QString::fromStdString(m), methods_);
        item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
        item->setCheckState(m == "full" || m == "prefixkv" ? Qt::Checked : Qt::Unchecked);
    }
    methods_->setFlow(QListView::LeftToRight);
    methods_->setWrapping(true);
    methods_->setFixedHeight(2 * methods_->sizeHintForRow(0) + 12);
    budgets_ = new QLineEdit("20, 50");
    budgets_->setToolTip("KV kept, percent, comma-separated");
    samples_ = new QSpinBox;
    samples_->setRange(0, 1000000);
    samples_->setSpecialValueText("all");
    maxNew_ = new QSpinBox;
    maxNew_->setRange(1, 4096);
    maxNew_->setValue(64);
    outDir_ = new QLineEdit;
    run_ = new QPushButton("Run");
    run_->setObjectName("batchRun");
    cancel_ = new QPushButton("Cancel");
    cancel_->setEnabled(false);
    progress_ = new QProgressBar;
    eta_ = new QLabel("ETA —");
    error_ = new QLabel;
    error_->setObjectName("batchError");
    error_->setWordWrap(true);
    error_->setStyleSheet("color:#c62828");
    log_ = new QPlainTextEdit;
    log_->setReadOnly(true);
    table_ = new QTableWidget;
    table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    pplChart_ = new QChartView;
    rougeChart_ = new QChartView;
    kvChart_ = new QChartView;
    for (QChartView* v : {pplChart_, rougeChart_, kvChart_}) v->setRenderHint(QPainter::Antialiasing);

    auto* form = new QFormLayout;
    form->addRow("Dataset file", withBrowse(datasetFile_, this, false));
    form->addRow("Image folder", withBrowse(imageDir_, this, true));
    form->addRow("Methods", methods_);
    form->addRow("Budgets (% kept)", budgets_);
    auto* limits = new QHBoxLayout;
    limits->addWidget(new QLabel("Samples"));
    limits->addWidget(samples_);
    limits->addWidget(new QLabel("Max new tokens"));
    limits->addWidget(maxNew_);
    limits->addStretch();
    form->addRow("", limits);
    form->addRow("Output folder", withBrowse(outDir_, this, true));
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(run_);
    buttons->addWidget(cancel_);
    buttons->addWidget(progress_, 1);
    buttons->addWidget(eta_);
    auto* exportCsvButton = new QPushButton("Export CSV…");
    auto* exportJsonButton = new QPushButton("Export JSON…");
    buttons->addWidget(exportCsvButton);
    buttons->addWidget(exportJsonButton);

    auto* charts = new QTabWidget;
    charts->addTab(pplChart_, "PPL vs budget");
    charts->addTab(rougeChart_, "ROUGE-L vs budget");
    charts->addTab(kvChart_, "KV MiB vs budget");
    auto* results = new QSplitter(Qt::Horizontal);
    auto* leftSplit = new QSplitter(Qt::Vertical);
    leftSplit->addWidget(table_);
    leftSplit->addWidget(log_);
    results->addWidget(leftSplit);
    results->addWidget(charts);
    results->setSizes({640, 520});

    auto* v = new QVBoxLayout(this);
    v->addLayout(form);
    v->addLayout(buttons);
    v->addWidget(error_);
    v->addWidget(results, 1);

    connect(run_, &QPushButton::clicked, this, &BatchDialog::start);
    connect(cancel_, &QPushButton::clicked, this, &BatchDialog::cancel);
    connect(exportCsvButton, &QPushButton::clicked, this, [this] {
        const QString f = QFileDialog::getSaveFileName(this, "Export CSV", "summary.csv", "CSV (*.csv)");
        if (!f.isEmpty() && !exportCsv(f)) showError("Cannot write " + f + ".");
    });
    connect(exportJsonButton, &QPushButton::clicked, this, [this] {
        const QString f = QFileDialog::getSaveFileName(this, "Export JSON", "summary.json", "JSON (*.json)");
        if (!f.isEmpty() && !exportJson(f)) showError("Cannot write " + f + ".");
    });
    connect(this, &BatchDialog::requestBatch, worker_, &EngineWorker::runBatch);
    connect(worker_, &EngineWorker::batchProgress, this, [this](int done, int total, double eta, const QString&) {
        if (!running_) return;
        progress_->setRange(0, std::max(1, total));
        progress_->setValue(done);
        eta_->setText(formatEta(eta));
    });
    connect(worker_, &EngineWorker::batchLog, this, [this](const QString& line) {
        if (running_) log_->appendPlainText(line);
    });
    connect(worker_, &EngineWorker::batchFinished, this, [this](bool cancelled, const QString& dir) {
        if (!running_) return;
        setRunning(false);
        log_->appendPlainText(cancelled ? "Cancelled; press Run to resume from here." : "Finished.");
        run_->setText(cancelled ? "Resume" : "Run");
        showResults(dir);
        emit runEnded(cancelled);
    });
    connect(worker_, &EngineWorker::batchFailed, this, [this](const QString& s) {
        if (!running_) return;
        setRunning(false);
        showError(s);
        emit runEnded(true);
    });
}

void BatchDialog::setDataset(const QString& file, const QString& imageDir) {
    datasetFile_->setText(file);
    imageDir_->setText(imageDir);
}

void BatchDialog::setMethods(const QStringList& methods) {
    for (int i = 0; i < methods_->count(); ++i)
        methods_->item(i)->setCheckState(methods.contains(methods_->item(i)->text()) ? Qt::Checked : Qt::Unchecked);
}

void BatchDialog::setBudgets(const QString& percents) { budgets_->setText(percents); }
void BatchDialog::setSampleLimit(int n) { samples_->setValue(n); }
void BatchDialog::setMaxNewTokens(int n) { maxNew_->setValue(n); }
void BatchDialog::setOutputDir(const QString& dir) { outDir_->setText(dir); }
QString BatchDialog::errorText() const { return error_->text(); }
int BatchDialog::resultRows() const { return table_->rowCount(); }

BatchRequest BatchDialog::request() const {
    BatchRequest r;
    r.datasetFile = datasetFile_->text().trimmed();
    r.imageDir = imageDir_->text().trimmed();
    r.outDir = outDir_->text().trimmed();
    r.maxSamples = samples_->value();
    r.maxNewTokens = maxNew_->value();
    if (r.datasetFile.isEmpty()) throw pkv::Error("Choose a dataset file (MM-Vet or LLaVA-Description JSON).");
    if (r.outDir.isEmpty()) throw pkv::Error("Choose an output folder for the results.");
    std::vector<double> budgets;
    for (const QString& part : budgets_->text().split(',', Qt::SkipEmptyParts)) {
        bool ok = false;
        const double b = part.trimmed().toDouble(&ok);
        if (!ok) throw pkv::Error("The budget \"" + part.trimmed().toStdString() + "\" is not a number.");
        budgets.push_back(b);
    }
    for (int i = 0; i < methods_->count(); ++i) {
        if (methods_->item(i)->checkState() != Qt::Checked) continue;
        pkv::PolicySpec s;
        s.method = methods_->item(i)->text().toStdString();
        if (s.method == "full") {
            r.policies.push_back(s);
            continue;
        }
        if (budgets.empty()) throw pkv::Error("Give at least one budget (percent of the KV cache kept).");
        for (double b : budgets) {
            s.budget = pkv::Budget::keptPercent(b);
            r.policies.push_back(s);
        }
    }
    if (r.policies.empty()) throw pkv::Error("Tick at least one method.");
    return r;
}

void BatchDialog::setRunning(bool running) {
    running_ = running;
    run_->setEnabled(!running);
    cancel_->setEnabled(running);
}

void BatchDialog::showError(const QString& s) { error_->setText(s); }

void BatchDialog::start() {
    if (running_) return;
    BatchRequest r;
    try {
        r = request();
    } catch (const pkv::Error& e) {
        showError(QString::fromStdString(e.what()));
        return;
    }
    error_->clear();
    log_->appendPlainText(QString("%1 %2 policies into %3")
                              .arg(QFile::exists(r.outDir + "/results.jsonl") ? "Resuming" : "Running")
                              .arg(r.policies.size()).arg(r.outDir));
    progress_->setValue(0);
    setRunning(true);
    worker_->armForRequest();
    emit requestBatch(r);
}

void BatchDialog::cancel() {
    if (running_) worker_->requestStop();
}

void BatchDialog::showResults(const QString& outDir) {
    resultsDir_ = outDir;
    nlohmann::json summary;
    try {
        pkv::writeSummary(outDir.toStdString());
        summary = pkv::readJsonFile(outDir.toStdString() + "/summary.json");
    } catch (const pkv::Error& e) {
        showError(QString::fromStdString(e.what()));
        return;
    }
    const nlohmann::json& rows = summary;  // one object per policy, in run order
    const QStringList headers{"policy", "samples", "PPL", "ROUGE-L", "ROUGE-L (textbook)", "KV MiB", "kept"};
    table_->clear();
    table_->setColumnCount(int(headers.size()));
    table_->setHorizontalHeaderLabels(headers);
    table_->setRowCount(int(rows.size()));
    int i = 0;
    for (const auto& row : rows) {
        const QStringList cells{QString::fromStdString(row.value("policy", row.value("key", ""))),
                                QString::number(row.value("samples", 0)),
                                numberCell(row.value("ppl", nlohmann::json()), 3),
                                numberCell(row.value("rouge_l", nlohmann::json()), 4),
                                numberCell(row.value("rouge_l_textbook", nlohmann::json()), 4),
                                numberCell(row.value("kv_mib", nlohmann::json()), 3),
                                numberCell(row.value("kept_fraction", nlohmann::json()), 3)};
        for (int c = 0; c < cells.size(); ++c) table_->setItem(i, c, new QTableWidgetItem(cells[c]));
        ++i;
    }
    table_->resizeColumnsToContents();
    table_->resizeRowsToContents();
    plot(pplChart_, rows, "ppl", "PPL of the reference answer vs KV kept");
    plot(rougeChart_, rows, "rouge_l", "ROUGE-L vs KV kept");
    plot(kvChart_, rows, "kv_mib", "KV cache MiB vs KV kept");
}

// One line per method over the budgets it ran; "full" is drawn as a flat line at 100%.
void BatchDialog::plot(QChartView* view, const nlohmann::json& rows, const char* field, const QString& title) {
    std::map<std::string, std::vector<QPointF>> lines;
    for (const auto& row : rows) {
        const auto v = row.value(field, nlohmann::json());
        if (!v.is_number()) continue;
        const double x = row.value("keep_percent", nlohmann::json(100.0)).is_number() ? row.value("keep_percent", 100.0) : 100.0;
        lines[row.value("method", std::string("?"))].push_back(QPointF(x, v.get<double>()));
    }
    auto* chart = new QChart;
    chart->setTitle(title);
    auto* x = new QValueAxis;
    x->setRange(0, 100);
    x->setTitleText("KV kept (%)");
    x->setLabelFormat("%d");
    auto* y = new QValueAxis;
    y->setTitleText(field);
    chart->addAxis(x, Qt::AlignBottom);
    chart->addAxis(y, Qt::AlignLeft);
    double lo = 1e300, hi = -1e300;
    for (auto& [method, points] : lines) {
        std::sort(points.begin(), points.end(), [](const QPointF& a, const QPointF& b) { return a.x() < b.x(); });
        auto* s = new QLineSeries;
        s->setName(QString::fromStdString(method));
        for (const QPointF& p : points) {
            s->append(p);
            lo = std::min(lo, p.y());
            hi = std::max(hi, p.y());
        }
        if (points.size() == 1) s->append(QPointF(0, points[0].y()));  // a single budget still shows as a line
        s->setPointsVisible(true);
        chart->addSeries(s);
        s->attachAxis(x);
        s->attachAxis(y);
    }
    if (lo <= hi) {
        const double pad = std::max(1e-6, (hi - lo) * 0.1);
        y->setRange(lo - pad, hi + pad);
    }
    QChart* old = view->chart();
    view->setChart(chart);
    delete old;
}

bool BatchDialog::exportCsv(const QString& path) const {
    if (resultsDir_.isEmpty()) return false;
    QFile::remove(path);
    return QFile::copy(resultsDir_ + "/summary.csv", path);
}

bool BatchDialog::exportJson(const QString& path) const {
    if (resultsDir_.isEmpty()) return false;
    QFile::remove(path);
    return QFile::copy(resultsDir_ + "/summary.json", path);
}

}  // namespace pkvui
