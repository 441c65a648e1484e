// The main window, offscreen, on the tiny fixture model: both panes fill, the heatmaps show
// exactly the engine's caches, the slider re-runs only the compressed side, and bad input (a file
// that is not an image, a corrupt model folder, a cancelled load) gives a message while the
// window keeps working.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QComboBox>
#include <QMimeData>
#include <QSettings>
#include <QTemporaryDir>
#include <QtTest>

#include "ui/compression_panel.h"
#include "ui/engine_worker.h"
#include "ui/image_view.h"
#include "ui/kept_map_widget.h"
#include "ui/layer_step_heatmap.h"
#include "ui/main_window.h"
#include "ui/metrics_panel.h"
#include "ui/model_manager.h"
#include "ui_test_support.h"

using namespace pkvui;

namespace {
const char* kQuestion = "What is in this picture?";
}

class TestMainWindow : public QObject {
    Q_OBJECT
    std::unique_ptr<MainWindow> w_;
    std::shared_ptr<pkv::LlavaModel> model_;
    pkv::RgbImage image_;

    bool loadTiny(MainWindow& w) {
        w.loadModel(uitest::tinyModelDir(), false, int(pkv::DeviceChoice::Cpu));
        return QTest::qWaitFor([&] { return !w.isLoading(); }, 30000) && w.hasModel();
    }
    // Runs Generate and waits for both sides and the readouts.
    bool generateAndWait() {
        QSignalSpy completed(w_.get(), &MainWindow::runCompleted);
        w_->generate();
        return QTest::qWaitFor([&] { return completed.count() == 1; }, 60000);
    }
    void compareHeatmapWith(const uitest::DirectRun& direct) {
        QCOMPARE(w_->stepHeatmap()->steps(), int(direct.lengths.size()));
        for (int s = 0; s < w_->stepHeatmap()->steps(); ++s)
            QCOMPARE(w_->stepHeatmap()->column(s), direct.lengths[size_t(s)]);
        // The kept map holds, per layer, as many tokens as the last step's cache.
        for (size_t l = 0; l < direct.lengths.back().size(); ++l) {
            int64_t kept = 0;
            for (int64_t p = 0; p < w_->keptMap()->positions(); ++p) kept += w_->keptMap()->isKept(int(l), p);
            QCOMPARE(kept, direct.lengths.back()[l]);
        }
    }

private slots:
    void initTestCase() {
        QCoreApplication::setOrganizationName("PrefixKVTest");
        QCoreApplication::setApplicationName("test_main_window");
        QSettings().remove("kvDtype");  // a run stopped inside kvCacheChoiceFollowsTheSetting leaves f16 behind
        QSettings().remove("weights");
        w_ = std::make_unique<MainWindow>();
        w_->show();
        QVERIFY(loadTiny(*w_));
        model_ = pkv::LlavaModel::load(pkvtest::str(uitest::tinyModelDir()), {pkv::DeviceChoice::Cpu});
        image_ = pkv::decodeImageFile(pkvtest::str(uitest::fixtureImagePath()));
        QVERIFY(w_->imageView()->loadFile(uitest::fixtureImagePath()));
        w_->setInstruction(kQuestion);
        w_->setMaxNewTokens(20);
        w_->compression()->setMethod("prefixkv");
        w_->compression()->setKeptPercent(40);
        w_->compression()->setCompareFull(true);
    }

    void tokensStreamIntoBothPanesAndHeatmapsFollowTheEngine() {
        QSignalSpy steps(w_->worker(), &EngineWorker::stepped);
        QVERIFY(generateAndWait());
        int comp = 0, full = 0;
        for (const auto& a : steps) {
            const auto u = a.first().value<StepUpdate>();
            if (u.step < 0) continue;
            (u.side == Side::Compressed ? comp : full)++;
        }
        QCOMPARE(comp, 20);
        QCOMPARE(full, 20);
        QVERIFY(!w_->compressedText().isEmpty());
        QVERIFY(!w_->fullText().isEmpty());
        const auto spec = uitest::prefixKv(40);
        compareHeatmapWith(uitest::runDirect(model_, kQuestion, &image_, &spec, 20, true));
        QVERIFY(w_->metrics()->value("ppl").contains("compressed"));
        QVERIFY(w_->metrics()->value("rouge").contains("textbook"));
        QCOMPARE(int(w_->history().entries().size()), 1);
    }

