// The batch dialog runs the bundled evaluation set on the engine worker to the end, cancels and
// resumes, and leaves the same files as the evaluation runner `prefixkv eval` uses; bad input
// (missing images, no method) gives a message.
#include <QTableWidget>
#include <QTemporaryDir>
#include <QThread>
#include <QtTest>

#include "engine/eval/results.h"
#include "engine/eval/runner.h"
#include "ui/batch_dialog.h"
#include "ui/engine_worker.h"
#include "ui_test_support.h"

using namespace pkvui;

namespace {

QString evalFile() { return pkvtest::sourceDir() + "/resources/eval/mm-vet/mm-vet.json"; }
QString samplesDir() { return pkvtest::sourceDir() + "/resources/samples"; }

QByteArray readAll(const QString& path) {
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

int lines(const QString& path) { return int(readAll(path).count('\n')); }

}  // namespace

class TestBatchDialog : public QObject {
    Q_OBJECT
    QThread thread_;
    EngineWorker* worker_ = nullptr;
    QTemporaryDir tmp_;
    QString directDir_;

    void configure(BatchDialog& d, const QString& out) {
        d.setDataset(evalFile(), samplesDir());
        d.setMethods({"full", "prefixkv"});
        d.setBudgets("20, 50");
        d.setSampleLimit(2);
        d.setMaxNewTokens(8);
        d.setOutputDir(out);
    }
    bool runToEnd(BatchDialog& d, bool* cancelled) {
        QSignalSpy ended(&d, &BatchDialog::runEnded);
        d.start();
        if (!QTest::qWaitFor([&] { return ended.count() == 1; }, 120000)) return false;
        *cancelled = ended.first().first().toBool();
        return true;
    }

private slots:
    void initTestCase() {
        worker_ = uitest::startWorker(thread_);
        QSignalSpy loaded(worker_, &EngineWorker::modelLoaded);
        QMetaObject::invokeMethod(worker_, [this] {
            worker_->loadModel(uitest::tinyModelDir(), false, int(pkv::DeviceChoice::Cpu));
        }, Qt::QueuedConnection);
        QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 30000);

        // The reference: the evaluation runner called directly, as `prefixkv eval` calls it.
        BatchDialog settings(worker_);
        configure(settings, tmp_.filePath("unused"));
        const BatchRequest r = settings.request();
        directDir_ = tmp_.filePath("direct");
        auto model = pkv::LlavaModel::load(pkvtest::str(uitest::tinyModelDir()), {pkv::DeviceChoice::Cpu});
        pkv::EvalOptions o;
        o.policies = r.policies;
        o.maxSamples = r.maxSamples;
        o.maxNewTokens = r.maxNewTokens;
        const auto report = pkv::runEvaluation(model, pkv::loadDataset(pkvtest::str(evalFile()), pkvtest::str(samplesDir())),
                                               pkvtest::str(directDir_), o);
        QVERIFY(!report.cancelled);
        QCOMPARE(report.resultsWritten, 2 * 3);
    }

    void cleanupTestCase() {
        thread_.quit();
        thread_.wait();
    }

    void runsTheBundledSetToTheEnd() {
        BatchDialog d(worker_);
        const QString out = tmp_.filePath("dialog");
        configure(d, out);
        bool cancelled = true;
        QVERIFY(runToEnd(d, &cancelled));
        QVERIFY2(!cancelled, qPrintable(d.errorText()));
        QCOMPARE(d.resultRows(), 3);
        QCOMPARE(d.table()->item(0, 1)->text(), QString("2"));
        QVERIFY(d.table()->item(1, 2)->text().toDouble() > 1.0);  // a PPL
        QCOMPARE(lines(out + "/results.jsonl"), 6);
        QCOMPARE(readAll(out + "/summary.csv"), readAll(directDir_ + "/summary.csv"));
        QVERIFY(d.exportCsv(tmp_.filePath("export.csv")));
        QCOMPARE(readAll(tmp_.filePath("export.csv")), readAll(directDir_ + "/summary.csv"));
        QVERIFY(d.exportJson(tmp_.filePath("export.json")));
        QCOMPARE(readAll(tmp_.filePath("export.json")), readAll(directDir_ + "/summary.json"));
    }

    // Cancel after the first finished (sample, policy), then Resume: the folder ends up as an
    // uninterrupted run leaves it.
    void cancelsAndResumes() {
        BatchDialog d(worker_);
        const QString out = tmp_.filePath("resumed");
        configure(d, out);
        auto conn = connect(worker_, &EngineWorker::batchProgress, worker_, [this](int done) {
            if (done >= 1) worker_->requestStop();
        }, Qt::DirectConnection);
        bool cancelled = false;
        QVERIFY(runToEnd(d, &cancelled));
        disconnect(conn);
        QVERIFY(cancelled);
        const int partial = lines(out + "/results.jsonl");
        QVERIFY(partial >= 1 && partial < 6);

        QVERIFY(runToEnd(d, &cancelled));
        QVERIFY(!cancelled);
        QCOMPARE(lines(out + "/results.jsonl"), 6);
        QCOMPARE(readAll(out + "/summary.csv"), readAll(directDir_ + "/summary.csv"));
        QCOMPARE(d.resultRows(), 3);
    }

    void missingImagesAreReported() {
        QTemporaryDir empty;
        BatchDialog d(worker_);
        configure(d, tmp_.filePath("missing"));
        d.setDataset(evalFile(), empty.path());
        bool cancelled = false;
        QVERIFY(runToEnd(d, &cancelled));
        QVERIFY(cancelled);
        QVERIFY2(d.errorText().contains(".jpg"), qPrintable(d.errorText()));
        QCOMPARE(d.resultRows(), 0);
    }

    void needsAMethod() {
        BatchDialog d(worker_);
        configure(d, tmp_.filePath("none"));
        d.setMethods({});
        d.start();
        QVERIFY(d.errorText().contains("method"));
    }
};

QTEST_MAIN(TestBatchDialog)
#include "test_batch_dialog.moc"
