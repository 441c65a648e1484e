#pragma once
// Batch evaluation: a dataset (MM-Vet or LLaVA-Description file + image folder), methods x
// budgets, a sample limit and an output folder, run on the engine worker with the same runner and
// files as `prefixkv eval` — so a folder can be resumed by either, and the CSV is the same.
#include <QDialog>
#include <nlohmann/json.hpp>

#include "ui/engine_worker.h"

class QChartView;
class QLabel;
class QLineEdit;
class QListWidget;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QTableWidget;

namespace pkvui {

class BatchDialog : public QDialog {
    Q_OBJECT
public:
    BatchDialog(EngineWorker* worker, QWidget* parent = nullptr);

    void setDataset(const QString& file, const QString& imageDir);
    void setMethods(const QStringList& methods);
    void setBudgets(const QString& percents);  // "10, 20, 50"
    void setSampleLimit(int n);
    void setMaxNewTokens(int n);
    void setOutputDir(const QString& dir);
    // Throws pkv::Error when the budgets or methods are unusable.
    BatchRequest request() const;

    QString errorText() const;
    int resultRows() const;
    QTableWidget* table() const { return table_; }
    bool exportCsv(const QString& path) const;
    bool exportJson(const QString& path) const;

public slots:
    void start();  // runs, or resumes when the folder holds results
    void cancel();

signals:
    void requestBatch(const pkvui::BatchRequest& request);
    void runEnded(bool cancelled);

private:
    void showResults(const QString& outDir);
    void plot(QChartView* view, const nlohmann::json& summary, const char* field, const QString& title);
    void setRunning(bool running);
    void showError(const QString& s);

    EngineWorker* worker_;
    QLineEdit* datasetFile_;
    QLineEdit* imageDir_;
    QListWidget* methods_;
    QLineEdit* budgets_;
    QSpinBox* samples_;
    QSpinBox* maxNew_;
    QLineEdit* outDir_;
    QPushButton* run_;
    QPushButton* cancel_;
    QProgressBar* progress_;
    QLabel* eta_;
    QLabel* error_;
    QPlainTextEdit* log_;
    QTableWidget* table_;
    QChartView* pplChart_;
    QChartView* rougeChart_;
    QChartView* kvChart_;
    QString resultsDir_;
    bool running_ = false;
};

}  // namespace pkvui