    // Moving the slider after a run decodes the compressed side again from the kept prefill:
    // no new prefill, the full pane untouched, the heatmap that of the new budget.
    void sliderRerunsOnlyTheCompressedSide() {
        const QString full = w_->fullText();
        const QString compressed = w_->compressedText();
        const int prefills = w_->worker()->prefillCount();
        QSignalSpy completed(w_.get(), &MainWindow::runCompleted);
        QSignalSpy sides(w_->worker(), &EngineWorker::sideFinished);
        w_->compression()->setKeptPercent(10);
        QVERIFY(QTest::qWaitFor([&] { return completed.count() == 1; }, 60000));
        QCOMPARE(w_->worker()->prefillCount(), prefills);
        QCOMPARE(w_->fullText(), full);
        QCOMPARE(sides.count(), 1);
        QCOMPARE(int(sides.first().first().value<SideResult>().side), int(Side::Compressed));
        const auto spec = uitest::prefixKv(10);
        const auto direct = uitest::runDirect(model_, kQuestion, &image_, &spec, 20, true);
        compareHeatmapWith(direct);
        QVERIFY(w_->compressedText() != compressed || direct.lengths[0] != uitest::runDirect(
            model_, kQuestion, &image_, nullptr, 1, true).lengths[0]);
        QCOMPARE(int(w_->history().entries().size()), 2);
        QCOMPARE(w_->history().entries().back().fullAnswer, full);
    }

    void compressedSideAlone() {
        w_->compression()->setCompareFull(false);
        QSignalSpy sides(w_->worker(), &EngineWorker::sideFinished);
        QVERIFY(generateAndWait());
        QCOMPARE(sides.count(), 1);
        QVERIFY(w_->fullText().isEmpty());
        w_->compression()->setCompareFull(true);
    }

    void hoverDescribesCells() {
        const QString d = w_->keptMap()->describeCell(0, 0);
        QVERIFY(d.contains("layer 0, position 0"));
        QVERIFY(d.contains("importance"));
        QCOMPARE(w_->keptMap()->segmentOf(0), KeptMapWidget::Segment::System);
        QTemporaryDir dir;
        QVERIFY(w_->keptMap()->exportPng(dir.filePath("kept.png")));
        QVERIFY(QImage(dir.filePath("kept.png")).width() > 0);
    }

    void historyExportsJsonAndMarkdown() {
        QTemporaryDir dir;
        QString error;
        QVERIFY(w_->history().exportTo(dir.filePath("h.json"), &error));
        QVERIFY(w_->history().exportTo(dir.filePath("h.md"), &error));
        QFile j(dir.filePath("h.json"));
        QVERIFY(j.open(QIODevice::ReadOnly));
        const QJsonArray a = QJsonDocument::fromJson(j.readAll()).array();
        QCOMPARE(a.size(), qsizetype(w_->history().entries().size()));
        QCOMPARE(a.first().toObject()["instruction"].toString(), QString(kQuestion));
        QVERIFY(a.first().toObject()["ppl_compressed"].toDouble() >= 1.0);
        QFile m(dir.filePath("h.md"));
        QVERIFY(m.open(QIODevice::ReadOnly));
        const QString md = QString::fromUtf8(m.readAll());
        QVERIFY(md.contains("## 1. What is in this picture?"));
        QVERIFY(md.contains("**Full-cache answer**"));
    }

