// The engine worker on its own thread: both sides stream from one prefill, Stop is honoured
// within one token, a re-run reuses the prefill, and load failures and cancels are reported.
#include <QTemporaryDir>
#include <QThread>
#include <thread>
#include <QtTest>

#include "engine/common/error.h"
#include "engine/common/openblas_core.h"
#include "ui/engine_worker.h"
#include "ui_test_support.h"

using namespace pkvui;

class TestEngineWorker : public QObject {
    Q_OBJECT
    QThread thread_;
    EngineWorker* worker_ = nullptr;
    std::shared_ptr<pkv::LlavaModel> model_;
    std::shared_ptr<const pkv::RgbImage> image_;

    void load(const QString& dir) {
        worker_->armForRequest();
        QMetaObject::invokeMethod(worker_, [this, dir] { worker_->loadModel(dir, false, int(pkv::DeviceChoice::Cpu)); },
                                  Qt::QueuedConnection);
    }
    RunRequest request(int maxNew, bool compareFull) const {
        RunRequest r;
        r.instruction = "What is in this picture?";
        r.image = image_;
        r.policy = uitest::prefixKv(40);
        r.compareFull = compareFull;
        r.maxNewTokens = maxNew;
        r.stopAtEos = false;  // random weights may end at once; the tests need a stream
        return r;
    }
    void run(const RunRequest& r) {
        worker_->armForRequest();
        QMetaObject::invokeMethod(worker_, [this, r] { worker_->run(r); }, Qt::QueuedConnection);
    }

private slots:
    void initTestCase() {
        worker_ = uitest::startWorker(thread_);
        QSignalSpy loaded(worker_, &EngineWorker::modelLoaded);
        load(uitest::tinyModelDir());
        QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 30000);
        const ModelSummary summary = loaded.first().first().value<ModelSummary>();
        QCOMPARE(summary.layers, 3);
        // The device line's tooltip says which OpenBLAS kernels the CPU backend runs.
        QVERIFY2(summary.blas.startsWith("OpenBLAS runs its " + QString::fromStdString(pkv::openBlasCore())),
                 summary.blas.toUtf8().constData());
        model_ = pkv::LlavaModel::load(pkvtest::str(uitest::tinyModelDir()), {pkv::DeviceChoice::Cpu});
        image_ = std::make_shared<const pkv::RgbImage>(pkv::decodeImageFile(pkvtest::str(uitest::fixtureImagePath())));
    }

    void cleanupTestCase() {
        thread_.quit();
        thread_.wait();
    }

    // Both panes receive tokens, alternating, and each side's tokens are exactly what a plain
    // engine run with the same settings generates: the fork + policy path changes nothing.
    void bothSidesStreamFromOnePrefill() {
        QSignalSpy steps(worker_, &EngineWorker::stepped);
        QSignalSpy sides(worker_, &EngineWorker::sideFinished);
        QSignalSpy done(worker_, &EngineWorker::runFinished);
        QSignalSpy comparison(worker_, &EngineWorker::comparisonReady);
        const int before = worker_->prefillCount();
        run(request(12, true));
        QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, 60000);
        QCOMPARE(done.first().first().toBool(), false);
        QCOMPARE(worker_->prefillCount(), before + 1);

        std::vector<Side> order;
        for (const auto& a : steps) {
            const auto u = a.first().value<StepUpdate>();
            if (u.step >= 0) order.push_back(u.side);
        }
        QCOMPARE(order.size(), size_t(24));
        for (size_t i = 0; i < order.size(); ++i)  // compressed, full, compressed, full, ...
            QCOMPARE(int(order[i]), int(i % 2 == 0 ? Side::Compressed : Side::Full));

        QCOMPARE(sides.count(), 2);
        const auto comp = sides.at(0).first().value<SideResult>();
        const auto full = sides.at(1).first().value<SideResult>();
        const auto spec = uitest::prefixKv(40);
        const auto directComp = uitest::runDirect(model_, "What is in this picture?", image_.get(), &spec, 12, false);
        const auto directFull = uitest::runDirect(model_, "What is in this picture?", image_.get(), nullptr, 12, false);
        QCOMPARE(comp.ids, directComp.ids);
        QCOMPARE(full.ids, directFull.ids);
        QCOMPARE(comp.stats.layerLengths, directComp.lengths.back());

        // The readouts: ROUGE-L in [0, 1], and a finite PPL of the full answer under both caches.
        QCOMPARE(comparison.count(), 1);
        const auto c = comparison.first().first().value<Comparison>();
        QVERIFY(c.valid);
        QVERIFY(c.scoredTokens > 0);
        QVERIFY(std::isfinite(c.pplCompressed) && c.pplCompressed >= 1.0);
        QVERIFY(std::isfinite(c.pplFull) && c.pplFull >= 1.0);
    }

    // Sampling: the worker steps each side one token per call, and still draws exactly what one
    // generate() call with the same seed draws.
    void samplingMatchesOneCall() {
        QSignalSpy sides(worker_, &EngineWorker::sideFinished);
        QSignalSpy done(worker_, &EngineWorker::runFinished);
        RunRequest r = request(10, true);
        r.temperature = 0.9f;
        r.topP = 0.9f;
        r.seed = 11;
        run(r);
        QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, 60000);
        QCOMPARE(sides.count(), 2);
        const auto full = sides.at(1).first().value<SideResult>();

        pkv::Session s(model_);
        s.prefill(pkv::applyChatTemplate(pkv::ChatTemplate::LlavaV1, "What is in this picture?", true), image_.get());
        pkv::GenerateOptions o;
        o.maxNewTokens = 10;
        o.stopAtEos = r.stopAtEos;
        o.temperature = 0.9f;
        o.topP = 0.9f;
        o.seed = 11;
        s.generate(o, {});
        QCOMPARE(full.ids, s.generated());
        QVERIFY(full.ids != uitest::runDirect(model_, "What is in this picture?", image_.get(), nullptr, 10, r.stopAtEos).ids);
    }

    // Stop pressed from another thread while tokens stream: the worker produces at most one more
    // token. The request is made at the compressed side's sixth token, from a separate thread,
    // while the worker waits, so the moment of the stop is exact even on a fast model.
    void stopEndsWithinOneToken() {
        QSignalSpy done(worker_, &EngineWorker::runFinished);
        QSignalSpy sides(worker_, &EngineWorker::sideFinished);
        int atStop = -1;
        auto conn = connect(worker_, &EngineWorker::stepped, worker_, [&](const StepUpdate& u) {
            if (u.side != Side::Compressed || u.step != 5) return;
            std::thread gui([this] { worker_->requestStop(); });
            gui.join();
            atStop = worker_->stepsTaken();
        }, Qt::DirectConnection);
        run(request(150, true));
        QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, 60000);
        disconnect(conn);
        QCOMPARE(done.first().first().toBool(), true);
        QVERIFY(atStop > 0);
        QVERIFY2(worker_->stepsTaken() <= atStop + 1,
                 qPrintable(QString("%1 steps after the stop").arg(worker_->stepsTaken() - atStop)));
        QCOMPARE(sides.count(), 2);
        for (const auto& a : sides) {
            const auto r = a.first().value<SideResult>();
            QCOMPARE(int(r.reason), int(pkv::StopReason::Cancelled));
            QVERIFY(r.ids.size() <= 7);
        }
    }

    // A re-run with another budget decodes only the compressed side, from the kept prefill.
    void rerunReusesThePrefill() {
        QSignalSpy done(worker_, &EngineWorker::runFinished);
        run(request(10, true));
        QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, 60000);
        const int prefills = worker_->prefillCount();
        QSignalSpy sides(worker_, &EngineWorker::sideFinished);
        QSignalSpy budgets(worker_, &EngineWorker::compressed);
        const auto spec = uitest::prefixKv(70);
        worker_->armForRequest();
        QMetaObject::invokeMethod(worker_, [this, spec] { worker_->rerunCompressed(spec); }, Qt::QueuedConnection);
        QTRY_COMPARE_WITH_TIMEOUT(done.count(), 2, 60000);
        QCOMPARE(worker_->prefillCount(), prefills);
        QCOMPARE(sides.count(), 1);
        const auto comp = sides.first().first().value<SideResult>();
        QCOMPARE(int(comp.side), int(Side::Compressed));
        QCOMPARE(comp.ids, uitest::runDirect(model_, "What is in this picture?", image_.get(), &spec, 10, false).ids);
        QVERIFY(budgets.first().first().value<CompressionInfo>().policy.contains("70% kept"));
    }

    void corruptModelFolderIsReported() {
        QTemporaryDir dir;
        QFile f(dir.filePath("config.json"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("{ not json");
        f.close();
        QSignalSpy failed(worker_, &EngineWorker::loadFailed);
        load(dir.path());
        QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 30000);
        QVERIFY(failed.first().first().toString().contains("config.json"));
        // The model loaded before still answers.
        QSignalSpy done(worker_, &EngineWorker::runFinished);
        run(request(3, false));
        QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, 60000);
        QCOMPARE(done.first().first().toBool(), false);
    }

    void cancelDuringLoad() {
        QSignalSpy cancelled(worker_, &EngineWorker::loadCancelled);
        QSignalSpy loaded(worker_, &EngineWorker::modelLoaded);
        QSignalSpy progress(worker_, &EngineWorker::loadProgress);
        // Cancel from inside the first progress report, i.e. while the load is under way.
        auto conn = connect(worker_, &EngineWorker::loadProgress, worker_, [this] { worker_->requestLoadCancel(); },
                            Qt::DirectConnection);
        load(uitest::tinyModelDir());
        QTRY_COMPARE_WITH_TIMEOUT(cancelled.count(), 1, 30000);
        disconnect(conn);
        QCOMPARE(loaded.count(), 0);
        QCOMPARE(progress.count(), 1);
    }
};

QTEST_GUILESS_MAIN(TestEngineWorker)
#include "test_engine_worker.moc"
