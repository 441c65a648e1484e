#pragma once
// The main window: image + instruction in, two answers streaming side by side (compressed and
// full cache from one prefill), the compression controls, live heatmaps and readouts. All engine
// work happens on one worker thread; this window only sends requests and draws results.
#include <QMainWindow>
#include <QThread>

#include "ui/engine_types.h"
#include "ui/history.h"
#include "ui/image_view.h"

class QLabel;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QTextEdit;
class QListWidget;
class QDoubleSpinBox;
class QSpinBox;

namespace pkvui {

class BudgetChart;
class CompressionPanel;
class EngineWorker;
class ImageView;
class KeptMapWidget;
class LayerStepHeatmap;
class MetricsPanel;
struct BatchRequest;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    void loadModel(const QString& dir, bool demo, int device = 0);
    void loadDemoModel();

    // The parts tests and the screenshot tool drive.
    EngineWorker* worker() const { return worker_; }
    ImageView* imageView() const { return image_; }
    CompressionPanel* compression() const { return compression_; }
    LayerStepHeatmap* stepHeatmap() const { return stepHeatmap_; }
    KeptMapWidget* keptMap() const { return keptMap_; }
    MetricsPanel* metrics() const { return metrics_; }
    const History& history() const { return history_; }
    void setInstruction(const QString& text);
    void setMaxNewTokens(int n);
    QString compressedText() const;
    QString fullText() const;
    QString message() const;
    bool isBusy() const { return busy_; }
    bool isLoading() const { return loading_; }
    bool hasModel() const { return hasModel_; }

public slots:
    void generate();
    void stop();
    void cancelLoad();
    void openBatchDialog();

signals:
    void requestLoad(const QString& dir, bool demo, int device);
    void requestRun(const pkvui::RunRequest& request);
    void requestRerun(const pkv::PolicySpec& policy);
    void requestBatch(const pkvui::BatchRequest& request);
    void runCompleted();  // both sides done and the readouts in (or stopped / failed)

private:
    void buildUi();
    void buildMenus();
    void connectWorker();
    void showMessage(const QString& text, bool error);
    void setBusy(bool busy);
    void rerunCompressed();
    void onStep(const StepUpdate& u);
    void onRunFinished(bool stopped);
    void highlightDifferences();
    void recordHistory();
    void exportHeatmaps();
    void exportHistory();

    QThread thread_;
    EngineWorker* worker_;
    ImageView* image_;
    QLabel* imageInfo_;
    QPlainTextEdit* instruction_;
    QPushButton* generate_;
    QPushButton* stop_;
    QSpinBox* maxNew_;
    QDoubleSpinBox* temperature_;
    QDoubleSpinBox* topP_;
    QSpinBox* seed_;
    CompressionPanel* compression_;
    QLabel* modelLabel_;
    QProgressBar* loadBar_;
    QPushButton* cancelLoad_;
    QLabel* message_;
    QLabel* compressedTitle_;
    QLabel* fullTitle_;
    QTextEdit* compressedPane_;
    QTextEdit* fullPane_;
    LayerStepHeatmap* stepHeatmap_;
    KeptMapWidget* keptMap_;
    BudgetChart* budget_;
    MetricsPanel* metrics_;
    QListWidget* historyList_;

    ModelSummary model_;
    History history_;
    RunRequest lastRequest_;
    QString compressedText_, fullText_;
    Comparison comparison_;
    bool busy_ = false, loading_ = false, hasModel_ = false;
    bool hasRun_ = false, fullRan_ = false, rerunPending_ = false, comparisonPending_ = false;
};

}  // namespace pkvui