    void nonImageDroppedKeepsThePreviousImage() {
        QTemporaryDir dir;
        QFile f(dir.filePath("notes.txt"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("not an image at all");
        f.close();
        auto* view = w_->imageView();
        const auto before = view->image();
        QMimeData mime;
        mime.setUrls({QUrl::fromLocalFile(f.fileName())});
        QVERIFY(!view->takeMimeData(&mime));
        QVERIFY2(w_->message().contains("notes.txt"), qPrintable(w_->message()));
        QCOMPARE(view->image(), before);
        // A good image dropped the same way is taken, with its size shown.
        QMimeData good;
        good.setUrls({QUrl::fromLocalFile(pkvtest::sourceDir() + "/resources/samples/chelsea.jpg")});
        QVERIFY(view->takeMimeData(&good));
        QCOMPARE(view->image()->width, 451);
        QVERIFY(w_->imageView()->loadFile(uitest::fixtureImagePath()));
    }

    void corruptModelFolderKeepsTheModel() {
        QTemporaryDir dir;
        QFile f(dir.filePath("config.json"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("{ broken");
        f.close();
        ModelManagerDialog manager;
        QVERIFY(!manager.inspect(dir.path()));
        QVERIFY(manager.errorText().contains("config.json"));
        QVERIFY(manager.inspect(uitest::tinyModelDir()));
        QVERIFY(manager.summaryText().contains("3 layers"));
        QVERIFY(manager.summaryText().contains("Estimated memory"));

        w_->loadModel(dir.path(), false);
        QVERIFY(QTest::qWaitFor([&] { return !w_->isLoading(); }, 30000));
        QVERIFY(w_->message().contains("could not be loaded"));
        QVERIFY(w_->message().contains("config.json"));
        QVERIFY(w_->hasModel());
        QVERIFY(generateAndWait());
        QVERIFY(!w_->compressedText().isEmpty());
    }

    // The KV cache choice in the model dialog is a setting: the estimate follows it, and the next
    // load stores what it says (an f32 model's cache is f32 under auto, f16 when asked).
    void kvCacheChoiceFollowsTheSetting() {
        QSettings().remove("kvDtype");
        ModelManagerDialog manager;
        auto* combo = manager.findChild<QComboBox*>("kvDtype");
        QVERIFY(combo);
        QCOMPARE(combo->currentData().toString(), QString("auto"));
        QVERIFY(manager.inspect(uitest::tinyModelDir()));
        // 3 layers x K and V x 2 KV heads x 16 dims x 4 (f32) or 2 (f16) bytes.
        QVERIFY2(manager.summaryText().contains("KV cache 768 B per token (F32)"), qPrintable(manager.summaryText()));
        combo->setCurrentIndex(combo->findData("f16"));
        QCOMPARE(QSettings().value("kvDtype").toString(), QString("f16"));
        QVERIFY2(manager.summaryText().contains("KV cache 384 B per token (F16)"), qPrintable(manager.summaryText()));

        QVERIFY(loadTiny(*w_));
        QVERIFY2(w_->message().contains("KV cache in F16"), qPrintable(w_->message()));
        combo->setCurrentIndex(combo->findData("auto"));
        QVERIFY(loadTiny(*w_));
        QVERIFY2(w_->message().contains("KV cache in F32"), qPrintable(w_->message()));
        QVERIFY(generateAndWait());
    }

    // Where the weights live is a setting too: the next load reads them into memory when it says
    // so, and the window says where they are; the answer is the same.
    void weightsChoiceFollowsTheSetting() {
        QSettings().remove("weights");
        ModelManagerDialog manager;
        auto* combo = manager.findChild<QComboBox*>("weights");
        QVERIFY(combo);
        QCOMPARE(combo->currentData().toString(), QString("mapped"));
        QVERIFY(manager.inspect(uitest::tinyModelDir()));
        QVERIFY2(manager.summaryText().contains("(mapped from their files)"), qPrintable(manager.summaryText()));
        QVERIFY(loadTiny(*w_));
        QVERIFY2(w_->message().contains("weights mapped from their files"), qPrintable(w_->message()));
        QVERIFY(generateAndWait());
        const QString mappedAnswer = w_->fullText();
        combo->setCurrentIndex(combo->findData("memory"));
        QCOMPARE(QSettings().value("weights").toString(), QString("memory"));
        QVERIFY2(manager.summaryText().contains("(read into memory)"), qPrintable(manager.summaryText()));
        QVERIFY(loadTiny(*w_));
        QVERIFY2(w_->message().contains("weights read into memory"), qPrintable(w_->message()));
        QVERIFY(generateAndWait());
        QCOMPARE(w_->fullText(), mappedAnswer);
        combo->setCurrentIndex(combo->findData("mapped"));
        QVERIFY(loadTiny(*w_));
    }

    void cancelDuringLoad() {
        auto conn = connect(w_->worker(), &EngineWorker::loadProgress, w_->worker(),
                            [this] { w_->worker()->requestLoadCancel(); }, Qt::DirectConnection);
        w_->loadModel(uitest::tinyModelDir(), false, int(pkv::DeviceChoice::Cpu));
        QVERIFY(QTest::qWaitFor([&] { return !w_->isLoading(); }, 30000));
        disconnect(conn);
        QVERIFY(w_->message().contains("cancelled"));
        QVERIFY(w_->hasModel());
        QVERIFY(generateAndWait());
        QVERIFY(!w_->compressedText().isEmpty());
    }

    void noModelAtAll() {
        MainWindow w;
        w.loadModel("/nonexistent/model", false);
        QVERIFY(QTest::qWaitFor([&] { return !w.isLoading(); }, 30000));
        QVERIFY(w.message().contains("could not be loaded"));
        w.setInstruction(kQuestion);
        w.generate();
        QVERIFY(w.message().contains("Load a model first"));
        QVERIFY(!w.isBusy());
    }
};

QTEST_MAIN(TestMainWindow)
#include "test_main_window.moc"
