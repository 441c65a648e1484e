// Renders the documentation screenshots: the main window mid-generation and when both answers are
// done, the model dialog, and the batch dialog with results, all on the embedded demo model and the bundled
// evaluation set. Run by scripts/screenshots.sh; writes PNGs into the folder given.
#include <QApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QTemporaryDir>
#include <functional>
#include <cstdio>

#include "ui/batch_dialog.h"
#include "ui/compression_panel.h"
#include "ui/engine_worker.h"
#include "ui/image_view.h"
#include "ui/kept_map_widget.h"
#include "ui/main_window.h"
#include "ui/model_manager.h"
#include "app/cli/demo_model.h"

namespace {

bool save(QWidget* w, const QString& path) {
    const bool ok = w->grab().save(path, "PNG");
    std::printf("%s %s\n", ok ? "wrote" : "FAILED", qPrintable(path));
    return ok;
}

bool waitFor(const std::function<bool()>& done, int ms) {
    QElapsedTimer t;
    t.start();
    while (!done() && t.elapsed() < ms) QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
    return done();
}

}  // namespace

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setOrganizationName("PrefixKV");
    QApplication::setApplicationName("PrefixKV Studio screenshots");
    const QString out = argc > 1 ? QString(argv[1]) : QString("docs/screenshots");
    QDir().mkpath(out);
    const QString source = PKV_SOURCE_DIR;

    pkvui::MainWindow w;
    w.resize(1440, 900);
    w.show();
    w.loadDemoModel();
    if (!waitFor([&] { return w.hasModel() && !w.isLoading(); }, 60000)) return 1;
    w.imageView()->loadFile(source + "/resources/samples/chelsea.jpg");
    w.setInstruction("Describe the cat in this picture and what it is doing.");
    w.setMaxNewTokens(90);
    w.compression()->setMethod("prefixkv");
    w.compression()->setKeptPercent(30);
    waitFor([] { return false; }, 500);  // let the slider's settle timer pass before the run

    bool midShot = false;
    QObject::connect(w.worker(), &pkvui::EngineWorker::stepped, &w, [&](const pkvui::StepUpdate& u) {
        if (!midShot && u.side == pkvui::Side::Full && u.step == 8) midShot = save(&w, out + "/main-window-generating.png");
    });
    bool finished = false;
    QObject::connect(&w, &pkvui::MainWindow::runCompleted, &w, [&] { finished = true; });
    w.generate();
    if (!waitFor([&] { return finished; }, 120000)) return 1;
    waitFor([] { return false; }, 200);
    save(&w, out + "/main-window-compared.png");
    w.keptMap()->resize(1000, 240);  // it sits in a background tab; render it at a readable size
    save(w.keptMap(), out + "/kept-tokens-heatmap.png");

    // The model dialog on the demo folder: its summary, memory estimate and the KV cache choice.
    pkvui::ModelManagerDialog models(&w);
    models.inspect(QString::fromStdString(pkvcli::extractDemoModel()));
    models.show();
    waitFor([] { return false; }, 200);
    save(&models, out + "/model-dialog.png");
    models.hide();

    pkvui::BatchDialog d(w.worker(), &w);
    d.resize(1200, 800);
    d.setDataset(source + "/resources/eval/mm-vet/mm-vet.json", source + "/resources/samples");
    d.setMethods({"full", "prefixkv", "uniform"});
    d.setBudgets("10, 20, 50, 80");
    d.setSampleLimit(6);
    d.setMaxNewTokens(24);
    QTemporaryDir results(QDir::tempPath() + "/prefixkv-eval-XXXXXX");
    d.setOutputDir(results.path());
    d.show();
    bool ended = false;
    QObject::connect(&d, &pkvui::BatchDialog::runEnded, &d, [&] { ended = true; });
    d.start();
    if (!waitFor([&] { return ended; }, 300000)) return 1;
    waitFor([] { return false; }, 200);
    save(&d, out + "/batch-dialog.png");
    return 0;
}
